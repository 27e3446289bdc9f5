"""Beyond one machine, on real engines with real sdists from PyPI: three CI shards sharing
moto's S3 compile disjoint sets that together cover every sdist, and the assembly that follows
starts no container; a pool of the host engine and the second engine (tests/images/second-engine)
runs compile jobs on both and builds the same bytes as one engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.moto_server import S3, moto_endpoint, s3

__all__ = ["moto_endpoint", "s3"]  # fixtures
pytestmark = [pytest.mark.docker, pytest.mark.network]

ROOT = Path(__file__).resolve().parents[2]
BUILD_IMAGE = "nativebuild-test/build-python3.9:{arch}"
RUNTIME_IMAGE = "nativebuild-test/runtime-python3.9:{arch}"
SECOND_ENGINE = "unix:///run/nb2.sock"
# Four sdists that must compile (C extensions; crcmod and wrapt 1.12.1 have no wheel at all).
SDISTS = ("crcmod", "markupsafe", "simplejson", "wrapt")
REQUIREMENTS = """\
crcmod==1.7
markupsafe==2.1.5
simplejson==3.17.2
wrapt==1.12.1
six==1.16.0
--no-binary markupsafe,simplejson
"""


def make_project(root: Path, requirements: str = REQUIREMENTS) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(requirements)
    (root / "app" / "handler.py").write_text("import crcmod, markupsafe, simplejson, wrapt\n")
    return root


def args(command: str, project: Path, cache: Path, *extra: str) -> list[str]:
    found = [
        sys.executable, "-m", "nativebuild", command, "-r", str(project / "requirements.txt"),
        "--runtime", "python3.9", "--arch", "x86_64", "--build-image", BUILD_IMAGE,
        "--runtime-image", RUNTIME_IMAGE, "--glibc", "2.31", "--cache-dir", str(cache),
        "--project", str(project), "--json", *extra,
    ]  # fmt: skip
    if command == "build":
        found += ["--src", str(project / "app")]
        found += ["-o", str(cache.parent / f"{cache.name}-dist")]
    return found


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=1500,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else {}, done.stderr


def test_three_shards_cover_every_sdist_once_and_the_assembly_starts_no_container(
    tmp_path: Path, s3: S3
) -> None:
    project = make_project(tmp_path / "project")
    code, planned, err = run(args("plan", project, tmp_path / "planner", "--shards", "3"))
    assert code == 0, err
    shard_of = {job["name"]: job["shard"] for job in planned["compile_jobs"]}
    assert set(shard_of) == set(SDISTS)

    def shard(k: int) -> subprocess.Popen[str]:
        argv = args("build", project, tmp_path / f"runner-{k}", "--shard", f"{k}/3")
        return subprocess.Popen(
            [*argv, "--cache", s3.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=dict(os.environ),
        )  # fmt: skip

    runners = [shard(k) for k in (1, 2, 3)]  # three CI runners at once, empty caches each
    compiled: dict[str, str] = {}
    for k, process in enumerate(runners, start=1):
        out, err = process.communicate(timeout=1500)
        assert process.returncode == 0, err[-4000:]
        result = json.loads(out)
        assert result["archives"] == []
        assert not (tmp_path / f"runner-{k}-dist").exists(), "a shard writes no archive"
        mine = {w["name"] for w in result["wheels"]}
        assert {w["source"] for w in result["wheels"]} <= {"compiled"}
        assert mine == {name for name, shard in shard_of.items() if shard == f"{k}/3"}
        assert {job["name"] for job in result["left_to_other_shards"]} == set(SDISTS) - mine
        for name in mine:
            assert name not in compiled, f"{name} compiled by shards {compiled[name]} and {k}/3"
            compiled[name] = f"{k}/3"
    assert sorted(compiled) == sorted(SDISTS)
    manifests = [key for key in s3.objects() if key.endswith("/manifest.json")]
    assert len(manifests) == len(SDISTS)

    code, assembled, err = run(
        args("build", project, tmp_path / "assembly", "--cache-only", "--cache", s3.url)
    )
    assert code == 0, err[-4000:]
    assert assembled["containers_started"] == 0
    sources = {w["name"]: w["source"] for w in assembled["wheels"]}
    assert sources == {**dict.fromkeys(SDISTS, "cache"), "six": "download"}
    archive = Path(assembled["archives"][0]["path"])
    names = zipfile.ZipFile(archive).namelist()
    for module in (
        "markupsafe/_speedups",
        "simplejson/_speedups",
        "wrapt/_wrappers",
        "crcmod/_crcfunext",
    ):
        assert any(n.startswith(module) and n.endswith(".so") for n in names), module


def second_engine_ready() -> None:
    """The second engine with the x86_64 build stand-in (idempotent; tests/setup-machine)."""
    subprocess.run(
        [str(ROOT / "tests" / "images" / "second-engine"), BUILD_IMAGE.format(arch="x86_64")],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip


def kept_by(pid: int, host: str | None) -> list[dict[str, Any]]:
    """The containers that the nativebuild process ``pid`` left on an engine (its owner label):
    the engines are shared, so nobody else's are looked at or removed."""
    env = {**os.environ, "DOCKER_HOST": host} if host else dict(os.environ)
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=org.nativebuild.owner"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    if not listed.stdout.split():
        return []
    done = subprocess.run(
        ["docker", "inspect", *listed.stdout.split()],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    found: list[dict[str, Any]] = json.loads(done.stdout)
    owner = f"/{pid}/"
    return [c for c in found if owner in c["Config"]["Labels"].get("org.nativebuild.owner", "")]


def test_a_pool_of_two_engines_runs_jobs_on_both_and_builds_the_same_bytes(
    tmp_path: Path,
) -> None:
    second_engine_ready()
    project = make_project(tmp_path / "project")
    # The second engine's bridge has no NAT: its containers reach PyPI on the host network.
    (project / "pyproject.toml").write_text(
        "[tool.nativebuild.builders]\n"
        f'x86_64 = ["default", {{ host = "{SECOND_ENGINE}", network = "host" }}]\n'
    )
    process = subprocess.Popen(
        args("build", project, tmp_path / "pooled"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "NATIVEBUILD_KEEP_CONTAINER": "1"},
    )  # fmt: skip
    out, err = process.communicate(timeout=1500)
    local_kept, second_kept = kept_by(process.pid, None), kept_by(process.pid, SECOND_ENGINE)
    try:
        assert process.returncode == 0, err[-4000:]
        pooled = json.loads(out)
        builders = {b["engine"]: b for b in pooled["builders"]}
        assert set(builders) == {"default", SECOND_ENGINE}
        on_default, on_second = builders["default"]["jobs"], builders[SECOND_ENGINE]["jobs"]
        assert on_default, err[-3000:]
        assert on_second, err[-3000:]
        assert sorted(on_default + on_second) == sorted(SDISTS)
        assert not any(b["failed"] for b in builders.values())
        assert f"on {SECOND_ENGINE} in nativebuild-test/build-python3.9:x86_64" in err
        # The second engine really ran a compile container, with its files sent through the
        # API (no bind mount), and the host engine ran its own.
        compile_second = [c for c in second_kept if "/nativebuild/driver.py" in c["Config"]["Cmd"]]
        assert compile_second, "no compile container on the second engine"
        assert all(c["Mounts"] == [] for c in compile_second)
        assert any("/nativebuild/driver.py" in c["Config"]["Cmd"] for c in local_kept)
    finally:
        for host, kept in ((None, local_kept), (SECOND_ENGINE, second_kept)):
            ids = [str(c["Id"]) for c in kept]  # this test's build's only
            if ids:
                env = {**os.environ, "DOCKER_HOST": host} if host else dict(os.environ)
                subprocess.run(["docker", "rm", "-f", *ids], env=env, capture_output=True,
                               check=False)  # fmt: skip

    alone = make_project(tmp_path / "alone")
    code, single, err = run(args("build", alone, tmp_path / "single"))
    assert code == 0, err[-4000:]
    assert single["builders"] == [
        {"arch": "x86_64", "engine": "default", "jobs": sorted(SDISTS), "failed": False}
    ]
    assert single["archives"][0]["sha256"] == pooled["archives"][0]["sha256"]
