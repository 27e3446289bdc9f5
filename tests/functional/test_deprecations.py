"""Deprecated runtimes through build, plan and doctor: a warning with Lambda's dates through the
Reporter, the same notice in --json, and never a failure. Real files, the fake container runner;
the day is passed in, so the stage each runtime is in does not depend on when the tests run."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.config.settings import Settings, resolve
from nativebuild.pipeline import run as pipeline
from tests.fakes import FakeIndex, FakeRunner, FakeUv, RecordingReporter
from tests.wheelfactory import make_tree

IMAGE = "example/build:{arch}"
DAY = datetime.date(2026, 12, 6)
PY39_NOTICE = (
    "python3.9 is deprecated since 2025-12-15; Lambda blocks function creation from 2026-02-03 "
    "and function updates from 2026-03-09. Build for python3.14 (supported until 2029-06-30)."
)


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    index.add_sdist("markupsafe", "2.1.5")
    return index


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    make_tree(
        root,
        {
            "requirements.txt": "markupsafe==2.1.5\nsix==1.16.0\n",
            "app/handler.py": "def handler(event, context):\n    return 1\n",
        },
    )
    return root


def settings(project: Path, runtime: str) -> Settings:
    given = {
        "requirements": str(project / "requirements.txt"), "src": str(project / "app"),
        "runtime": runtime, "arch": ["x86_64"], "build-image": IMAGE, "glibc": "2.31",
        "cache-dir": str(project / "cache"), "output": str(project / "dist"),
    }  # fmt: skip
    return resolve(cli=given, file_table={}, env={}, project_dir=project, cwd=project)


def test_a_build_for_a_deprecated_runtime_warns_with_the_dates_and_still_builds(
    project: Path, index: FakeIndex
) -> None:
    reporter = RecordingReporter()
    result = pipeline.build(
        settings(project, "python3.9"), runner=FakeRunner(index), env={}, reporter=reporter,
        uv=FakeUv(index), today=DAY,
    )  # fmt: skip
    assert reporter.warnings.count(PY39_NOTICE) == 1
    [archive] = result.archives
    assert archive.path.is_file()
    [notice] = result.to_json()["deprecations"]
    assert notice == {
        "runtime": "python3.9", "stage": "update-blocked", "deprecated": "2025-12-15",
        "block_create": "2026-02-03", "block_update": "2026-03-09", "message": PY39_NOTICE,
    }  # fmt: skip


def test_the_same_build_before_the_notice_period_says_nothing(
    project: Path, index: FakeIndex
) -> None:
    reporter = RecordingReporter()
    result = pipeline.build(
        settings(project, "python3.9"), runner=FakeRunner(index), env={}, reporter=reporter,
        uv=FakeUv(index), today=datetime.date(2025, 1, 1),
    )  # fmt: skip
    assert reporter.warnings == []
    assert result.to_json()["deprecations"] == []


def test_a_plan_for_a_runtime_whose_creation_is_blocked_warns(
    project: Path, index: FakeIndex
) -> None:
    reporter = RecordingReporter()
    planned = pipeline.plan(
        settings(project, "python3.10"), runner=FakeRunner(index), env={}, reporter=reporter,
        uv=FakeUv(index), today=DAY,
    )  # fmt: skip
    [warning] = reporter.warnings
    assert warning.startswith(
        "python3.10 is deprecated since 2026-10-31; Lambda blocks function creation from "
        "2026-11-30 and function updates from 2027-01-15."
    )
    assert [d["stage"] for d in planned.to_json()["deprecations"]] == ["create-blocked"]


def test_a_supported_runtime_plans_without_a_notice(project: Path, index: FakeIndex) -> None:
    reporter = RecordingReporter()
    planned = pipeline.plan(
        settings(project, "python3.13"), runner=FakeRunner(index), env={}, reporter=reporter,
        uv=FakeUv(index), today=DAY,
    )  # fmt: skip
    assert reporter.warnings == []
    assert planned.to_json()["deprecations"] == []


@pytest.mark.parametrize("command", ["build", "plan"])
def test_the_cli_prints_the_warning_on_stderr_and_the_notice_in_json(
    project: Path, index: FakeIndex, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Through the CLI the day is the real one; python3.9's dates are all behind us."""
    runner = FakeRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: FakeUv(index))
    args = [
        command, "-r", str(project / "requirements.txt"), "--runtime", "python3.9",
        "--build-image", IMAGE, "--glibc", "2.31", "--cache-dir", str(project / "cache"),
        "--project", str(project), "--json",
    ]  # fmt: skip
    if command == "build":
        args += ["--src", str(project / "app"), "-o", str(project / "dist")]
    done = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": ""})
    assert done.exit_code == 0, done.stderr
    assert "warning: python3.9 is deprecated since 2025-12-15" in done.stderr
    assert "function updates from 2026-03-09" in done.stderr
    [notice] = json.loads(done.stdout)["deprecations"]
    assert (notice["runtime"], notice["stage"]) == ("python3.9", "update-blocked")
