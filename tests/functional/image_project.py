"""What the image tests share: a fake index and engine, a project, and a build through the CLI."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from tests.fakes import FakeIndex, FakeRunner, FakeUv
from tests.wheelfactory import make_tree

BUILD_IMAGE = "example/build:{arch}"
RUNTIME_IMAGE = "example/runtime-python3.9:{arch}"


def image_index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    index.add_wheel("idna", "3.6")
    index.add_sdist("markupsafe", "2.1.5")
    return index


def fake_engine(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    runner = FakeRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    uv = FakeUv(index)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: uv)
    return runner


def make_project(root: Path, requirements: str = "six==1.16.0\nmarkupsafe==2.1.5\n") -> Path:
    return make_tree(
        root,
        {
            "requirements.txt": requirements,
            "app/handler.py": "import six\n\ndef handler(event, context):\n    return 1\n",
            "app/lib/util.py": "X = 1\n",
        },
    )


def build(project: Path, cache: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    args = [
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        "--runtime", "python3.9", "--arch", "x86_64", "--build-image", BUILD_IMAGE,
        "--runtime-image", RUNTIME_IMAGE, "--glibc", "2.31", "--kind", "image",
        "--handler", "handler.handler", "--name", "orders",
        "--cache-dir", str(cache), "-o", str(project / "dist"), "--project", str(project),
        "--json", *extra,
    ]  # fmt: skip
    return CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": "", **(env or {})})


def ok(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}  # type: ignore[union-attr]


def layer_files(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as archive:
        return {m.name: m for m in archive}
