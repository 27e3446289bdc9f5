"""nativebuild.abi.elf on real binaries: shared libraries compiled here with the host's gcc, and
hand-written headers for other machines and formats."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from nativebuild.abi.elf import BinaryKind, ElfFacts, VersionNeed, parse_version, read_elf, sniff
from nativebuild.abi.scan import scan_archive_plan, scan_zip
from nativebuild.archive.plan import plan_function_archive, write_zip
from nativebuild.errors import AbiError
from tests.elffixtures import (
    CXX_SOURCE,
    EM_386,
    EM_AARCH64,
    ET_REL,
    MACHO_64,
    PLAIN_C,
    STATX_C,
    elf_header,
    libfoo,
    pe_file,
    shared_library,
    uses_foo,
)
from tests.wheelfactory import make_tree, make_wheel


def read(path: Path) -> ElfFacts:
    return read_elf(path.read_bytes())


# --- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x7fELF\x02\x01\x01" + bytes(9), BinaryKind.ELF),
        (MACHO_64, BinaryKind.MACHO),
        (b"\xfe\xed\xfa\xce" + bytes(12), BinaryKind.MACHO),  # 32-bit big endian (old PPC)
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + bytes(8), BinaryKind.MACHO),  # universal, 2 archs
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(8), None),  # a Java class file (major 52)
        (pe_file(), BinaryKind.PE),
        (b"MZ is how this text file starts" + bytes(40), None),  # no PE signature
        (b"import os\n", None),
        (b"", None),
    ],
)
def test_sniff_tells_formats_apart_by_their_magic(head: bytes, expected: BinaryKind | None) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GLIBC_2.28", ("GLIBC", (2, 28))),
        ("GLIBC_2.2.5", ("GLIBC", (2, 2, 5))),
        ("GLIBCXX_3.4.29", ("GLIBCXX", (3, 4, 29))),
        ("CXXABI_1.3.13", ("CXXABI", (1, 3, 13))),
        ("GCC_7.0.0", ("GCC", (7, 0, 0))),
        ("GLIBC_PRIVATE", None),
        ("GLIBC_ABI_DT_RELR", None),
        ("CXXABI_TM_1", None),
    ],
)
def test_parse_version(name: str, expected: tuple[str, tuple[int, ...]] | None) -> None:
    assert parse_version(name) == expected


# --- compiled libraries ------------------------------------------------------------------------


def test_a_call_to_statx_requires_glibc_2_28_and_names_the_symbol(tmp_path: Path) -> None:
    facts = read(shared_library(tmp_path, "libstatx.so", STATX_C))
    assert facts.machine == "x86_64"
    assert facts.elf_class == 64
    assert facts.file_type == "ET_DYN"
    assert facts.loadable
    assert "libc.so.6" in facts.needed
    statx = [n for n in facts.version_needs if n.version == "GLIBC_2.28"]
    assert statx == [VersionNeed(library="libc.so.6", version="GLIBC_2.28", symbols=("statx",))]


def test_needed_library_and_runpath_with_origin(tmp_path: Path) -> None:
    foo = libfoo(tmp_path / "lib")
    ext = uses_foo(
        tmp_path / "pkg", "ext.so", foo,
        link_args=["-Wl,-rpath,$ORIGIN/../lib", "-Wl,--enable-new-dtags"],
    )  # fmt: skip
    facts = read(ext)
    assert facts.needed == ("libfoo.so.1",)
    assert facts.runpath == ("$ORIGIN/../lib",)
    assert facts.rpath == ()
    assert facts.version_needs == (
        VersionNeed(library="libfoo.so.1", version="FOO_1.0", symbols=("foo",)),
    )


def test_old_style_rpath_is_read_as_rpath(tmp_path: Path) -> None:
    foo = libfoo(tmp_path / "lib")
    ext = uses_foo(
        tmp_path / "pkg", "ext.so", foo,
        link_args=["-Wl,-rpath,$ORIGIN/../lib:/opt/vendor", "-Wl,--disable-new-dtags"],
    )  # fmt: skip
    facts = read(ext)
    assert facts.rpath == ("$ORIGIN/../lib", "/opt/vendor")
    assert facts.runpath == ()


def test_soname_and_version_definitions_of_a_library(tmp_path: Path) -> None:
    facts = read(libfoo(tmp_path))
    assert facts.soname == "libfoo.so.1"
    assert facts.version_definitions == ("FOO_1.0",)  # not the file's own base name


def test_cxx_library_requires_glibcxx_and_cxxabi_versions(tmp_path: Path) -> None:
    facts = read(shared_library(tmp_path, "libcxx.so", CXX_SOURCE, cxx=True))
    assert "libstdc++.so.6" in facts.needed
    families = {
        parse_version(n.version)[0] for n in facts.version_needs if parse_version(n.version)
    }
    assert {"GLIBCXX", "CXXABI"} <= families


def test_a_plain_library_needs_no_new_glibc(tmp_path: Path) -> None:
    facts = read(shared_library(tmp_path, "libplain.so", PLAIN_C))
    assert all(n.version != "GLIBC_2.28" for n in facts.version_needs)


# --- hand-written headers ----------------------------------------------------------------------


def test_aarch64_header() -> None:
    facts = read_elf(elf_header(machine=EM_AARCH64))
    assert (facts.machine, facts.elf_class, facts.file_type) == ("aarch64", 64, "ET_DYN")
    assert facts.needed == ()


def test_32_bit_x86_header() -> None:
    facts = read_elf(elf_header(machine=EM_386, elf_class=32))
    assert (facts.machine, facts.elf_class) == ("i686", 32)


def test_object_files_are_not_loadable() -> None:
    assert not read_elf(elf_header(machine=EM_AARCH64, file_type=ET_REL)).loadable


@pytest.mark.parametrize(
    "data",
    [b"\x7fELF fake", b"\x7fELF", b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<H", 3)],
)
def test_a_corrupt_elf_file_raises_abi_error(data: bytes) -> None:
    with pytest.raises(AbiError, match="not a readable ELF file"):
        read_elf(data)


# --- archives ----------------------------------------------------------------------------------


def test_scan_archive_plan_finds_binaries_in_wheels_and_source(tmp_path: Path) -> None:
    statx = shared_library(tmp_path / "build", "libstatx.so", STATX_C).read_bytes()
    wheel = make_wheel(
        tmp_path / "wheels", "bcrypt", "4.0.1",
        {"bcrypt/__init__.py": "", "bcrypt/_bcrypt.abi3.so": statx},
        tag="cp36-abi3-manylinux2014_x86_64",
    )  # fmt: skip
    src = make_tree(
        tmp_path / "src", {"app.py": "", "vendor/mac.so": MACHO_64, "tools/t.exe": pe_file()}
    )
    mounted = scan_archive_plan(plan_function_archive([wheel], src, python="3.9"))
    found = {b.path: b for b in mounted.binaries}
    assert set(found) == {"bcrypt/_bcrypt.abi3.so", "vendor/mac.so", "tools/t.exe"}
    native = found["bcrypt/_bcrypt.abi3.so"]
    assert (native.package, native.wheel) == ("bcrypt 4.0.1", wheel.name)
    assert native.elf is not None
    assert "libc.so.6" in native.elf.needed
    assert (found["vendor/mac.so"].kind, found["vendor/mac.so"].package) == (BinaryKind.MACHO, None)
    assert found["tools/t.exe"].kind is BinaryKind.PE
    assert mounted.root == "/var/task"
    assert "app.py" in mounted.files
    assert "bcrypt/__init__.py" in mounted.files


def test_scan_archive_plan_keeps_unreadable_elf_files_with_the_reason(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "fake", "1.0", {"fake/_x.so": b"\x7fELF fake"})
    (binary,) = scan_archive_plan(plan_function_archive([wheel], None, python="3.9")).binaries
    assert binary.elf is None
    assert binary.error is not None
    assert "not a readable ELF file" in binary.error


def test_scan_zip_attributes_files_to_packages_by_record(tmp_path: Path) -> None:
    plain = shared_library(tmp_path / "build", "libplain.so", PLAIN_C).read_bytes()
    wheel = make_wheel(
        tmp_path / "wheels", "native-pkg", "2.0",
        {"native_pkg/_speedups.so": plain},
        data_files={"scripts/tool": plain},
        executable={"scripts/tool"},
    )  # fmt: skip
    src = make_tree(tmp_path / "src", {"mine.so": plain})
    zip_path = tmp_path / "function.zip"
    write_zip(plan_function_archive([wheel], src, python="3.9"), zip_path)
    found = {b.path: b.package for b in scan_zip(zip_path, root="/opt").binaries}
    assert found == {
        "native_pkg/_speedups.so": "native_pkg 2.0",
        "bin/tool": "native_pkg 2.0",  # installed from .data/scripts, listed there in RECORD
        "mine.so": None,
    }
