"""Test tiers: unit and functional tests run anywhere; the integration tier (``docker`` and
``network`` tests: a Docker engine, the stand-ins, the real package index) needs --run-docker.

With --require-docker (CI), a run in which any docker test was skipped, or none ran, fails:
the integration tier must never be skipped silently.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

# CI: the same examples every run and no database of past failures, so a red run is the
# product's doing and can be reproduced; elsewhere hypothesis explores freely.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

STANDIN_BUILD = "nativebuild-test/build-python3.9:{arch}"
STANDIN_RUNTIME = "nativebuild-test/runtime-python3.9:{arch}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-docker", action="store_true", help="run tests that need Docker")
    parser.addoption(
        "--require-docker",
        action="store_true",
        help="fail the run if any docker test is skipped or none ran (implies --run-docker)",
    )


def _docker_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--run-docker") or config.getoption("--require-docker"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _docker_enabled(config):
        return
    skip = pytest.mark.skip(reason="integration tier: needs --run-docker")
    for item in items:
        if "docker" in item.keywords or "network" in item.keywords:
            item.add_marker(skip)


class _DockerTally:
    def __init__(self) -> None:
        self.passed = 0
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "docker" not in report.keywords:
            return
        if report.skipped:
            self.skipped.append(report.nodeid)
        elif report.when == "call" and report.passed:
            self.passed += 1


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--require-docker"):
        tally = _DockerTally()
        config.pluginmanager.register(tally, "docker-tally")
        config.stash[_TALLY] = tally


_TALLY = pytest.StashKey[_DockerTally]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    tally = session.config.stash.get(_TALLY, None)
    if tally is None:
        return
    if tally.skipped or tally.passed == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"--require-docker: {tally.passed} docker tests passed, "
                f"{len(tally.skipped)} skipped: the integration tier must run in full",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _no_docker_outside_docker_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unit and functional tests must never reach a real engine by accident."""
    if "docker" in request.keywords:
        return
    import docker.api.client

    def refuse(*args: object, **kwargs: object) -> None:
        msg = "this test is not marked docker but tried to reach the Docker engine"
        raise AssertionError(msg)

    # Every docker SDK client is built on APIClient, whatever factory made it.
    monkeypatch.setattr(docker.api.client.APIClient, "__init__", refuse)
    # The warm path's socket questions too (tests of that client use a socket of their own);
    # an unchanged build asks no engine here (tests of it give it their fake's ids).
    if request.node.get_closest_marker("local_api") is None:
        monkeypatch.setattr("nativebuild.engine.local_api.LocalEngineAPI._request", refuse)
    monkeypatch.setattr(
        "nativebuild.pipeline.uptodate.engine_image_ids", lambda env: lambda ref, platform: None
    )
