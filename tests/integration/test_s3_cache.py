"""Two "machines" share one bucket, on a real Docker engine with the python3.13 stand-in images: the first
compiles a real sdist and uploads it; the second, with an empty cache directory, downloads it
and starts no container. S3 is moto's standalone server on 127.0.0.1, reached by real boto3 in
a separate nativebuild process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.moto_server import S3, moto_endpoint, s3
from tests.standins import PY313

__all__ = ["moto_endpoint", "s3"]  # fixtures
pytestmark = pytest.mark.docker

REQUIREMENTS = "markupsafe==3.0.2\n--no-binary markupsafe\nsix==1.16.0\n"


def nativebuild(project: Path, cache: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    args = [
        sys.executable, "-m", "nativebuild", "build",
        "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        *PY313.build_args("x86_64"), "--cache-dir", str(cache), "-o", str(project / "dist"), "--json", *extra,
    ]  # fmt: skip
    done = subprocess.run(
        args, capture_output=True, text=True, env=dict(os.environ), check=False, timeout=600
    )
    result = json.loads(done.stdout) if done.returncode == 0 else {}
    return done.returncode, result, done.stderr


def make_project(root: Path) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(REQUIREMENTS)
    (root / "app" / "handler.py").write_text("import markupsafe\n")
    return root


def test_second_machine_starts_no_container_and_gets_the_same_bytes(tmp_path: Path, s3: S3) -> None:
    project = make_project(tmp_path / "project")
    code, first, err = nativebuild(project, tmp_path / "machine-a", "--cache", s3.url)
    assert code == 0, err
    wheels = {w["name"]: w["source"] for w in first["wheels"]}
    assert wheels["markupsafe"] == "compiled"
    assert first["containers_started"] == 2  # the resolution (an sdist's metadata), the compile
    objects = s3.objects()
    built = [k for k in objects if "/built/" in k]
    assert len(built) == 2, objects  # one compiled wheel: its manifest and the wheel itself
    assert any(k.endswith("/manifest.json") for k in built)
    assert any(k.split("/")[-1].lower().startswith("markupsafe-3.0.2-") for k in built), built

    elsewhere = make_project(tmp_path / "elsewhere")
    code, second, err = nativebuild(elsewhere, tmp_path / "machine-b", "--cache", s3.url)
    assert code == 0, err
    assert second["containers_started"] == 0
    assert {w["source"] for w in second["wheels"]} == {"cache"}
    assert second["archives"][0]["sha256"] == first["archives"][0]["sha256"]
