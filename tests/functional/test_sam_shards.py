"""``nativebuild sam build --shard K/N`` through the CLI: real templates and files, fake
containers (tests/fakes.py), moto's S3 server over real HTTP. Each "runner" is its own local
cache directory; the shards share only the bucket."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from tests.fakes import ArchiveJobsRunner, FakeIndex, FakeRunner, FakeUv
from tests.moto_server import S3, moto_endpoint, s3
from tests.wheelfactory import make_tree

__all__ = ["moto_endpoint", "s3"]  # fixtures
IMAGE = "example/build-{runtime}:{arch}"
SDISTS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")

TEMPLATE = """\
Globals:
  Function: {Runtime: python3.9, Handler: app.handler}
Resources:
  First:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: first/, Architectures: [x86_64]}
  Twin:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: twin/, Architectures: [x86_64]}
  Second:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: second/, Architectures: [x86_64]}
  OnArm:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: arm/, Architectures: [arm64]}
  Node:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: node/, Runtime: nodejs20.x, Handler: index.handler}
"""
FIRST = "alpha==1.0\nbravo==1.1\ncharlie==1.2\nsix==1.16.0\n"
FILES = {
    "template.yaml": TEMPLATE,
    "first/app.py": "F = 1\n", "first/requirements.txt": FIRST,
    "twin/app.py": "T = 1\n", "twin/requirements.txt": FIRST,  # the same set as First
    "second/app.py": "S = 1\n",  # shares bravo and charlie with First: one compile each
    "second/requirements.txt": "bravo==1.1\ncharlie==1.2\ndelta==1.3\necho==1.4\n",
    "arm/app.py": "A = 1\n", "arm/requirements.txt": "alpha==1.0\nfoxtrot==1.5\n",
    "node/index.js": "exports.handler = async () => 1;\n",
}  # fmt: skip
# Every sdist to compile, once each: (name, platform).
KEYS = {(name, "linux/amd64") for name in SDISTS[:5]} | {
    ("alpha", "linux/arm64"),
    ("foxtrot", "linux/arm64"),
}
PLATFORM = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    index.add_wheel("idna", "3.6")
    for number, name in enumerate(SDISTS):
        index.add_sdist(name, f"1.{number}")
    return index


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> ArchiveJobsRunner:
    runner = ArchiveJobsRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: FakeUv(index))
    return runner


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "app", FILES)


def sam_build(
    app: Path, cache: Path, *extra: str, env: dict[str, str] | None = None, json_output: bool = True
) -> tuple[int, dict[str, Any], str, str]:
    args = [
        "sam", "build", "--build-image", IMAGE, "--glibc", "2.31", "--cache-dir", str(cache),
        *(["--json"] if json_output else []), *extra,
    ]  # fmt: skip
    previous = Path.cwd()
    os.chdir(app)
    try:
        result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": "", **(env or {})})
    finally:
        os.chdir(previous)
    output = json.loads(result.stdout) if result.exit_code == 0 and json_output else {}
    return result.exit_code, output, result.stdout, result.stderr


def compiled_by(fake: FakeRunner) -> list[tuple[str, str]]:
    """Every sdist a compile container built: (name, platform), in order."""
    found = []
    for spec in fake.specs:
        if spec.description.startswith("compile "):
            for job in spec.description.removeprefix("compile ").split(", "):
                found.append((job.split()[0], spec.platform or ""))
    return found


def archives(build_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(build_dir).as_posix(): p.read_bytes() for p in build_dir.rglob("*.zip")}


def test_two_shards_compile_each_sdist_of_the_template_once_and_the_assembly_none(
    app: Path, tmp_path: Path, fake: ArchiveJobsRunner, s3: S3
) -> None:
    owner: dict[tuple[str, str], str] = {}
    keys: dict[tuple[str, str], str] = {}
    for k in (1, 2):
        shard = f"{k}/2"
        before = len(compiled_by(fake))
        code, result, _, err = sam_build(app, tmp_path / f"runner-{k}", "--shard", shard,
                                         "--cache", s3.url)  # fmt: skip
        assert code == 0, err
        assert set(result) == {
            "shard", "resources", "wheels", "left_to_other_shards", "containers_started",
            "builders", "deprecations",
        }  # fmt: skip
        assert result["shard"] == shard
        assert result["resources"] == []
        assert not (app / ".aws-sam").exists(), "a shard writes no build directory"
        mine = {(w["name"], PLATFORM[w["arch"]]) for w in result["wheels"]}
        assert mine, f"shard {shard} of seven keys has work (else pick other names)"
        assert {w["source"] for w in result["wheels"]} == {"compiled"}
        # One compile per key across the whole template: First, Twin and Second share some.
        assert sorted(compiled_by(fake)[before:]) == sorted(mine)
        left = {(j["name"], PLATFORM[j["arch"]]): j for j in result["left_to_other_shards"]}
        assert len(left) == len(result["left_to_other_shards"]), "each job left once"
        assert set(left) == KEYS - mine
        assert {j["shard"] for j in left.values()} == {f"{3 - k}/2"}
        for found, job in left.items():
            assert keys.setdefault(found, job["key"]) == job["key"]
        for found in mine:
            assert found not in owner, f"{found} compiled by shards {owner[found]} and {shard}"
            owner[found] = shard
    assert set(owner) == KEYS
    assert len(compiled_by(fake)) == len(KEYS)

    started = fake.containers_started
    code, assembled, _, err = sam_build(app, tmp_path / "assembly", "--cache-only",
                                        "--cache", s3.url)  # fmt: skip
    assert code == 0, err
    assert assembled["containers_started"] == 0
    assert fake.containers_started == started
    sdist_sources = {w["source"] for w in assembled["wheels"] if w["name"] in SDISTS}
    assert sdist_sources == {"cache"}
    # First and Twin download six (no shard fetches a wheel); the others are all cached.
    statuses = {r["logical_id"]: r["status"] for r in assembled["resources"]}
    assert statuses == {
        "First": "built", "Twin": "built", "Second": "cached", "OnArm": "cached",
        "Node": "skipped",
    }  # fmt: skip

    code, alone, _, err = sam_build(app, tmp_path / "alone", "--build-dir", str(tmp_path / "one"))
    assert code == 0, err
    assert alone["containers_started"] > 0  # compiled it all itself
    assembled_zips = archives(app / ".aws-sam" / "build")
    assert len(assembled_zips) == 4
    assert assembled_zips == archives(tmp_path / "one")  # byte for byte
    with zipfile.ZipFile(app / ".aws-sam" / "build" / "OnArm" / "OnArm-python3.9-arm64.zip") as zf:
        assert "foxtrot/_speedups.so" in zf.namelist()


def test_a_shard_run_again_finds_its_wheels_cached_and_leaves_the_build_dir_alone(
    app: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    cache = tmp_path / "runner"
    code, built, _, err = sam_build(app, cache)
    assert code == 0, err
    build_dir = app / ".aws-sam" / "build"
    written = {p: p.read_bytes() for p in build_dir.rglob("*") if p.is_file()}
    started = fake.containers_started
    code, _, stdout, err = sam_build(app, cache, "--shard", "2/2", json_output=False)
    assert code == 0, err
    assert stdout == "", "no built template to name"
    code, again, _, err = sam_build(app, cache, "--shard", "2/2")
    assert code == 0, err
    assert again["wheels"], "shard 2/2 owns some of the seven keys"
    assert {w["source"] for w in again["wheels"]} == {"cache"}
    assert again["containers_started"] == 0
    assert fake.containers_started == started
    # Not the last build's up-to-date answer: the shard's own.
    assert again["shard"] == "2/2"
    assert {p: p.read_bytes() for p in build_dir.rglob("*") if p.is_file()} == written
    assert built["resources"]


def test_the_summary_names_what_the_shard_compiled_and_left(
    app: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    code, _, stdout, err = sam_build(app, tmp_path / "c", "--shard", "1/1", json_output=False)
    assert code == 0, err
    assert stdout == ""
    assert "shard 1/1: compiled: " in err
    assert "foxtrot (arm64)" in err
    assert "0 left to the other shards" in err


@pytest.mark.parametrize(
    ("extra", "env", "why"),
    [
        (("--shard", "3/2"), {}, "K must be between 1 and N"),
        (("--shard", "two"), {}, "must look like K/N"),
        (("--shard", "1/2", "--cache-only"), {}, "--cache-only forbids that"),
        ((), {"NATIVEBUILD_SHARD": "0/2"}, "K must be between 1 and N"),
    ],
)
def test_a_bad_shard_is_refused_before_any_container(
    app: Path,
    tmp_path: Path,
    fake: ArchiveJobsRunner,
    extra: tuple[str, ...],
    env: dict[str, str],
    why: str,
) -> None:
    code, _, _, err = sam_build(app, tmp_path / "c", *extra, env=env)
    assert code == 2, err
    assert why in err
    assert "Traceback" not in err
    assert fake.containers_started == 0
    assert not (app / ".aws-sam").exists()


def test_shard_from_the_environment(app: Path, tmp_path: Path, fake: ArchiveJobsRunner) -> None:
    code, result, _, err = sam_build(app, tmp_path / "c", env={"NATIVEBUILD_SHARD": "1/2"})
    assert code == 0, err
    assert result["shard"] == "1/2"
    assert not (app / ".aws-sam").exists()


IMAGE_TEMPLATE = """\
Resources:
  Api:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      Architectures: [x86_64]
      ImageConfig: {Command: [handler.handler]}
    Metadata: {BuildMethod: nativebuild-image, Runtime: python3.9, DockerContext: ./img}
  Zip:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: zip/, Runtime: python3.9, Handler: app.handler}
"""


def test_an_image_functions_sdists_are_sharded_too_and_shared_with_zips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image function (nativebuild-image) needs the same wheels as a zip function of the
    same requirements: one compile, then the assembly builds the image from the cache."""
    from tests.functional.image_project import RUNTIME_IMAGE, fake_engine, image_index

    fake = fake_engine(image_index(tmp_path), monkeypatch)
    requirements = "six==1.16.0\nmarkupsafe==2.1.5\n"
    app = make_tree(
        tmp_path / "img-app",
        {
            "template.yaml": IMAGE_TEMPLATE,
            "img/requirements.txt": requirements,
            "img/handler.py": "def handler(event, context):\n    return 1\n",
            "zip/requirements.txt": requirements,
            "zip/app.py": "Z = 1\n",
        },
    )
    runtime = ("--runtime-image", RUNTIME_IMAGE)
    code, result, _, err = sam_build(app, tmp_path / "cache", "--shard", "1/1", *runtime)
    assert code == 0, err
    assert [(w["name"], w["source"]) for w in result["wheels"]] == [("markupsafe", "compiled")]
    assert compiled_by(fake) == [("markupsafe", "linux/amd64")]  # once, for both functions
    code, assembled, _, err = sam_build(app, tmp_path / "cache", "--cache-only", *runtime)
    assert code == 0, err
    assert compiled_by(fake) == [("markupsafe", "linux/amd64")]
    assert {r["logical_id"]: r["status"] for r in assembled["resources"]} == {
        "Api": "cached", "Zip": "built",
    }  # fmt: skip


def test_a_shard_refuses_an_image_function_without_requirements(
    tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    app = make_tree(
        tmp_path / "img",
        {"template.yaml": IMAGE_TEMPLATE, "img/handler.py": "X = 1\n", "zip/app.py": "Z = 1\n"},
    )
    code, _, _, err = sam_build(app, tmp_path / "cache", "--shard", "1/2")
    assert code == 20, err
    assert "Api (nativebuild-image): no requirements file" in err
    assert fake.containers_started == 0
