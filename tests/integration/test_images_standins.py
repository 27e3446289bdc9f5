"""``--kind image`` on the real engine, for both architectures (arm64 under QEMU): built with the
build stand-in on top of the runtime stand-in, loaded with --load, run as Lambda's non-root user
with a read-only root (the stand-in has no runtime interface emulator, so the entrypoint is the
runtime's Python), rebuilt from another directory with an empty cache (same image id), changed
in its code only (only the code layer changes), and pushed twice to Debian's docker-registry on
127.0.0.1 (the second push sends nothing)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.registry_server import PASSWORD, USER, registry

pytestmark = pytest.mark.docker

BUILD_IMAGE = "nativebuild-test/build-python3.9:{arch}"
RUNTIME_IMAGE = "nativebuild-test/runtime-python3.9:{arch}"
PLATFORM = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
REQUIREMENTS = """\
# compiled here from its sdist (ABI-checked, repaired), a manylinux wheel, pure Python
markupsafe==2.1.5
--no-binary markupsafe
simplejson==3.19.3
six==1.16.0
"""
HANDLER = """\
import markupsafe
import simplejson
import six


def handler(event, context):
    return simplejson.dumps([str(markupsafe.escape(event["name"])), six.PY3, {tag!r}])
"""
# Imports every top-level module the image has at /var/task, then calls the handler.
PROBE = """\
import importlib, json, os, pkgutil, platform, sys
task = os.environ["LAMBDA_TASK_ROOT"]
names = sorted(m.name for m in pkgutil.iter_modules([task]))
for name in names:
    importlib.import_module(name)
import markupsafe._speedups, simplejson._speedups
import handler
print(json.dumps({"modules": names, "machine": platform.machine(), "uid": os.getuid(),
                  "result": handler.handler({"name": "<b>"}, None),
                  "speedups": markupsafe._speedups.__file__}))
"""


@dataclass
class Built:
    result: dict[str, Any]
    stderr: str

    @property
    def image(self) -> dict[str, Any]:
        (archive,) = self.result["archives"]
        assert archive["kind"] == "image"
        return archive  # type: ignore[no-any-return]


def nativebuild(project: Path, cache: Path, arch: str, *extra: str) -> Built:
    args = [
        sys.executable, "-m", "nativebuild", "build",
        "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        "--runtime", "python3.9", "--arch", arch, "--build-image", BUILD_IMAGE,
        "--runtime-image", RUNTIME_IMAGE, "--glibc", "2.31", "--kind", "image",
        "--handler", "handler.handler", "--name", f"nativebuild-issue23-{arch.replace('_', '')}",
        "--cache-dir", str(cache), "-o", str(project / "dist"), "--json", *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    completed = subprocess.run(
        args, capture_output=True, text=True, env=env, check=False, timeout=1800
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return Built(json.loads(completed.stdout), completed.stderr)


def make_project(root: Path, tag: str = "v1") -> Path:
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(REQUIREMENTS)
    (root / "app" / "handler.py").write_text(HANDLER.format(tag=tag))
    return root


def run_probe(tag: str, arch: str) -> dict[str, Any]:
    """The image as Lambda runs it: uid 993, read-only root, no network."""
    completed = subprocess.run(
        ["docker", "run", "--rm", "--platform", PLATFORM[arch], "--read-only", "--user", "993:990",
         "--network", "none", "--tmpfs", "/tmp", "-e", "PYTHONDONTWRITEBYTECODE=1",
         "--entrypoint", "/var/lang/bin/python3.9", tag, "-c", PROBE],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def inspect(tag: str) -> dict[str, Any]:
    output = subprocess.run(
        ["docker", "image", "inspect", tag], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output)[0]  # type: ignore[no-any-return]


def remove(tag: str) -> None:
    subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_image_builds_runs_reproduces_and_pushes(tmp_path: Path, arch: str) -> None:
    project = make_project(tmp_path / "one")
    first = nativebuild(project, tmp_path / "cache-one", arch, "--load")
    image = first.image
    tag = f"{image['image']['repository']}:{image['image']['tag']}"
    try:
        # Loaded under the id the build computed, and runnable as Lambda would run it.
        assert image["image"]["loaded"] is True
        loaded = inspect(tag)
        assert loaded["Id"] == image["image_id"]
        assert loaded["Architecture"] == {"x86_64": "amd64", "arm64": "arm64"}[arch]
        assert loaded["Config"]["Cmd"] == ["handler.handler"]
        assert loaded["Created"].startswith("1980-01-01")
        probe = run_probe(tag, arch)
        assert probe["machine"] == {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
        assert probe["uid"] == 993
        assert {"handler", "markupsafe", "simplejson", "six"} <= set(probe["modules"])
        assert json.loads(probe["result"]) == ["&lt;b&gt;", True, "v1"]
        assert probe["speedups"].startswith("/var/task/markupsafe/")
        # The report: size per layer and per package.
        assert "runtime image (1 layer)" in first.stderr
        assert "dependencies: dependencies" in first.stderr
        assert "markupsafe 2.1.5" in first.stderr

        # Another directory, an empty cache: the same image, byte for byte.
        other = nativebuild(make_project(tmp_path / "two"), tmp_path / "cache-two", arch)
        assert other.image["image_id"] == image["image_id"]
        assert other.image["sha256"] == image["sha256"]

        # A code change: a new code layer, every other layer as it was; --load sends only it.
        (project / "app" / "handler.py").write_text(HANDLER.format(tag="v2"))
        changed = nativebuild(project, tmp_path / "cache-one", arch, "--load")
        before, after = image["image"], changed.image["image"]
        assert after["id"] != before["id"]
        assert after["base"] == before["base"]
        assert after["layers"][:-1] == before["layers"][:-1]
        assert (after["layers"][-1]["name"], before["layers"][-1]["name"]) == ("code", "code")
        assert after["layers"][-1]["digest"] != before["layers"][-1]["digest"]
        assert (
            f"(1 of {len(after['base']['layers']) + len(after['layers'])} layers" in changed.stderr
        )
        assert inspect(tag)["Id"] == after["id"]
        assert json.loads(run_probe(tag, arch)["result"])[2] == "v2"

        # Pushed twice, with docker's login for the registry: the second push sends nothing.
        with registry(tmp_path / "registry", auth=True) as served:
            docker_config = tmp_path / "docker-config"
            docker_config.mkdir()
            login = f"{USER}:{PASSWORD}".encode()
            (docker_config / "config.json").write_text(
                json.dumps({"auths": {served.host: {"auth": base64.b64encode(login).decode()}}})
            )
            env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
            ref = f"{served.host}/nativebuild/issue23:{{arch}}"
            push = [sys.executable, "-m", "nativebuild", "publish", "--manifest",
                    str(project / "dist" / "manifest.json"), "--image", ref, "--json"]  # fmt: skip
            once = subprocess.run(push, capture_output=True, text=True, env=env, check=False)
            assert once.returncode == 0, once.stderr
            (pushed,) = json.loads(once.stdout)["published"]
            assert pushed["arn"] == f"{served.host}/nativebuild/issue23@{after['manifest_digest']}"
            uploads = len(served.uploads())
            assert uploads >= 2 * (len(after["layers"]) + 2)  # POST + PUT per blob, + manifest
            twice = subprocess.run(push, capture_output=True, text=True, env=env, check=False)
            assert twice.returncode == 0, twice.stderr
            result = json.loads(twice.stdout)
            assert result["published"] == []
            assert result["skipped"][0]["reason"].endswith("is this image already")
            assert len(served.uploads()) == uploads  # nothing sent the second time

            # The registry serves what docker pulls, under the recorded digest.
            pulled = f"{served.host}/nativebuild/issue23@{after['manifest_digest']}"
            completed = subprocess.run(
                ["docker", "pull", "--platform", PLATFORM[arch], pulled],
                capture_output=True, text=True, env=env, check=False, timeout=600,
            )  # fmt: skip
            assert completed.returncode == 0, completed.stderr
            assert inspect(pulled)["Id"] == after["id"]
            remove(pulled)
    finally:
        remove(tag)
