"""The ABI check with the real Amazon Linux 2023 facts (glibc 2.34, nativebuild's data) against
what the python3.13 build stand-in (Debian trixie, glibc 2.41) really compiles.

glibc 2.38+ headers redirect ``strtol`` to ``__isoc23_strtol`` (a GLIBC_2.38 symbol) under C23
*and* under ``_GNU_SOURCE``, which Python.h defines for every extension: any extension calling
strtol compiled on trixie needs a symbol Lambda's python3.13 runtime lacks. The build must stop
(exit 14) naming the symbol and the file, before any archive is written. The same module without
strtol passes the same check, and the strtol one passes against the stand-in's own runtime
(glibc 2.41): the check rejects the symbol for that runtime, not everything a newer image builds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.standins import PY313

pytestmark = [pytest.mark.docker, pytest.mark.network]

STANDIN = PY313
PARSE_WITH_STRTOL = "return PyLong_FromLong(strtol(text, NULL, 0));"
PARSE_WITH_PYTHON = "return PyLong_FromString(text, NULL, 0);"
SOURCE = """\
#include <Python.h>
#include <stdlib.h>

static PyObject *parse(PyObject *self, PyObject *arg) {
    const char *text = PyUnicode_AsUTF8(arg);
    if (text == NULL) return NULL;
    PARSE
}
static PyMethodDef methods[] = {{"parse", parse, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "parsenum", NULL, -1, methods};
PyMODINIT_FUNC PyInit_parsenum(void) { return PyModule_Create(&module); }
"""


def make_project(root: Path, parse: str, std: str = "gnu17") -> Path:
    lib = root / "libs" / "parsenum"
    (lib / "src").mkdir(parents=True)
    (root / "app").mkdir()
    (lib / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "parsenum"\nversion = "1.0"\n'
    )
    (lib / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "setup(ext_modules=[Extension('parsenum', ['src/parsenum.c'], "
        f"extra_compile_args=['-std={std}'])])\n"
    )
    (lib / "src" / "parsenum.c").write_text(SOURCE.replace("PARSE", parse))
    (root / "requirements.txt").write_text("./libs/parsenum\n")
    (root / "app" / "handler.py").write_text(
        "import parsenum\n\ndef handler(event, context):\n    return parsenum.parse('0x2a')\n"
    )
    return root


def build(project: Path, cache: Path, *target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nativebuild", "build", "-r", str(project / "requirements.txt"),
         "--src", str(project / "app"), *target, "--cache-dir", str(cache),
         "-o", str(project / "dist"), "--json"],
        capture_output=True, text=True, env=dict(os.environ), check=False, timeout=600,
    )  # fmt: skip


def build_for_al2023(project: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """python3.13 with its real ceiling (no --glibc) and the default runtime image, which cannot
    be pulled here: the check uses nativebuild's data for Amazon Linux 2023."""
    target = [
        "--runtime",
        STANDIN.runtime,
        "--arch",
        "x86_64",
        "--build-image",
        STANDIN.build_image,
    ]
    return build(project, cache, *target)


def verify(archive: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nativebuild", "verify", str(archive), "--runtime", STANDIN.runtime,
         "--arch", "x86_64", "--runtime-image", STANDIN.runtime_for("x86_64"),
         "--cache-dir", str(cache), "--handler", "handler.handler", "--json"],
        capture_output=True, text=True, env=dict(os.environ), check=False, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("std", ["gnu17", "c2x"])
def test_strtol_from_the_trixie_image_is_refused_for_al2023_naming_symbol_and_file(
    tmp_path: Path, std: str
) -> None:
    project = make_project(tmp_path / "strtol", PARSE_WITH_STRTOL, std)
    done = build_for_al2023(project, tmp_path / "cache")
    assert done.returncode == 14, done.stderr[-3000:]
    so = f"parsenum{STANDIN.extension_suffix()}"
    [finding] = [line for line in done.stderr.splitlines() if line.startswith(f"- {so} ")]
    assert "(parsenum 1.0)" in finding
    assert "GLIBC_2.38 (__isoc23_strtol) from libc.so.6" in finding
    assert "Amazon Linux 2023 for python3.13 (nativebuild's data) goes up to GLIBC_2.34" in finding
    assert "Traceback" not in done.stderr
    assert not list((project / "dist").glob("*.zip")), "nothing is written after a failed check"


def test_the_same_module_without_strtol_passes_the_al2023_check_and_loads(tmp_path: Path) -> None:
    project = make_project(tmp_path / "nostrtol", PARSE_WITH_PYTHON)
    done = build_for_al2023(project, tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checked against Amazon Linux 2023 for python3.13 (nativebuild's data): ok" in (
        done.stderr
    )
    verified = verify(Path(json.loads(done.stdout)["archives"][0]["path"]), tmp_path / "cache")
    assert verified.returncode == 0, verified.stdout + verified.stderr[-3000:]
    assert json.loads(json.loads(verified.stdout)["handler"]["result"]) == 42


def test_the_strtol_module_passes_against_the_standins_own_runtime(tmp_path: Path) -> None:
    """glibc 2.41 has __isoc23_strtol: for a runtime that does, the same file is fine."""
    project = make_project(tmp_path / "own", PARSE_WITH_STRTOL)
    done = build(project, tmp_path / "cache", *STANDIN.build_args("x86_64"))
    assert done.returncode == 0, done.stderr[-3000:]
    verified = verify(Path(json.loads(done.stdout)["archives"][0]["path"]), tmp_path / "cache")
    assert verified.returncode == 0, verified.stdout + verified.stderr[-3000:]
    assert json.loads(json.loads(verified.stdout)["handler"]["result"]) == 42
