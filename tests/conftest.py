"""Test tiers, chosen by markers: unit and functional tests run anywhere; the integration tier
(tests marked ``docker`` or ``network``: a Docker engine, the stand-ins, the real package
index) needs --run-docker. Tiers are read from each test's markers, never from its keywords
(those hold the names of the folders above it, so a checkout in a folder named ``docker``
would otherwise skip everything).

A tier must not pass by doing nothing:

- every test under tests/integration carries a tier marker (an unmarked one is a collection
  error: no tox environment would ever run it);
- with --require-docker (the integration tox environment), a run in which any selected test was
  skipped, or none passed, fails;
- in CI (the ``CI`` environment variable), a unit or functional test skipped for a missing tool
  (gcc, patchelf, unzip, shellcheck, a tmpfs mount...) fails the run: tests/setup-machine
  installs them. Only the integration tier's own skip (no --run-docker) and the skips no machine
  can meet, named in ALLOWED_SKIPS, pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# CI: the same examples every run and no database of past failures, so a red run is the
# product's doing and can be reproduced; elsewhere hypothesis explores freely.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

TIERS = ("docker", "network")
INTEGRATION = Path(__file__).resolve().parent / "integration"
TIER_SKIP = "integration tier: needs --run-docker"

# Skip reasons that no machine can meet, so CI lets them pass; every other skip fails there.
ROOT_IGNORES_MODES = "running as root: permission bits do not stop root"
ALLOWED_SKIPS = {
    ROOT_IGNORES_MODES: "CI runs as root; the read-only and no-access cases need a plain user",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-docker", action="store_true", help="run tests that need Docker")
    parser.addoption(
        "--require-docker",
        action="store_true",
        help="fail the run if any selected test is skipped or none passed (implies --run-docker)",
    )


def _docker_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--run-docker") or config.getoption("--require-docker"))


def tier_markers(item: pytest.Item) -> list[str]:
    """The integration tiers ``item`` belongs to, from its own, class or module markers."""
    return [name for name in TIERS if item.get_closest_marker(name) is not None]


@pytest.hookimpl(tryfirst=True)  # before -m deselects: an unmarked test is never selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if INTEGRATION in item.path.resolve().parents and not tier_markers(item)
    ]
    if unmarked:
        listed = "\n  ".join(unmarked)
        msg = (
            f"tests under {INTEGRATION.name}/ must be marked docker or network, or move to "
            f"tests/unit or tests/functional; unmarked, no tier runs them:\n  {listed}"
        )
        raise pytest.UsageError(msg)
    if _docker_enabled(config):
        return
    skip = pytest.mark.skip(reason=TIER_SKIP)
    for item in items:
        if tier_markers(item):
            item.add_marker(skip)


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return report.longrepr[2].removeprefix("Skipped: ")
    return str(report.longrepr)


class SkipAudit:
    """Counts passes and skips; at the end, fails the run on a skip the tier does not allow."""

    def __init__(self, *, require_all: bool, strict: bool) -> None:
        self.require_all = require_all  # --require-docker: nothing selected may be skipped
        self.strict = strict  # CI: only the tier's own skip and ALLOWED_SKIPS pass
        self.passed = 0
        self.skipped: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append((report.nodeid, _skip_reason(report)))
        elif report.when == "call" and report.passed:
            self.passed += 1

    def refused(self) -> list[str]:
        """What makes this run fail, one line each."""
        lines = []
        for nodeid, reason in self.skipped:
            if reason in ALLOWED_SKIPS:
                continue
            if self.require_all or (self.strict and reason != TIER_SKIP):
                lines.append(f"skipped: {nodeid} ({reason})")
        if self.require_all and self.passed == 0:
            lines.append("no test passed")
        return lines


_AUDIT = pytest.StashKey[SkipAudit]()


def pytest_configure(config: pytest.Config) -> None:
    audit = SkipAudit(
        require_all=bool(config.getoption("--require-docker")), strict=bool(os.environ.get("CI"))
    )
    config.pluginmanager.register(audit, "skip-audit")
    config.stash[_AUDIT] = audit


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    audit = session.config.stash.get(_AUDIT, None)
    if audit is None or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return
    if audit.refused():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    audit = terminalreporter.config.stash.get(_AUDIT, None)
    refused = audit.refused() if audit is not None else []
    if audit is None or not refused:
        return
    why = (
        "--require-docker: the integration tier must run in full"
        if audit.require_all
        else "CI: a skipped test is a test that did not run (tests/setup-machine installs the "
        "tools; ALLOWED_SKIPS in tests/conftest.py names the skips no machine can meet)"
    )
    terminalreporter.write_sep("=", "skipped tests fail this run", red=True)
    terminalreporter.write_line(f"{why}; {audit.passed} passed, and:", red=True)
    for line in refused:
        terminalreporter.write_line(f"  {line}", red=True)


@pytest.fixture(autouse=True)
def _no_docker_outside_docker_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unit and functional tests must never reach a real engine by accident."""
    if request.node.get_closest_marker("docker") is not None:
        return
    import docker.api.client

    def refuse(*args: object, **kwargs: object) -> None:
        msg = "this test is not marked docker but tried to reach the Docker engine"
        raise AssertionError(msg)

    # Every docker SDK client is built on APIClient, whatever factory made it.
    monkeypatch.setattr(docker.api.client.APIClient, "__init__", refuse)
    # The warm path's socket questions and an image load too (tests of that client use a
    # socket of their own); an unchanged build asks no engine here (tests of it give it their
    # fake's ids).
    if request.node.get_closest_marker("local_api") is None:
        monkeypatch.setattr("nativebuild.engine.local_api.LocalEngineAPI._request", refuse)
        monkeypatch.setattr("nativebuild.engine.local_api.LocalEngineAPI.load", refuse)
    monkeypatch.setattr(
        "nativebuild.pipeline.uptodate.engine_image_ids", lambda env: lambda ref, platform: None
    )
    # The index pages a cold build reads before resolving in the image (known sdists): none
    # here, so the build resolves as it would without them; a test that wants them gives its
    # FakeIndex's (FakeIndex.simple_index).
    monkeypatch.setattr("nativebuild.pipeline.resolve_then_compile.SimpleIndex", _no_index_pages)


def _no_index_pages(*args: object, **kwargs: object) -> None:
    msg = "no index pages in this test"
    raise OSError(msg)
