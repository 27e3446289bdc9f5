"""Faults beyond one machine, on the real engines with real sdists: a CI shard killed mid-compile
leaves no partial entry in the shared cache (moto's S3) and a retry on another runner completes
it; two shards that own the same key write one entry; an engine of a pool stopped mid-build
(the second engine, restarted after) still gives a complete build. The first engine is never
stopped."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nativebuild.cache.s3 import open_remote
from tests.moto_server import S3, moto_endpoint, s3
from tests.reliability.harness import check_cache, partial_outputs

__all__ = ["moto_endpoint", "s3"]  # fixtures
pytestmark = [pytest.mark.docker, pytest.mark.network]

BUILD_IMAGE = "nativebuild-test/build-python3.9:{arch}"
RUNTIME_IMAGE = "nativebuild-test/runtime-python3.9:{arch}"
REQUIREMENTS = "crcmod==1.7\nmarkupsafe==2.1.5\nwrapt==1.12.1\n--no-binary markupsafe\n"
SDISTS = ("crcmod", "markupsafe", "wrapt")
SECOND_ENGINE = "unix:///run/nb2.sock"  # tests/images/second-engine: an engine we may stop
SECOND_ENGINE_SCRIPT = Path(__file__).resolve().parents[1] / "images" / "second-engine"
SECOND_PID = Path("/run/docker2.pid")
SEED = 21


def make_project(root: Path) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(REQUIREMENTS)
    (root / "app" / "handler.py").write_text("import crcmod, markupsafe, wrapt\n")
    return root


def command(project: Path, runner: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "nativebuild", "build", "-r", str(project / "requirements.txt"),
        "--src", str(project / "app"), "--runtime", "python3.9", "--arch", "x86_64",
        "--build-image", BUILD_IMAGE, "--runtime-image", RUNTIME_IMAGE, "--glibc", "2.31",
        "--cache-dir", str(runner / "cache"), "-o", str(runner / "out"),
        "--project", str(project), "--json", *extra,
    ]  # fmt: skip


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def run(args: list[str]) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        args, capture_output=True, text=True, check=False, timeout=1500, env=dict(os.environ)
    )
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else {}, done.stderr


def wait_for_line(process: subprocess.Popen[str], wanted: str) -> list[str]:
    """The stderr lines up to and including the first that contains ``wanted`` (all of them
    when it never comes)."""
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if wanted in line:
            break
    return seen


def remote_entries_verify(s3: S3, url: str, scratch: Path) -> tuple[int, list[str]]:
    """Every built-wheel entry under ``url`` read back as a build reads it: (entries, problems).
    A payload without its manifest (a writer killed between the two) is no entry."""
    remote = open_remote(url, endpoint_url=s3.endpoint)
    problems, count = [], 0
    for entry in remote.entries():
        if entry.kind != "built":
            continue
        count += 1
        where = scratch / entry.key
        where.mkdir(parents=True)
        got = remote.fetch_built(entry.key, where)
        if not isinstance(got, tuple):
            problems.append(f"{entry.key}: {got}")
    return count, problems


def kill_after(args: list[str], marker: str, delay: float) -> list[str]:
    """Start a build, SIGKILL it ``delay`` seconds after its stderr shows ``marker``."""
    process = start(args)
    seen = wait_for_line(process, marker)
    assert any(marker in line for line in seen), "".join(seen)[-3000:]
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    return seen


def test_a_shard_killed_mid_compile_leaves_no_partial_entry_and_a_retry_completes_it(
    tmp_path: Path, s3: S3
) -> None:
    project = make_project(tmp_path / "project")
    rng = random.Random(SEED)  # noqa: S311 - reproducible trials

    # Killed while its wheels are being stored and uploaded (under a prefix of its own): what
    # stands in the bucket reads back whole.
    uploading = f"s3://{s3.bucket}/killed-while-uploading"
    shard = command(project, tmp_path / "uploading", "--shard", "1/1")
    kill_after([*shard, "--cache", uploading], "    compiled ", 0)
    assert check_cache(tmp_path / "uploading" / "cache").corrupt == []
    count, problems = remote_entries_verify(s3, uploading, tmp_path / "read-uploading")
    assert problems == [], problems
    print(f"RELIABILITY shard-kill while-uploading complete-entries={count} corrupt=0")

    # Killed while the container compiles: no entry at all, and the assembly says what is
    # missing (starting nothing).
    killed = tmp_path / "killed"
    kill_after([*command(project, killed, "--shard", "1/1"), "--cache", s3.url],
               "==> Compiling", rng.uniform(0, 1.0))  # fmt: skip
    assert check_cache(killed / "cache").corrupt == []
    assert remote_entries_verify(s3, s3.url, tmp_path / "read-killed") == (0, [])
    code, _, err = run([*command(project, tmp_path / "early"), "--cache-only", "--cache", s3.url])
    assert code == 13, err[-3000:]
    assert "--cache-only" in err

    # The shard retried on another runner (an empty cache) compiles what is missing.
    code, retried, err = run(
        [*command(project, tmp_path / "retry", "--shard", "1/1"), "--cache", s3.url]
    )
    assert code == 0, err[-4000:]
    assert {w["name"] for w in retried["wheels"]} == set(SDISTS)
    count, problems = remote_entries_verify(s3, s3.url, tmp_path / "read-after")
    assert (count, problems) == (len(SDISTS), [])
    code, assembled, err = run(
        [*command(project, tmp_path / "assembly"), "--cache-only", "--cache", s3.url]
    )
    assert code == 0, err[-4000:]
    assert assembled["containers_started"] == 0
    assert partial_outputs(tmp_path / "assembly" / "out") == []
    print("RELIABILITY shard-kill mid-compile entries=0 retry=ok assembly-containers=0")


def test_two_shards_that_own_the_same_key_write_one_entry(tmp_path: Path, s3: S3) -> None:
    project = make_project(tmp_path / "project")
    planned = subprocess.run(
        [sys.executable, "-m", "nativebuild", "plan", "-r", str(project / "requirements.txt"),
         "--runtime", "python3.9", "--arch", "x86_64", "--build-image", BUILD_IMAGE,
         "--runtime-image", RUNTIME_IMAGE, "--glibc", "2.31", "--cache-dir",
         str(tmp_path / "planner"), "--json", "--shards", "2"],
        capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    jobs = json.loads(planned.stdout)["compile_jobs"]
    # Runner A does everything (--shard 1/1); runner B is one shard of two: every key B owns,
    # A owns too, and both write it to the bucket at the same time.
    shard_b = jobs[0]["shard"]
    overlap = {job["key"] for job in jobs if job["shard"] == shard_b}
    runners = [
        start([*command(project, tmp_path / "a", "--shard", "1/1"), "--cache", s3.url]),
        start([*command(project, tmp_path / "b", "--shard", shard_b), "--cache", s3.url]),
    ]
    results = []
    for process in runners:
        out, err = process.communicate(timeout=1500)
        assert process.returncode == 0, err[-4000:]
        results.append(json.loads(out))
    compiled_b = {w["name"] for w in results[1]["wheels"]}
    assert compiled_b == {job["name"] for job in jobs if job["key"] in overlap}
    objects = s3.objects()
    for key in overlap:
        under = [name for name in objects if f"/built/{key[:2]}/{key}/" in name]
        assert len([n for n in under if n.endswith("/manifest.json")]) == 1, under
        assert len(under) == 2, f"one manifest and one wheel for {key}: {under}"
    count, problems = remote_entries_verify(s3, s3.url, tmp_path / "read")
    assert (count, problems) == (len(SDISTS), [])
    print(f"RELIABILITY shard-overlap keys={len(overlap)} entries-per-key=1 corrupt=0")


def remove_left_by(pid: int, host: str) -> None:
    """Remove the containers the nativebuild process ``pid`` left on ``host`` (its owner label);
    nobody else's."""
    env = {**os.environ, "DOCKER_HOST": host}
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=org.nativebuild.owner"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    for container in listed.stdout.split():
        label = subprocess.run(
            ["docker", "inspect", "-f", '{{index .Config.Labels "org.nativebuild.owner"}}',
             container], capture_output=True, text=True, env=env, check=False,
        ).stdout  # fmt: skip
        if f"/{pid}/" in label:
            subprocess.run(["docker", "rm", "-f", container], env=env, capture_output=True,
                           check=False)  # fmt: skip


def _wait_gone(pid_file: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)


def test_an_engine_of_the_pool_stopped_mid_build_still_gives_a_complete_build(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [str(SECOND_ENGINE_SCRIPT), BUILD_IMAGE.format(arch="x86_64")],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    project = make_project(tmp_path / "project")
    (project / "pyproject.toml").write_text(
        "[tool.nativebuild.builders]\n"
        f'x86_64 = ["default", {{ host = "{SECOND_ENGINE}", network = "host" }}]\n'
    )
    runner = tmp_path / "runner"
    process = None
    try:
        process = start(command(project, runner))
        seen = wait_for_line(process, f"on {SECOND_ENGINE} in ")
        assert any(SECOND_ENGINE in line for line in seen), "".join(seen)[-3000:]
        time.sleep(1)
        os.kill(int(SECOND_PID.read_text().strip()), signal.SIGTERM)  # never the first engine
        out, err = process.communicate(timeout=1500)
        err = "".join(seen) + err
        assert process.returncode == 0, err[-4000:]
        assert f"warning: Engine {SECOND_ENGINE} failed while compiling for x86_64" in err
        result = json.loads(out)
        builders = {b["engine"]: b for b in result["builders"]}
        assert builders[SECOND_ENGINE]["failed"] is True
        assert builders[SECOND_ENGINE]["jobs"] == []
        assert sorted(builders["default"]["jobs"]) == sorted(SDISTS)
        assert {w["source"] for w in result["wheels"] if w["name"] in SDISTS} == {"compiled"}
        assert len(result["archives"]) == 1
        assert "Traceback" not in err
        assert check_cache(runner / "cache").corrupt == []
        assert partial_outputs(runner / "out") == []
    finally:
        _wait_gone(SECOND_PID)
        subprocess.run([str(SECOND_ENGINE_SCRIPT)], capture_output=True, check=True, timeout=600)
        if process is not None:  # the container the stopped engine could not let us remove
            remove_left_by(process.pid, SECOND_ENGINE)
    print("RELIABILITY pool-engine-stopped trials=1 retried-elsewhere=yes complete=yes")
