"""nativebuild's build images, built for real FROM the python3.13 Debian trixie runtime stand-ins
(install-toolchain.sh's apt path), for x86_64 and arm64 (QEMU), then used to compile an sdist
whose archive imports in the runtime stand-in and passes `nativebuild verify`. Also
`nativebuild doctor` for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.standins import MACHINE, PLATFORM, PY313

pytestmark = pytest.mark.docker

STANDIN = PY313
BASE = STANDIN.runtime_image
STANDIN_BUILD = STANDIN.build_image
# Index credentials in the environment of `images build`: they reach the throw-away tools stage
# only (pip ignores this untrusted http index, so nothing is fetched from it).
INDEX_TOKEN = "nb-s3cr3t-7f3a9c"  # noqa: S105 - a planted fake, searched for
SECRET_INDEX = f"http://nbuser:{INDEX_TOKEN}@127.0.0.1:9/simple"


def nativebuild(
    *args: str, env: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nativebuild", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=timeout,
    )


def docker(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout
    )


@dataclass
class Built:
    arch: str
    tag: str
    stderr: str
    seconds: float


@pytest.fixture(scope="module", params=["x86_64", "arm64"])
def built(request: pytest.FixtureRequest) -> Built:
    arch = request.param
    started = time.monotonic()
    done = nativebuild(
        "images", "build", "--runtime", STANDIN.runtime, "--arch", arch, "--base", BASE, "--force",
        env={"PIP_EXTRA_INDEX_URL": SECRET_INDEX},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    return Built(
        arch=arch, tag=done.stdout.strip(), stderr=done.stderr,
        seconds=time.monotonic() - started,
    )  # fmt: skip


def inspect(ref: str) -> dict[str, object]:
    done = docker("image", "inspect", ref)
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)[0]
    return found


def test_build_tags_and_labels_the_image(built: Built) -> None:
    assert re.fullmatch(rf"nativebuild/build-python3\.13:[0-9a-f]{{12}}-{built.arch}", built.tag)
    assert "| Step 1/" in built.stderr, "the build log is streamed"
    attrs = inspect(built.tag)
    config = attrs["Config"]
    assert isinstance(config, dict)
    base = BASE.format(arch=built.arch)
    assert config["Labels"]["org.nativebuild.base"] == base
    assert config["Labels"]["org.nativebuild.base-digest"] == inspect(base)["Id"]
    assert built.tag.split(":")[1].startswith(config["Labels"]["org.nativebuild.recipe"])
    assert config["Labels"]["org.nativebuild.arch"] == built.arch
    assert attrs["Architecture"] == PLATFORM[built.arch].split("/")[1]
    assert not config["Entrypoint"]
    assert config["Cmd"] == ["/bin/bash"]


def test_toolchain_works_for_an_unprivileged_user(built: Built) -> None:
    script = (
        "set -e; uname -m; gcc --version; g++ --version; make --version; ld --version; "
        "cmake --version; patchelf --version; auditwheel --version; "
        f"test -f /usr/include/python{STANDIN.python}/Python.h"
    )
    done = docker(
        "run", "--rm", "--platform", PLATFORM[built.arch], "-u", "65534:65534", built.tag,
        "sh", "-c", script,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == MACHINE[built.arch]
    assert any(line.startswith("cmake version 3.31") for line in lines)
    assert any(line.startswith("auditwheel 6.4.2") for line in lines)


def test_no_ca_bundle_or_index_setting_is_left_in_the_image(built: Built) -> None:
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", built.tag)
    assert history.returncode == 0, history.stderr
    assert "PIP_INDEX_URL" not in history.stdout
    assert "ca-bundle" not in history.stdout
    done = docker(
        "run", "--rm", "--platform", PLATFORM[built.arch], built.tag,
        "sh", "-c", "test ! -e /tmp/nativebuild-setup && ! find / -xdev -name ca-bundle.crt | grep .",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_index_credentials_are_in_no_layer_history_or_log(built: Built) -> None:
    assert INDEX_TOKEN not in built.stderr  # the streamed build log is redacted
    history = docker("history", "--no-trunc", built.tag)
    assert history.returncode == 0, history.stderr
    assert INDEX_TOKEN not in history.stdout
    assert INDEX_TOKEN not in json.dumps(inspect(built.tag))
    saved = subprocess.run(
        ["docker", "save", built.tag], capture_output=True, check=True, timeout=600
    ).stdout  # every layer and the config, as the registry would get them
    assert len(saved) > 10_000_000
    assert INDEX_TOKEN.encode() not in saved


def test_second_build_reuses_the_image(built: Built) -> None:
    done = nativebuild("images", "build", "--runtime", STANDIN.runtime, "--arch", built.arch,
                       "--base", BASE)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == built.tag
    assert "Building" not in done.stderr


def test_list_shows_the_image_as_current(built: Built) -> None:
    done = nativebuild("images", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = {tag: item for item in json.loads(done.stdout) for tag in item["tags"]}
    item = listed[built.tag]
    assert item["current"] is True
    assert item["runtime"] == STANDIN.runtime
    assert item["arch"] == built.arch
    assert item["id"].startswith("sha256:")


def test_the_image_compiles_an_sdist_that_imports_in_the_runtime(
    built: Built, tmp_path: Path
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "requirements.txt").write_text("markupsafe==3.0.2\n--no-binary markupsafe\n")
    (tmp_path / "app" / "handler.py").write_text(
        "import markupsafe\n\ndef handler(event, context):\n"
        "    return str(markupsafe.escape(event['name']))\n"
    )
    runtime = BASE.format(arch=built.arch)
    done = nativebuild(
        "build", "-r", str(tmp_path / "requirements.txt"), "--src", str(tmp_path / "app"),
        "--runtime", STANDIN.runtime, "--arch", built.arch, "--build-image", built.tag,
        "--runtime-image", runtime, "--glibc", STANDIN.glibc, "--cache-dir", str(tmp_path / "cache"),
        "-o", str(tmp_path / "dist"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    result = json.loads(done.stdout)
    (wheel,) = result["wheels"]
    assert wheel["source"] == "compiled"
    assert wheel["filename"].endswith(f"-cp313-cp313-linux_{MACHINE[built.arch]}.whl")
    archive = Path(result["archives"][0]["path"])
    task = tmp_path / "task"
    with zipfile.ZipFile(archive) as zf:
        assert f"markupsafe/_speedups{STANDIN.extension_suffix(built.arch)}" in zf.namelist()
        zf.extractall(task)
    code = "import markupsafe._speedups, handler; print(handler.handler({'name': '<b>'}, None))"
    ran = docker(
        "run", "--rm", "--platform", PLATFORM[built.arch], "--network", "none",
        "-u", "65534:65534", "-v", f"{task}:/var/task:ro", runtime,
        STANDIN.interpreter, "-c", code,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "&lt;b&gt;"
    verified = nativebuild(
        "verify", str(archive), "--runtime", STANDIN.runtime, "--arch", built.arch,
        "--runtime-image", runtime, "--cache-dir", str(tmp_path / "cache"), "--json",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr[-3000:]
    assert json.loads(verified.stdout)["ok"] is True


def test_a_missing_base_is_named() -> None:
    done = nativebuild(
        "images",
        "build",
        "--runtime",
        STANDIN.runtime,
        "--base",
        "nativebuild-test/no-such-base:{arch}",
    )
    assert done.returncode == 8, done.stderr
    assert "nativebuild-test/no-such-base:x86_64" in done.stderr
    assert "Traceback" not in done.stderr


# --- doctor ---------------------------------------------------------------------------------


def test_doctor_passes_with_the_standins(tmp_path: Path) -> None:
    done = nativebuild(
        "doctor", "--json", "--runtime", STANDIN.runtime, "--arch", "x86_64", "--arch", "arm64",
        "--build-image", STANDIN_BUILD, "--runtime-image", BASE,
        "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert done.returncode == 0, json.dumps(report, indent=2)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["docker engine"]["status"] == "ok"
    assert "aarch64" in checks["run arm64 containers"]["detail"]
    index = checks["package index from a container"]
    assert index["status"] == "ok"
    assert "HTTP 200" in index["detail"]
    runtime = checks[f"runtime {STANDIN.runtime}"]
    assert runtime["status"] == "ok", runtime  # supported until 2029-06-30
    # python3.9's dates are all behind us, whatever day this runs.
    stages = {row["runtime"]: row for row in report["runtimes"]}
    assert stages["python3.9"]["stage"] == "update-blocked"
    assert stages["python3.9"]["block_update"] == "2026-03-09"


def test_doctor_fails_when_the_engine_is_down(tmp_path: Path) -> None:
    done = nativebuild(
        "doctor", "--runtime", STANDIN.runtime, "--build-image", STANDIN_BUILD,
        "--runtime-image", BASE, "--cache-dir", str(tmp_path / "cache"),
        env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"},
    )  # fmt: skip
    assert done.returncode == 1
    assert re.search(r"problem\s+docker engine", done.stdout)
    assert "fix:" in done.stdout
    assert "Traceback" not in done.stderr
    assert "Lambda's Python runtimes on " in done.stdout
    assert re.search(
        r"python3\.9 +Amazon Linux 2 +glibc 2\.26 .*2025-12-15.*update-blocked", done.stdout
    )


def test_doctor_names_a_missing_image(tmp_path: Path) -> None:
    done = nativebuild(
        "doctor", "--json", "--runtime", STANDIN.runtime,
        "--build-image", "nativebuild-test/no-such-image:{arch}", "--runtime-image", BASE,
        "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert done.returncode == 1
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["build image (x86_64)"]["status"] == "problem"
    assert "nativebuild-test/no-such-image:x86_64" in checks["build image (x86_64)"]["detail"]


def test_no_container_is_left_behind() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    listed = docker("ps", "-a", "--filter", "label=org.nativebuild", "--format", "{{.Names}}")
    assert listed.stdout.strip() == ""
