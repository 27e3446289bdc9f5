"""Tiny ELF, Mach-O and PE files for the ABI tests, built in the test with the host's gcc.

``shared_library`` compiles C into a ``.so`` (``gcc -shared -fPIC``); the other helpers write
file headers by hand, which is all the machine and format checks read.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

# statx() appeared in glibc 2.28: calling it binds statx@GLIBC_2.28 (bcrypt 4.0.1's problem).
STATX_C = """
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
int probe(const char *p) { struct statx st; return statx(AT_FDCWD, p, 0, STATX_SIZE, &st); }
"""
PLAIN_C = "int answer(void) { return 42; }\n"
USES_FOO_C = "int foo(void);\nint ext(void) { return foo(); }\n"
FOO_C = "int foo(void) { return 1; }\n"
CXX_SOURCE = """
#include <stdexcept>
#include <string>
extern "C" int fails(const char *what) {
    try { throw std::runtime_error(std::string(what)); } catch (const std::exception &) { return 1; }
}
"""

EM_X86_64 = 62
EM_AARCH64 = 183
EM_386 = 3
ET_REL, ET_DYN = 1, 3


def need_compiler(name: str = "gcc") -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/ensure-test-tools installs it)")
    return path


def shared_library(
    directory: Path,
    name: str,
    source: str,
    *,
    args: Sequence[str] = (),
    soname: str | None = None,
    version_script: str | None = None,
    cxx: bool = False,
) -> Path:
    """Compile ``source`` into ``directory/name`` as a shared library; return its path."""
    compiler = need_compiler("g++" if cxx else "gcc")
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / (f"{name}.cpp" if cxx else f"{name}.c")
    src.write_text(source)
    out = directory / name
    command = [compiler, "-shared", "-fPIC", "-o", str(out), str(src)]
    if soname:
        command.append(f"-Wl,-soname,{soname}")
    if version_script:
        script = directory / f"{name}.map"
        script.write_text(version_script)
        command.append(f"-Wl,--version-script={script}")
    command.extend(args)
    subprocess.run(command, check=True, capture_output=True)
    return out


def libfoo(directory: Path) -> Path:
    """``libfoo.so.1``, soname libfoo.so.1, defining foo@@FOO_1.0."""
    return shared_library(
        directory,
        "libfoo.so.1",
        FOO_C,
        soname="libfoo.so.1",
        version_script="FOO_1.0 { global: foo; local: *; };\n",
    )


def uses_foo(directory: Path, name: str, foo: Path, *, link_args: Sequence[str] = ()) -> Path:
    """A library with DT_NEEDED libfoo.so.1 (linked against ``foo``), plus ``link_args``."""
    return shared_library(
        directory,
        name,
        USES_FOO_C,
        args=[f"-L{foo.parent}", "-l:libfoo.so.1", *link_args],
    )


def elf_header(*, machine: int, elf_class: int = 64, file_type: int = ET_DYN) -> bytes:
    """An ELF header alone (no sections or segments): enough to read machine and class."""
    ident = b"\x7fELF" + bytes([2 if elf_class == 64 else 1, 1, 1, 0]) + bytes(8)
    if elf_class == 64:
        rest = struct.pack("<HHIQQQIHHHHHH", file_type, machine, 1, 0, 0, 0, 0, 64, 56, 0, 64, 0, 0)
    else:
        rest = struct.pack("<HHIIIIIHHHHHH", file_type, machine, 1, 0, 0, 0, 0, 52, 32, 0, 40, 0, 0)
    return ident + rest


MACHO_64 = b"\xcf\xfa\xed\xfe" + bytes(60)  # MH_MAGIC_64, little endian (x86_64/arm64 macOS)


def pe_file() -> bytes:
    """A DOS stub whose e_lfanew points at a "PE\\0\\0" signature, as in every .exe/.dll."""
    stub = bytearray(b"MZ" + bytes(0x7E))
    stub[0x3C:0x40] = struct.pack("<I", 0x80)
    return bytes(stub) + b"PE\0\0" + bytes(20)
