"""While uv resolves on the host, a thread makes the TLS context that the downloads after it
use (loading the CA bundle costs tens of milliseconds), so the first download does not wait
for it. Through the CLI, with a fake uv that watches for the context while it "resolves"."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from nativebuild import cli
from nativebuild.index import downloads
from nativebuild.index.uv import UvResult
from tests.fakes import FakeIndex, FakeUv
from tests.wheelfactory import make_tree


class WatchingUv(FakeUv):
    """Resolves like FakeUv after waiting (up to 10 s) for a TLS context to exist."""

    seen_during_resolution: bool | None = None

    def run(self, args: Sequence[str], *, cwd: Path | None, env: Mapping[str, str]) -> UvResult:
        deadline = time.monotonic() + 10
        while not downloads._contexts and time.monotonic() < deadline:
            time.sleep(0.01)
        self.seen_during_resolution = bool(downloads._contexts)
        return super().run(args, cwd=cwd, env=env)


@pytest.fixture
def uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WatchingUv:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    uv = WatchingUv(index)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: uv)
    monkeypatch.setattr(downloads, "_contexts", {})
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    return uv


def build_six(tmp_path: Path) -> Result:
    """An all-binary build of six (no container: uv resolves on the host), through the CLI."""
    project = tmp_path / "project"
    make_tree(
        project,
        {
            "requirements.txt": "six==1.16.0\n",
            "app/handler.py": "def handler(e, c):\n    return 1\n",
        },
    )
    argv = [
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        "--runtime", "python3.9", "--arch", "x86_64", "--glibc", "2.31",
        "--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist"), "--json",
    ]  # fmt: skip
    return CliRunner().invoke(cli.app, argv, env={"SOURCE_DATE_EPOCH": ""})


def test_the_tls_context_is_made_while_uv_resolves(tmp_path: Path, uv: WatchingUv) -> None:
    result = build_six(tmp_path)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["containers_started"] == 0
    assert uv.calls, "uv resolved on the host"
    assert uv.seen_during_resolution is True


def test_the_warm_up_never_outlives_the_resolution(
    tmp_path: Path, uv: WatchingUv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread still importing when a quick build reaches the interpreter's exit can crash
    it (seen once: SIGSEGV after the archive was written), so the resolution waits for it."""
    finished: list[bool] = []

    def slow_reader() -> None:
        time.sleep(1.0)  # longer than the whole fake build
        finished.append(True)

    monkeypatch.setattr("nativebuild.pipeline.resolution.load_reader", slow_reader)
    result = build_six(tmp_path)
    assert result.exit_code == 0, result.stderr
    assert finished == [True]
    assert not [t for t in threading.enumerate() if t.name == "nativebuild-warm-up"]
