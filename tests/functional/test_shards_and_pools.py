"""CI shards over a shared cache, and pools of engines, through the CLI: real files, fake
engines, moto's S3 server over real HTTP. Each "runner" is its own local cache directory."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.engine.runner import ContainerResult, ContainerSpec
from nativebuild.errors import DockerUnavailableError
from nativebuild.reporting import Reporter
from nativebuild.sdists.build import DRIVER_IN_CONTAINER
from tests.fakes import FakeIndex, FakeRunner, FakeUv
from tests.moto_server import S3, moto_endpoint, s3
from tests.wheelfactory import make_tree

__all__ = ["moto_endpoint", "s3"]  # fixtures
IMAGE = "example/build:{arch}"
SDISTS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
SECOND = "tcp://second:2376"


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    for number, name in enumerate(SDISTS):
        index.add_sdist(name, f"1.{number}")
    return index


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    runner = FakeRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: FakeUv(index))
    return runner


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    lines = [f"{name}==1.{number}" for number, name in enumerate(SDISTS)]
    make_tree(
        root,
        {
            "requirements.txt": "\n".join([*lines, "six==1.16.0"]) + "\n",
            "app/handler.py": "def handler(event, context):\n    return 1\n",
        },
    )
    return root


def invoke(
    command: str, project: Path, cache: Path, *extra: str, env: Mapping[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    args = [
        command, "-r", str(project / "requirements.txt"), "--runtime", "python3.9",
        "--arch", "x86_64", "--build-image", IMAGE, "--glibc", "2.31", "--cache-dir", str(cache),
        "--project", str(project), "--json", *extra,
    ]  # fmt: skip
    if command == "build":
        args += ["--src", str(project / "app"), "-o", str(cache / "dist")]
    result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": "", **(env or {})})
    document = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, document, result.stderr


def compiles(runner: FakeRunner) -> list[ContainerSpec]:
    return [spec for spec in runner.specs if spec.command[1:2] == (DRIVER_IN_CONTAINER,)]


# --- shards ---------------------------------------------------------------------------------


def test_shards_compile_disjoint_sets_that_cover_every_sdist_then_the_assembly_compiles_none(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3
) -> None:
    code, planned, err = invoke("plan", project, tmp_path / "planner", "--shards", "3")
    assert code == 0, err
    jobs = {job["name"]: job for job in planned["compile_jobs"]}
    assert set(jobs) == set(SDISTS)
    assert planned["matrix"] == [
        {"arch": "x86_64", "shard": shard}
        for shard in sorted({j["shard"] for j in jobs.values()}, key=lambda s: int(s[0]))
    ]
    compiled: dict[str, str] = {}
    for index in (1, 2, 3):
        shard = f"{index}/3"
        runner = tmp_path / f"runner-{index}"
        code, result, err = invoke("build", project, runner, "--shard", shard, "--cache", s3.url)
        assert code == 0, err
        assert result["shard"] == shard
        assert result["archives"] == []
        assert result["manifest"] is None
        assert not (runner / "dist").exists(), "a shard writes no archive"
        mine = {w["name"] for w in result["wheels"]}
        assert {w["source"] for w in result["wheels"]} <= {"compiled"}
        assert mine == {name for name, job in jobs.items() if job["shard"] == shard}
        left = {job["name"]: job for job in result["left_to_other_shards"]}
        assert set(left) == set(SDISTS) - mine
        for name, job in left.items():  # the same keys and shards as the plan said
            assert (job["key"], job["shard"]) == (jobs[name]["key"], jobs[name]["shard"])
        for name in mine:
            assert name not in compiled, f"{name} compiled by two shards"
            compiled[name] = shard
    assert set(compiled) == set(SDISTS)

    before = fake.containers_started
    code, assembled, err = invoke("build", project, tmp_path / "assembly", "--cache-only",
                                  "--cache", s3.url)  # fmt: skip
    assert code == 0, err
    assert assembled["containers_started"] == 0
    assert fake.containers_started == before
    sources = {w["name"]: w["source"] for w in assembled["wheels"]}
    assert sources == {**dict.fromkeys(SDISTS, "cache"), "six": "download"}
    assert len(assembled["archives"]) == 1


def test_a_shard_reports_what_it_found_cached_and_compiles_nothing_twice(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    cache = tmp_path / "runner"
    code, first, err = invoke("build", project, cache, "--shard", "1/2")
    assert code == 0, err
    assert first["wheels"], "shard 1/2 of six sdists has some work (else pick another split)"
    started = fake.containers_started
    code, again, err = invoke("build", project, cache, "--shard", "1/2")
    assert code == 0, err
    assert {w["name"] for w in again["wheels"]} == {w["name"] for w in first["wheels"]}
    assert {w["source"] for w in again["wheels"]} == {"cache"}
    assert again["containers_started"] == 0
    assert fake.containers_started == started


def test_a_shard_with_cache_only_publish_or_artifacts_dir_is_refused(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    code, _, err = invoke("build", project, tmp_path / "c", "--shard", "1/2", "--cache-only")
    assert code == 2
    assert "--cache-only" in err
    code, _, err = invoke("build", project, tmp_path / "c", "--shard", "1/2", "--publish")
    assert code == 2
    assert "nothing to publish" in err
    artifacts = tmp_path / "artifacts"
    code, _, err = invoke(
        "build", project, tmp_path / "c", "--shard", "1/2", "--artifacts-dir", str(artifacts)
    )
    assert code == 2
    assert "nothing to unpack" in err
    assert not artifacts.exists()
    code, _, err = invoke("build", project, tmp_path / "c", "--shard", "3/2")
    assert code == 2
    assert "between 1 and N" in err
    code, _, err = invoke("plan", project, tmp_path / "c", "--shards", "0")
    assert code == 2


def test_shard_from_the_environment(project: Path, tmp_path: Path, fake: FakeRunner) -> None:
    code, result, err = invoke("build", project, tmp_path / "c", env={"NATIVEBUILD_SHARD": "2/2"})
    assert code == 0, err
    assert result["shard"] == "2/2"
    assert result["archives"] == []


# --- pools ----------------------------------------------------------------------------------


class DyingRunner(FakeRunner):
    """An engine that goes away when asked to compile (``how``: the engine stops answering, or
    the container ends without a result, as when the engine kills it)."""

    def __init__(self, index: FakeIndex, how: str) -> None:
        super().__init__(index)
        self.how = how

    def run(
        self, spec: ContainerSpec, *, reporter: Reporter, verbose: bool = False
    ) -> ContainerResult:
        if spec.command[1:2] != (DRIVER_IN_CONTAINER,):
            return super().run(spec, reporter=reporter, verbose=verbose)
        self.containers_started += 1
        self.specs.append(spec)
        if self.how == "engine":
            msg = "Cannot reach the Docker engine at tcp://second:2376 (fake)"
            raise DockerUnavailableError(msg)
        return ContainerResult(exit_code=137, log_tail=("Killed",), duration_s=0.1)


@pytest.fixture
def second(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeRunner]:
    """The runner of every builder host a test names (made on first use)."""
    engines: dict[str, FakeRunner] = {}

    def for_builder(host: str, **_: object) -> FakeRunner:
        return engines[host]

    monkeypatch.setattr("nativebuild.engine.builders.remote_runner", for_builder)
    return engines


POOL = ("--builder", "x86_64=default", "--builder", f"x86_64={SECOND}")


def test_a_pool_spreads_the_compile_jobs_over_its_engines(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner, second: dict[str, FakeRunner]
) -> None:
    second[SECOND] = FakeRunner(index)
    code, result, err = invoke("build", project, tmp_path / "c", *POOL)
    assert code == 0, err
    builders = {b["engine"]: b for b in result["builders"]}
    assert set(builders) == {"default", SECOND}
    on_default, on_second = builders["default"]["jobs"], builders[SECOND]["jobs"]
    assert on_default, "both engines compile"
    assert on_second, "both engines compile"
    assert sorted(on_default + on_second) == sorted(SDISTS)  # each job once
    assert [b["failed"] for b in builders.values()] == [False, False]
    assert [len(compiles(r)) for r in (fake, second[SECOND])] == [1, 1]  # one batch each
    assert {w["source"] for w in result["wheels"] if w["name"] in SDISTS} == {"compiled"}
    assert f"on {SECOND} in example/build:x86_64" in err


@pytest.mark.parametrize("how", ["engine", "lost"])
def test_a_failing_engine_has_its_jobs_retried_on_the_others(
    project: Path,
    tmp_path: Path,
    index: FakeIndex,
    fake: FakeRunner,
    second: dict[str, FakeRunner],
    how: str,
) -> None:
    second[SECOND] = DyingRunner(index, how)
    code, result, err = invoke("build", project, tmp_path / "c", *POOL)
    assert code == 0, err
    assert f"warning: Engine {SECOND} failed while compiling for x86_64" in err
    builders = {b["engine"]: b for b in result["builders"]}
    assert builders[SECOND] == {"arch": "x86_64", "engine": SECOND, "jobs": [], "failed": True}
    assert sorted(builders["default"]["jobs"]) == sorted(SDISTS)
    assert len(compiles(fake)) == 2  # its own batch, then the failed engine's
    assert len(result["archives"]) == 1


def other_image(index: FakeIndex) -> FakeRunner:
    return FakeRunner(index, image_id="sha256:" + "2" * 64)


def no_emulation(index: FakeIndex) -> FakeRunner:
    runner = FakeRunner(index)
    runner.machine, runner.emulates = "aarch64", set()
    return runner


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (other_image, "example/build:x86_64 on tcp://second:2376 is sha256:22222222222"),
        (no_emulation, "cannot run x86_64 containers"),
    ],
)
def test_an_engine_that_cannot_build_the_same_wheels_is_left_out(
    project: Path,
    tmp_path: Path,
    index: FakeIndex,
    fake: FakeRunner,
    second: dict[str, FakeRunner],
    make: Any,
    why: str,
) -> None:
    """A build image of another id (its wheels would be cached under the wrong key), or no way
    to run the architecture: the engine compiles nothing, the others do it all."""
    second[SECOND] = make(index)
    code, result, err = invoke("build", project, tmp_path / "c", *POOL)
    assert code == 0, err
    assert why in err
    assert compiles(second[SECOND]) == []
    builders = {b["engine"]: b for b in result["builders"]}
    assert builders[SECOND]["failed"] is True
    assert sorted(builders["default"]["jobs"]) == sorted(SDISTS)


def test_the_build_fails_only_when_no_engine_is_left(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner, second: dict[str, FakeRunner]
) -> None:
    second[SECOND] = DyingRunner(index, "engine")
    third = "tcp://third:2376"
    second[third] = DyingRunner(index, "engine")
    pool = ("--builder", f"x86_64={SECOND}", "--builder", f"x86_64={third}")
    code, _, err = invoke("build", project, tmp_path / "c", *pool)
    assert code == 7, err
    assert "Every engine of the x86_64 pool failed" in err
    assert SECOND in err
    assert third in err
    assert "Traceback" not in err
    assert not (tmp_path / "c" / "dist").exists()


def test_one_engine_down_keeps_its_own_error(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner, second: dict[str, FakeRunner]
) -> None:
    second[SECOND] = DyingRunner(index, "engine")
    code, _, err = invoke("build", project, tmp_path / "c", "--builder", f"x86_64={SECOND}")
    assert code == 7, err
    assert "Cannot reach the Docker engine at tcp://second:2376" in err
    assert "pool" not in err


def test_a_compile_failure_is_not_retried_elsewhere(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner, second: dict[str, FakeRunner]
) -> None:
    second[SECOND] = FakeRunner(index)
    for runner in (fake, second[SECOND]):
        runner.fail_compile = {"alpha"}
    code, _, err = invoke("build", project, tmp_path / "c", *POOL)
    assert code == 6, err
    assert "alpha" in err
    assert "warning: Engine" not in err
    tried = [spec for r in (fake, second[SECOND]) for spec in compiles(r)]
    assert len(tried) == 2  # one batch per engine, no retry


def test_without_builders_the_default_engine_is_the_pool(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    code, result, err = invoke("build", project, tmp_path / "c")
    assert code == 0, err
    assert result["builders"] == [
        {"arch": "x86_64", "engine": "default", "jobs": sorted(SDISTS), "failed": False}
    ]
    assert "shard" not in result
