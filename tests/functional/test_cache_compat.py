"""A cache written by an earlier nativebuild is still hit: the package layout may move, cache
keys and entry formats may not (they are shared through S3 between versions and machines).

``data/cache-0.1.0.tar.gz`` holds what a cold build wrote with nativebuild 0.1.0 before the
package moved into one folder per stage (``index/`` with the sdist and wheel it used, ``cache/``):
``python -m tests.functional.test_cache_compat DIR`` wrote it, and must not be re-run to make
this test pass.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from tests.fakes import FakeIndex, FakeRunner, FakeUv
from tests.wheelfactory import make_tree

FIXTURE = Path(__file__).with_name("data") / "cache-0.1.0.tar.gz"
REQUIREMENTS = "markupsafe==2.1.5\nsix==1.16.0\n"
FILES = {"markupsafe": ("2.1.5", "markupsafe-2.1.5.tar.gz"), "six": ("1.16.0", None)}


def build(
    root: Path, cache: Path, index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> dict[str, object]:
    runner, uv = FakeRunner(index), FakeUv(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: uv)
    project = root / "project"
    make_tree(project, {"requirements.txt": REQUIREMENTS, "app/handler.py": "x = 1\n"})
    args = [
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        "--runtime", "python3.9", "--arch", "x86_64", "--build-image", "example/build:{arch}",
        "--glibc", "2.31", "--cache-dir", str(cache), "-o", str(project / "dist"),
        "--project", str(project), "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": ""})
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_a_cache_written_before_the_layout_move_is_hit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    index = FakeIndex(tmp_path / "index")
    for path in sorted((tmp_path / "index").iterdir()):
        name = path.name.split("-")[0]
        index.adopt(path, name, FILES[name][0])
    result = build(tmp_path / "elsewhere", tmp_path / "cache", index, monkeypatch)
    assert result["containers_started"] == 0
    sources = {w["name"]: w["source"] for w in result["wheels"]}  # type: ignore[attr-defined]
    assert sources == {"markupsafe": "cache", "six": "cache"}


def write_fixture(root: Path) -> None:
    """Run once, by hand, with the nativebuild whose cache the test must keep reading."""
    monkeypatch = pytest.MonkeyPatch()
    index = FakeIndex(root / "index")
    index.add_sdist("markupsafe", "2.1.5")
    index.add_wheel("six", "1.16.0")
    result = build(root, root / "cache", index, monkeypatch)
    assert result["containers_started"] == 2
    with tarfile.open(FIXTURE, "w:gz") as archive:
        for name in ("index", "cache"):
            archive.add(root / name, arcname=name)


if __name__ == "__main__":
    write_fixture(Path(sys.argv[1]))
