"""Planning on the host against the real PyPI: the right file per runtime and architecture,
with no Docker engine at all, and containers only for what must be compiled."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
BUILD_IMAGE = "nativebuild-test/build-python3.9:{arch}"
RUNTIME_IMAGE = "nativebuild-test/runtime-python3.9:x86_64"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nativebuild", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False, timeout=600,
    )  # fmt: skip


def plan(requirements: Path, runtime: str, cache: Path, *extra: str) -> dict[str, Any]:
    done = run("plan", "-r", str(requirements), "--runtime", runtime, "--cache-dir", str(cache),
               "--json", *extra, env=NO_ENGINE)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["containers_started"] == 0
    return result


def files(result: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["file"] for item in result["targets"][0]["items"]}


@pytest.mark.network
def test_manylinux_2_28_wheels_are_refused_on_amazon_linux_2_and_taken_on_2023(
    tmp_path: Path,
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("cryptography==43.0.0\n")
    for runtime in ("python3.9", "python3.10", "python3.11"):
        chosen = files(plan(requirements, runtime, tmp_path / "cache"))["cryptography"]
        assert "manylinux_2_17_x86_64" in chosen, (runtime, chosen)
        assert "2_28" not in chosen
    for runtime in ("python3.12", "python3.13"):
        chosen = files(plan(requirements, runtime, tmp_path / "cache"))["cryptography"]
        assert chosen.endswith("manylinux_2_28_x86_64.whl"), (runtime, chosen)
    arm = files(plan(requirements, "python3.12", tmp_path / "cache", "--arch", "arm64"))
    assert arm["cryptography"].endswith("manylinux_2_28_aarch64.whl")


@pytest.mark.network
def test_markers_pin_per_python_version_and_architecture(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        'numpy==1.26.4; python_version < "3.12"\n'
        'numpy==2.1.3; python_version >= "3.12"\n'
        'six==1.16.0; platform_machine == "aarch64"\n'
        'pywin32==306; sys_platform == "win32"\n'
    )
    old = files(plan(requirements, "python3.9", tmp_path / "cache"))
    assert old == {"numpy": "numpy-1.26.4-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"}
    new = files(plan(requirements, "python3.12", tmp_path / "cache", "--arch", "arm64"))
    assert set(new) == {"numpy", "six"}
    assert new["numpy"].startswith("numpy-2.1.3-cp312-cp312-")
    assert "aarch64" in new["numpy"]


@pytest.mark.network
def test_wrong_hash_fails_before_anything_is_downloaded(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "requirements.txt").write_text(
        "six==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n"
        f"idna==3.6 --hash=sha256:{'0' * 64}\n"
    )
    cache = tmp_path / "cache"
    done = run("build", "-r", str(project / "requirements.txt"), "--runtime", "python3.9",
               "--cache-dir", str(cache), "-o", str(project / "dist"), env=NO_ENGINE)  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "idna-3.6-py3-none-any.whl" in done.stderr
    assert not (project / "dist").exists()
    assert not list(cache.glob("v1/files/*/*/*.whl")), "nothing may be downloaded"


@pytest.mark.docker
def test_all_binary_set_builds_with_no_engine_and_imports(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "app").mkdir(parents=True)
    (project / "requirements.txt").write_text("charset-normalizer==3.3.2\nsix==1.16.0\nidna==3.6\n")
    (project / "app" / "handler.py").write_text("import charset_normalizer, six, idna\n")
    args = ["build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
            "--runtime", "python3.9", "--glibc", "2.31", "--cache-dir", str(tmp_path / "cache"),
            "-o", str(project / "dist"), "--json"]  # fmt: skip
    done = run(*args, env=NO_ENGINE)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["containers_started"] == 0
    assert {w["source"] for w in result["wheels"]} == {"download"}
    for wheel in result["wheels"]:  # provenance: file and hash of what was chosen
        assert wheel["filename"].endswith(".whl")
        assert len(wheel["sha256"]) == 64
    archive = Path(result["archives"][0]["path"])
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == result["archives"][0]["sha256"]
    task = tmp_path / "task"
    zipfile.ZipFile(archive).extractall(task)
    imported = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{task}:/var/task:ro", RUNTIME_IMAGE,
         "/var/lang/bin/python3.9", "-c", "import handler, charset_normalizer.md; print('ok')"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr


@pytest.mark.docker
def test_sdist_only_package_goes_to_the_container(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "app").mkdir(parents=True)
    # docopt 0.6.2 is published as an sdist only: uv on the host will not build it.
    (project / "requirements.txt").write_text("docopt==0.6.2\nsix==1.16.0\n")
    (project / "app" / "handler.py").write_text("import docopt\n")
    done = run("build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
               "--runtime", "python3.9", "--build-image", BUILD_IMAGE, "--glibc", "2.31",
               "--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    sources = {w["name"]: w["source"] for w in result["wheels"]}
    assert sources == {"docopt": "compiled", "six": "download"}
    # One container: the resolution in the image, which then compiles what its report names.
    assert result["containers_started"] == 1
    assert "docopt 0.6.2 in nativebuild-test/build-python3.9:x86_64 (same container)" in done.stderr
    names = zipfile.ZipFile(result["archives"][0]["path"]).namelist()
    assert "docopt.py" in names


@pytest.mark.docker
def test_local_project_with_a_c_extension_compiles_in_the_build_image(tmp_path: Path) -> None:
    project = tmp_path / "p"
    lib = project / "libs" / "fastmath"
    (lib / "src").mkdir(parents=True)
    (project / "app").mkdir()
    (lib / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "fastmath"\nversion = "1.0"\ndependencies = ["six==1.16.0"]\n'
    )
    (lib / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "setup(ext_modules=[Extension('fastmath', ['src/fastmath.c'])])\n"
    )
    (lib / "src" / "fastmath.c").write_text(
        "#include <Python.h>\n"
        "static PyObject *twice(PyObject *self, PyObject *arg) {\n"
        "  return PyLong_FromLong(2 * PyLong_AsLong(arg)); }\n"
        'static PyMethodDef methods[] = {{"twice", twice, METH_O, NULL}, {NULL, NULL, 0, NULL}};\n'
        'static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fastmath", NULL, -1, methods};\n'
        "PyMODINIT_FUNC PyInit_fastmath(void) { return PyModule_Create(&module); }\n"
    )
    (project / "requirements.txt").write_text("./libs/fastmath\n")
    (project / "app" / "handler.py").write_text(
        "import fastmath, six\nRESULT = fastmath.twice(21)\n"
    )
    done = run("build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
               "--runtime", "python3.9", "--build-image", BUILD_IMAGE, "--glibc", "2.31",
               "--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    sources = {w["name"]: (w["source"], w["filename"]) for w in result["wheels"]}
    assert sources["fastmath"] == ("compiled", "fastmath-1.0-cp39-cp39-linux_x86_64.whl")
    assert sources["six"][0] == "download"
    assert result["containers_started"] == 1, "resolved on the host; one container compiles"
    task = tmp_path / "task"
    zipfile.ZipFile(result["archives"][0]["path"]).extractall(task)
    imported = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{task}:/var/task:ro", RUNTIME_IMAGE,
         "/var/lang/bin/python3.9", "-c", "import handler; print(handler.RESULT)"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "42"
