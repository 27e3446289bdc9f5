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
from packaging.utils import parse_wheel_filename

from tests.standins import PY313

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
STANDIN = PY313
RUNTIME_IMAGE = STANDIN.runtime_for("x86_64")


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


def files_by_arch(result: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        target["arch"]: {item["name"]: item["file"] for item in target["items"]}
        for target in result["targets"]
    }


def manylinux_glibc(platform: str) -> tuple[int, int] | None:
    """(2, 34) for manylinux_2_34_x86_64, the PEP 600 value of a legacy alias, None if not
    manylinux."""
    legacy = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
    for alias, version in legacy.items():
        if platform.startswith(alias + "_"):
            return version
    if platform.startswith("manylinux_"):
        major, minor = platform.split("_")[1:3]
        return int(major), int(minor)
    return None


# Pinned so that the files on offer do not change with releases; the properties below are what
# must hold for any release: loadable at glibc 2.34, the target's machine, and the runtime's own
# CPython ABI (never the free-threaded cp3Xt one Lambda does not run) or the stable abi3.
AL2023_REQUIREMENTS = "cryptography==46.0.3\nnumpy==2.3.5\npydantic-core==2.41.5\n"


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
@pytest.mark.parametrize("runtime", ["python3.12", "python3.13", "python3.14"])
def test_al2023_runtimes_take_wheels_within_glibc_2_34_for_their_abi_on_both_arches(
    tmp_path: Path, runtime: str
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(AL2023_REQUIREMENTS)
    result = plan(requirements, runtime, tmp_path / "cache", "--arch", "x86_64", "--arch", "arm64")
    assert [t["glibc"] for t in result["targets"]] == ["2.34", "2.34"], "AL2023's ceiling"
    abi = "cp3" + runtime.removeprefix("python3.")
    chosen = files_by_arch(result)
    assert set(chosen) == {"x86_64", "arm64"}
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        picked = chosen[arch]
        assert {"cryptography", "numpy", "pydantic-core", "cffi"} <= set(picked), picked
        for filename in picked.values():
            assert filename.endswith(".whl"), (runtime, arch, filename)  # no compile on the way
            tags = parse_wheel_filename(filename)[3]
            assert all(tag.abi != f"{abi}t" for tag in tags), filename  # not free-threaded
            platforms = {tag.platform for tag in tags}
            if platforms == {"any"}:
                continue
            assert all(p.endswith("_" + machine) for p in platforms), (arch, filename)
            versions = [v for v in map(manylinux_glibc, platforms) if v is not None]
            assert versions, filename
            assert min(versions) <= (2, 34), filename
        for name in ("numpy", "pydantic-core"):  # version-specific builds: the runtime's ABI
            tags = parse_wheel_filename(picked[name])[3]
            assert {(t.interpreter, t.abi) for t in tags} == {(abi, abi)}, picked[name]
        crypto = parse_wheel_filename(picked["cryptography"])[3]
        assert {t.abi for t in crypto} == {"abi3"}, picked["cryptography"]
        assert all(int(t.interpreter[3:]) <= int(abi[3:]) for t in crypto)
        # The release offers manylinux_2_34: the ceiling is used, not an older fallback.
        assert {t.platform for t in crypto} == {f"manylinux_2_34_{machine}"}, picked["cryptography"]


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
    done = run("build", "-r", str(project / "requirements.txt"), "--runtime", "python3.13",
               "--cache-dir", str(cache), "-o", str(project / "dist"), env=NO_ENGINE)  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "idna-3.6-py3-none-any.whl" in done.stderr
    assert not (project / "dist").exists()
    assert not list(cache.glob("v1/files/*/*/*.whl")), "nothing may be downloaded"


@pytest.mark.docker
def test_all_binary_set_builds_with_no_engine_and_imports(tmp_path: Path) -> None:
    """python3.13 as Lambda has it (glibc 2.34, AL2023's data for the check): the wheels taken
    load in the trixie stand-in too, whose glibc (2.41) is newer."""
    project = tmp_path / "p"
    (project / "app").mkdir(parents=True)
    (project / "requirements.txt").write_text("charset-normalizer==3.4.0\nsix==1.16.0\nidna==3.6\n")
    (project / "app" / "handler.py").write_text("import charset_normalizer, six, idna\n")
    args = ["build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
            "--runtime", STANDIN.runtime, "--cache-dir", str(tmp_path / "cache"),
            "-o", str(project / "dist"), "--json"]  # fmt: skip
    done = run(*args, env=NO_ENGINE)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["containers_started"] == 0
    assert {w["source"] for w in result["wheels"]} == {"download"}
    for wheel in result["wheels"]:  # provenance: file and hash of what was chosen
        assert wheel["filename"].endswith(".whl")
        if wheel["name"] == "charset-normalizer":
            assert "-cp313-cp313-manylinux" in wheel["filename"]
        assert len(wheel["sha256"]) == 64
    archive = Path(result["archives"][0]["path"])
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == result["archives"][0]["sha256"]
    task = tmp_path / "task"
    zipfile.ZipFile(archive).extractall(task)
    imported = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{task}:/var/task:ro", RUNTIME_IMAGE,
         STANDIN.interpreter, "-c", "import handler, charset_normalizer.md; print('ok')"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr


@pytest.mark.docker
def test_sdist_only_package_goes_to_the_container(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "app").mkdir(parents=True)
    # docopt 0.6.2 is published as an sdist only: uv on the host will not build it. A range, not
    # a pin: pip prepares its metadata, and the container compiles it after resolving.
    (project / "requirements.txt").write_text("docopt>=0.6.2\nsix==1.16.0\n")
    (project / "app" / "handler.py").write_text("import docopt\n")
    done = run("build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
               *STANDIN.build_args(runtime_image=False),
               "--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    sources = {w["name"]: w["source"] for w in result["wheels"]}
    assert sources == {"docopt": "compiled", "six": "download"}
    # One container: the resolution in the image, which then compiles what its report names.
    assert result["containers_started"] == 1
    image = STANDIN.build_image.format(arch="x86_64")
    assert f"docopt 0.6.2 in {image} (same container)" in done.stderr
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
               *STANDIN.build_args(runtime_image=False),
               "--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    sources = {w["name"]: (w["source"], w["filename"]) for w in result["wheels"]}
    assert sources["fastmath"] == ("compiled", "fastmath-1.0-cp313-cp313-linux_x86_64.whl")
    assert sources["six"][0] == "download"
    assert result["containers_started"] == 1, "resolved on the host; one container compiles"
    task = tmp_path / "task"
    zipfile.ZipFile(result["archives"][0]["path"]).extractall(task)
    imported = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{task}:/var/task:ro", RUNTIME_IMAGE,
         STANDIN.interpreter, "-c", "import handler; print(handler.RESULT)"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "42"
