"""Podman as the engine: Debian's podman serving the Docker API (`podman system service`, set up by
tests/images/podman-engine) builds, repairs and verifies an archive byte for byte the same as the
Docker engine does, and doctor names it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.network]

ROOT = Path(__file__).resolve().parents[2]
PODMAN = "unix:///run/nativebuild-podman.sock"
BUILD_IMAGE = "nativebuild-test/build-python3.9:{arch}"
RUNTIME_IMAGE = "nativebuild-test/runtime-python3.9:{arch}"
# psycopg2 links libpq, which the runtime stand-in lacks: repair must vendor it.
REQUIREMENTS = "psycopg2==2.9.10\nmarkupsafe==2.1.5\n--no-binary markupsafe\n"
HANDLER = """\
import markupsafe, psycopg2


def handler(event, context):
    return {"libpq": psycopg2.__libpq_version__, "escaped": str(markupsafe.escape("<a>"))}
"""


@pytest.fixture(scope="module")
def podman() -> str:
    """Podman's Docker API with the x86_64 stand-ins (idempotent; tests/setup-machine)."""
    subprocess.run(
        [str(ROOT / "tests" / "images" / "podman-engine")], check=True, capture_output=True,
        timeout=900,
    )  # fmt: skip
    return PODMAN


def nativebuild(*args: str, host: str | None) -> tuple[int, str, str]:
    env = dict(os.environ)
    if host is not None:
        env["DOCKER_HOST"] = host
    else:
        env.pop("DOCKER_HOST", None)
    done = subprocess.run(
        [sys.executable, "-m", "nativebuild", *args],
        capture_output=True, text=True, check=False, timeout=1800, env=env,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def build(root: Path, host: str | None) -> tuple[dict[str, Any], str]:
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(REQUIREMENTS)
    (root / "app" / "handler.py").write_text(HANDLER)
    code, out, err = nativebuild(
        "build", "-r", str(root / "requirements.txt"), "--src", str(root / "app"),
        "--runtime", "python3.9", "--arch", "x86_64", "--build-image", BUILD_IMAGE,
        "--runtime-image", RUNTIME_IMAGE, "--glibc", "2.31", "--build-package", "libpq-dev",
        "--cache-dir", str(root / "cache"), "-o", str(root / "dist"), "--json", "--verify",
        host=host,
    )  # fmt: skip
    assert code == 0, err[-6000:]
    result: dict[str, Any] = json.loads(out)
    return result, err


def test_podman_builds_repairs_and_verifies_the_same_bytes_as_docker(
    podman: str, tmp_path: Path
) -> None:
    on_podman, err = build(tmp_path / "podman", podman)
    assert {w["name"]: w["source"] for w in on_podman["wheels"]} == {
        "markupsafe": "compiled",
        "psycopg2": "compiled",
    }
    assert on_podman["containers_started"] >= 3  # derive, compile, probe, verify: all on Podman
    assert "vendored libpq.so.5" in err  # repaired
    assert "modules import in nativebuild-test/runtime-python3.9:x86_64" in err  # verified
    archive = Path(on_podman["archives"][0]["path"])
    names = zipfile.ZipFile(archive).namelist()
    assert any(n.startswith("psycopg2.libs/libpq-") for n in names), names

    on_docker, _ = build(tmp_path / "docker", None)
    assert on_docker["archives"][0]["sha256"] == on_podman["archives"][0]["sha256"]


def test_doctor_recognises_podman(podman: str, tmp_path: Path) -> None:
    code, out, err = nativebuild(
        "doctor", "--runtime", "python3.9", "--arch", "x86_64", "--build-image", BUILD_IMAGE,
        "--runtime-image", RUNTIME_IMAGE, "--cache-dir", str(tmp_path / "cache"), "--json",
        host=podman,
    )  # fmt: skip
    assert code == 0, out + err
    checks = {check["name"]: check for check in json.loads(out)["checks"]}
    engine = checks["docker engine"]
    assert engine["status"] == "ok"
    assert engine["detail"].startswith("Podman 4."), engine
    assert checks["package index from a container"]["status"] == "ok"
