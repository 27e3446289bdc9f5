"""--cache-only never starts a resolution container: when uv on the host cannot resolve without
an sdist's metadata, and no cached resolution answers, the build fails (exit 13) naming the
requirements, before any container; a cached answer (local or from the shared bucket) is fine.
Through the CLI, with the fake engine and moto's S3 server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.pipeline.resolution import sdist_only_names
from tests.fakes import FakeIndex, FakeRunner, FakeUv
from tests.moto_server import S3, moto_endpoint, s3
from tests.wheelfactory import make_tree

__all__ = ["moto_endpoint", "s3"]  # fixtures
IMAGE = "example/build:{arch}"


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    index.add_sdist("markupsafe", "2.1.5")  # no wheel: uv cannot resolve it with --no-build
    return index


@pytest.fixture
def uv(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeUv:
    uv = FakeUv(index)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: uv)
    return uv


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch, uv: FakeUv) -> FakeRunner:
    runner = FakeRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    return runner


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


def args(project: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "-r", str(project / "requirements.txt"), "--runtime", "python3.9", "--arch", "x86_64",
        "--build-image", IMAGE, "--glibc", "2.31", "--cache-dir", str(cache),
        "--project", str(project), *extra,
    ]  # fmt: skip


def run_build(project: Path, cache: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    argv = ["build", *args(project, cache, *extra), "--src", str(project / "app")]
    argv += ["-o", str(project / "dist"), "--json"]
    result = CliRunner().invoke(cli.app, argv, env={"SOURCE_DATE_EPOCH": ""})
    out = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, out, result.stderr


def run_plan(project: Path, cache: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.app, ["plan", *args(project, cache, *extra), "--json"])
    return result.exit_code, result.stderr


def test_sdist_only_requirement_fails_before_the_resolution_container(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    code, _, err = run_build(project, tmp_path / "cache", "--cache-only")
    assert code == 13, err
    assert "--cache-only" in err
    assert "markupsafe==2.1.5" in err
    assert "six" not in err
    assert "without --cache-only" in err
    assert "pin versions of markupsafe that have wheels" in err
    assert "Traceback" not in err
    assert fake.containers_started == 0
    assert fake.specs == []
    assert not (project / "dist").exists()

    code, err = run_plan(project, tmp_path / "cache", "--cache-only")
    assert code == 13, err
    assert "markupsafe==2.1.5" in err
    assert fake.containers_started == 0


def test_an_sdist_only_dependency_is_named(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner
) -> None:
    index.add_wheel("wrapper", "1.0", deps=("markupsafe==2.1.5",))
    (project / "requirements.txt").write_text("wrapper==1.0\n")
    code, _, err = run_build(project, tmp_path / "cache", "--cache-only")
    assert code == 13, err
    assert "sdists (markupsafe)" in err  # a dependency: named, though not a requirement
    assert "pin versions of markupsafe" in err
    assert fake.containers_started == 0


def test_without_uv_on_the_host_cache_only_starts_no_container(
    project: Path, tmp_path: Path, uv: FakeUv, fake: FakeRunner
) -> None:
    uv.installed = False
    (project / "requirements.txt").write_text("six==1.16.0\n")
    code, _, err = run_build(project, tmp_path / "cache", "--cache-only")
    assert code == 13, err
    assert "uv is not installed" in err
    assert fake.containers_started == 0


def test_a_cached_resolution_answers_without_a_container(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    code, cold, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert cold["containers_started"] == 1  # resolution in the image, which also compiled
    code, warm, err = run_build(project, tmp_path / "cache", "--cache-only")
    assert code == 0, err
    assert warm["containers_started"] == 0
    assert fake.containers_started == 1


def test_a_resolution_from_the_shared_cache_answers_on_another_machine(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3
) -> None:
    code, cold, err = run_build(project, tmp_path / "a", "--cache", s3.url)
    assert code == 0, err
    code, warm, err = run_build(project, tmp_path / "b", "--cache", s3.url, "--cache-only")
    assert code == 0, err
    assert warm["containers_started"] == 0
    assert warm["archives"][0]["sha256"] == cold["archives"][0]["sha256"]


UV_SDIST_ONLY = (
    "  x No solution found when resolving dependencies:\n"
    "  Because only psycopg2==2.9.9 is available and psycopg2==2.9.9 has no usable wheels, we "
    "can conclude that all versions of psycopg2 cannot be used.\n"
    "      And because you require psycopg2, we can conclude that your requirements are "
    "unsatisfiable.\n\n"
    "      hint: Wheels are required for `psycopg2` because building from source is disabled "
    "for all packages (i.e., with `--no-build`)"
)
UV_SDIST_ONLY_DEPENDENCY = (
    "Because all versions of Py_YAML have no usable wheels and lib-a==1 depends on py-yaml, we "
    "can conclude that lib-a==1 cannot be used.\n"
    "hint: Wheels are required for `py-yaml` because building from source is disabled"
)


@pytest.mark.parametrize(
    ("reason", "names"),
    [
        (UV_SDIST_ONLY, ["psycopg2"]),
        (UV_SDIST_ONLY_DEPENDENCY, ["py-yaml"]),
        ("uv is not installed", []),
    ],
)
def test_sdist_only_names(reason: str, names: list[str]) -> None:
    assert sdist_only_names(reason) == names
