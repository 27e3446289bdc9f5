"""drivers/build_wheels.py --resolve-first, run for real as a process on the host: it resolves,
says so, waits for the host's answer and builds only what it is given (the integration tier
runs it in the build image with real sdists)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nativebuild.drivers import script
from nativebuild.pipeline.resolve_then_compile import RESOLVED_MARKER

DRIVER = script("build_wheels")


def start(
    tmp_path: Path, resolve: list[str], first: list[dict[str, object]] | None = None
) -> tuple[subprocess.Popen[str], Path]:
    go = tmp_path / "go"
    go.mkdir()
    plan = {"resolve": resolve, "jobs": str(go / "jobs.json"), "ready": str(go / "ready")}
    if first is not None:  # jobs to build before resolving
        (go / "first.json").write_text(json.dumps(first))
        plan["first"] = str(go / "first.json")
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    process = subprocess.Popen(
        [sys.executable, str(DRIVER), "--resolve-first", str(tmp_path / "plan.json"),
         str(tmp_path / "results.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return process, go


def lines_until_marker(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line.rstrip("\n"))
        if seen[-1] == RESOLVED_MARKER:
            return seen
    return seen


def test_it_resolves_says_so_then_waits_for_the_host(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    process, go = start(
        tmp_path, [sys.executable, "-c", f"open({str(report)!r}, 'w').write('{{}}'); print('ok')"]
    )
    seen = lines_until_marker(process)
    assert seen[-2:] == ["ok", RESOLVED_MARKER]
    assert report.read_text() == "{}"
    assert process.poll() is None, "it must wait for the host's answer"
    (go / "jobs.json").write_text("[]")
    (go / "ready").write_text(json.dumps({"abort": False}))
    assert process.wait(timeout=30) == 0
    assert json.loads((tmp_path / "results.json").read_text()) == []


def test_an_abort_builds_nothing(tmp_path: Path) -> None:
    process, go = start(tmp_path, [sys.executable, "-c", "pass"])
    assert lines_until_marker(process)[-1] == RESOLVED_MARKER
    (go / "ready").write_text(json.dumps({"abort": True}))
    assert process.wait(timeout=30) == 0
    assert not (tmp_path / "results.json").exists()


def test_a_failed_resolution_ends_it_with_pips_code_and_no_marker(tmp_path: Path) -> None:
    process, _ = start(
        tmp_path, [sys.executable, "-c", "print('ERROR: nope'); raise SystemExit(7)"]
    )
    seen = lines_until_marker(process)
    assert process.wait(timeout=30) == 7
    assert RESOLVED_MARKER not in seen
    assert "ERROR: nope" in seen


def test_a_first_job_that_fails_ends_it_before_resolving(tmp_path: Path) -> None:
    ran = tmp_path / "resolved"
    first = [{"name": "ghost", "version": "1.0", "sdist": str(tmp_path / "ghost-1.0.tar.gz"),
              "out": str(tmp_path / "out" / "ghost"), "repair": None}]  # fmt: skip
    process, _ = start(tmp_path, [sys.executable, "-c", f"open({str(ran)!r}, 'w')"], first)
    seen = lines_until_marker(process)
    assert process.wait(timeout=30) == 1
    assert RESOLVED_MARKER not in seen
    assert "=== failed ghost 1.0" in seen
    assert not ran.exists(), "nothing is resolved after a first job failed"
    [result] = json.loads((tmp_path / "results.json").read_text())
    assert (result["name"], result["ok"]) == ("ghost", False)
