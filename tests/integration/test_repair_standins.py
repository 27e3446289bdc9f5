"""Repair on a real engine, for python3.13 (the trixie stand-ins): sdists compiled against
libraries of the build image (libpq, libyaml, libffi, libstdc++), installed there by
build-packages, vendored into the archive, and imported in the runtime stand-in, which lacks them. Without repair the build's check names what is
missing, and `nativebuild verify` fails on the import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.standins import PY313

pytestmark = [pytest.mark.docker, pytest.mark.network]

STANDIN = PY313
RUNTIME_IMAGE = STANDIN.runtime_image
PACKAGES = ("--build-package", "libpq-dev", "--build-package", "libyaml-dev",
            "--build-package", "libffi-dev")  # fmt: skip
REQUIREMENTS = """\
psycopg2==2.9.10
PyYAML==6.0.2
cffi==1.17.1
pycparser==2.22
murmurhash==1.0.12
--no-binary pyyaml,cffi,murmurhash
"""
HANDLER = """\
import cffi, murmurhash, psycopg2, yaml


def handler(event, context):
    ffi = cffi.FFI()
    ffi.cdef("size_t strlen(const char *);")
    libc = ffi.dlopen(None)
    return {
        "libpq": psycopg2.__libpq_version__,
        "libyaml": yaml.__with_libyaml__,
        "yaml": yaml.dump({"a": 1}, Dumper=yaml.CDumper),
        "strlen": libc.strlen(b"four"),
        "murmur": murmurhash.hash("nativebuild"),
    }
"""


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def result(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.out)
        return loaded


def nativebuild(*args: str, timeout: int = 1500) -> Run:
    completed = subprocess.run(
        [sys.executable, "-m", "nativebuild", *args],
        capture_output=True, text=True, check=False, timeout=timeout, env=dict(os.environ),
    )  # fmt: skip
    return Run(completed.returncode, completed.stdout, completed.stderr)


def build(project: Path, cache: Path, arch: str, *extra: str) -> Run:
    return nativebuild(
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        *STANDIN.build_args(arch), "--cache-dir", str(cache), "-o", str(project / "dist"), "--json", *extra,
    )  # fmt: skip


def verify(archive: Path, cache: Path, arch: str, *extra: str) -> Run:
    return nativebuild(
        "verify", str(archive), "--runtime", STANDIN.runtime, "--arch", arch,
        "--runtime-image", RUNTIME_IMAGE, "--cache-dir", str(cache), "--json", *extra,
    )  # fmt: skip


def make_project(root: Path, requirements: str, handler: str = HANDLER) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(requirements)
    (root / "app" / "handler.py").write_text(handler)
    return root


def archive_of(run: Run) -> Path:
    [archive] = run.result["archives"]  # type: ignore[misc]
    return Path(archive["path"])


@pytest.fixture(scope="module")
def repaired(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Run]:
    root = tmp_path_factory.mktemp("repaired")
    project = make_project(root / "project", REQUIREMENTS)
    cache = root / "cache"
    return project, cache, build(project, cache, "x86_64", *PACKAGES)


def test_sdists_compile_against_build_packages_and_their_libraries_are_vendored(
    repaired: tuple[Path, Path, Run],
) -> None:
    _, _, run = repaired
    assert run.code == 0, run.err[-6000:]
    sources = {w["name"]: w["source"] for w in run.result["wheels"]}  # type: ignore[attr-defined]
    for name in ("psycopg2", "pyyaml", "cffi", "murmurhash"):
        assert sources[name] == "compiled", sources
    assert "in nativebuild/derived:" in run.err  # compiled in the image with build-packages
    names = zipfile.ZipFile(archive_of(run)).namelist()
    assert any(n.startswith("psycopg2.libs/libpq-") and ".so.5" in n for n in names), names
    assert any(n.lower().startswith("pyyaml.libs/libyaml-0-") for n in names), names
    assert "vendored libpq.so.5" in run.err
    assert f"binary files checked against image {STANDIN.runtime_for('x86_64')}" in run.err


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32, as murmurhash.hash returns it (a signed 32-bit int)."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    tail = len(data) - len(data) % 4
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    k = int.from_bytes(data[tail:], "little")
    if k or len(data) % 4:
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def test_the_repaired_archive_imports_and_runs_in_the_runtime_that_lacks_the_libraries(
    repaired: tuple[Path, Path, Run], tmp_path: Path
) -> None:
    _, cache, run = repaired
    assert run.code == 0, run.err[-3000:]
    # The runtime stand-in really lacks them (else vendoring proves nothing).
    listing = subprocess.run(
        ["docker", "run", "--rm", RUNTIME_IMAGE.format(arch="x86_64"), "/sbin/ldconfig", "-p"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    assert "libpq.so.5" not in listing
    assert "libyaml-0.so.2" not in listing

    done = verify(archive_of(run), cache, "x86_64", "--handler", "handler.handler")
    assert done.code == 0, done.err[-3000:] + done.out[-3000:]
    report = done.result
    handler = report["handler"]
    assert handler["ok"], handler  # type: ignore[index]
    result = json.loads(handler["result"])  # type: ignore[index]  # the handler's JSON
    assert result["libyaml"] is True  # the C extension loaded, not the pure-Python fallback
    assert result["yaml"] == "a: 1\n"
    assert result["strlen"] == 4
    # The libpq-dev of the stand-in's Debian, built against: bullseye 13, trixie 17.
    assert result["libpq"] // 10000 == {"3.9": 13, "3.13": 17}[STANDIN.python], result
    assert result["murmur"] == murmur3_32(b"nativebuild"), result  # the C code ran, and right


def test_the_same_build_again_is_warm_and_identical(repaired: tuple[Path, Path, Run]) -> None:
    project, cache, first = repaired
    assert first.code == 0, first.err[-3000:]
    again = build(project, cache, "x86_64", *PACKAGES)
    assert again.code == 0, again.err[-3000:]
    assert again.result["containers_started"] == 0
    assert again.result["archives"][0]["sha256"] == first.result["archives"][0]["sha256"]  # type: ignore[index]


def test_without_repair_the_check_names_the_missing_library_and_verify_fails(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "project", "psycopg2==2.9.10\n", "import psycopg2\n")
    cache = tmp_path / "cache"
    unrepaired = build(project, cache, "x86_64", "--build-package", "libpq-dev", "--no-repair")
    assert unrepaired.code == 14, unrepaired.err[-3000:]
    assert "libpq.so.5" in unrepaired.err
    assert "psycopg2" in unrepaired.err
    assert not list((project / "dist").glob("*.zip"))

    unchecked = build(
        project, cache, "x86_64", "--build-package", "libpq-dev", "--no-repair", "--no-check"
    )
    assert unchecked.code == 0, unchecked.err[-3000:]
    assert unchecked.result["containers_started"] == 0  # the unrepaired wheel was cached
    failed = verify(archive_of(unchecked), cache, "x86_64")
    assert failed.code == 14
    assert "libpq.so.5" in failed.out + failed.err


def test_build_verify_imports_every_module_after_building(repaired: tuple[Path, Path, Run]) -> None:
    project, cache, first = repaired
    assert first.code == 0, first.err[-3000:]
    run = build(project, cache, "x86_64", *PACKAGES, "--verify")
    assert run.code == 0, run.err[-3000:]
    assert f"modules import in {STANDIN.runtime_for('x86_64')}" in run.err


def test_arm64_under_emulation_vendors_aarch64_libpq(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", "psycopg2==2.9.10\n", "import psycopg2\n")
    cache = tmp_path / "cache"
    run = build(project, cache, "arm64", "--build-package", "libpq-dev", "--verify")
    assert run.code == 0, run.err[-6000:]
    archive = archive_of(run)
    with zipfile.ZipFile(archive) as zf:
        [libpq] = [n for n in zf.namelist() if n.startswith("psycopg2.libs/libpq-")]
        header = zf.read(libpq)[:20]
    assert int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    assert f"modules import in {STANDIN.runtime_for('arm64')}" in run.err
