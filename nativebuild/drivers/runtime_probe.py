"""Runs INSIDE a runtime image, with whatever Python it has (3.9 or newer): no nativebuild
imports, standard library only, no tools beyond ``ldconfig`` (and none at all if it is absent).

Writes, as JSON to the path given: the machine, the glibc version, LD_LIBRARY_PATH, every
shared library the loader can find (``ldconfig -p`` plus the library directories) with its
directories, and the symbol versions each one defines, read from ``.gnu.version_d`` with a
tiny ELF reader. Libraries of another machine (32-bit leftovers) are skipped.
"""

from __future__ import annotations

import json
import os
import platform
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import IO

PROBE_VERSION = 1
LDCONFIGS = ("/sbin/ldconfig", "/usr/sbin/ldconfig", "/usr/bin/ldconfig", "/bin/ldconfig")
DEFAULT_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib")
MOUNTED = ("/var/task", "/opt")  # the archive's own places, not the image's
LIBRARY_NAME = re.compile(r"^lib.*\.so(\.[0-9]+)*$|^ld-.*\.so(\.[0-9]+)*$")
MAX_FILES = 20000
SHT_GNU_VERDEF = 0x6FFFFFFD
VER_FLG_BASE = 0x1


def elf_header(fh: IO[bytes]) -> tuple[int, bool, bool] | None:
    """(machine, little endian, 64-bit) of an ELF file, or None."""
    head = fh.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[4] not in (1, 2):
        return None
    little = head[5] == 1
    (machine,) = struct.unpack("<H" if little else ">H", head[18:20])
    return machine, little, head[4] == 2


def version_definitions(path: str) -> tuple[int | None, list[str]]:
    """The version names (``GLIBC_2.31``...) an ELF shared library defines."""
    with Path(path).open("rb") as fh:
        header = elf_header(fh)
        if header is None:
            return None, []
        machine, little, is64 = header
        end = "<" if little else ">"
        fh.seek(0)
        ehdr = fh.read(64 if is64 else 52)
        if is64:
            shoff, shentsize, shnum = (
                struct.unpack(end + "Q", ehdr[40:48])[0],
                *struct.unpack(end + "HH", ehdr[58:62]),
            )
        else:
            shoff, shentsize, shnum = (
                struct.unpack(end + "I", ehdr[32:36])[0],
                *struct.unpack(end + "HH", ehdr[46:50]),
            )
        if not shoff or not shnum:
            return machine, []
        fh.seek(shoff)
        table = fh.read(shentsize * shnum)
        sections = []
        for index in range(shnum):
            raw = table[index * shentsize : (index + 1) * shentsize]
            if is64:
                _, kind, _, _, offset, size, link, info = struct.unpack(end + "IIQQQQII", raw[:48])
            else:
                _, kind, _, _, offset, size, link, info = struct.unpack(end + "IIIIIIII", raw[:32])
            sections.append((kind, offset, size, link, info))
        names: list[str] = []
        for kind, offset, size, link, count in sections:
            if kind != SHT_GNU_VERDEF or link >= len(sections):
                continue
            fh.seek(sections[link][1])
            strings = fh.read(sections[link][2])
            fh.seek(offset)
            data = fh.read(size)
            position = 0
            for _ in range(count):
                flags, _, _, _, aux, following = struct.unpack(
                    end + "HHHIII", data[position + 2 : position + 20]
                )
                if not flags & VER_FLG_BASE:
                    (name_offset,) = struct.unpack(
                        end + "I", data[position + aux : position + aux + 4]
                    )
                    names.append(strings[name_offset : strings.index(b"\0", name_offset)].decode())
                if not following:
                    break
                position += following
        return machine, names


def ldconfig_libraries() -> list[str]:
    for candidate in LDCONFIGS:
        if Path(candidate).exists():
            try:
                out = subprocess.run(
                    [candidate, "-p"], capture_output=True, text=True, check=False
                ).stdout
            except OSError:
                continue
            return [line.split(" => ", 1)[1].strip() for line in out.splitlines() if " => " in line]
    return []


def directory_libraries(directories: list[str]) -> list[str]:
    found: list[str] = []
    for directory in directories:
        try:
            names = sorted(entry.name for entry in Path(directory).iterdir())
        except OSError:
            continue
        found.extend(f"{directory}/{name}" for name in names if LIBRARY_NAME.match(name))
    return found


def own_machine() -> int | None:
    with Path(sys.executable).open("rb") as fh:
        header = elf_header(fh)
    return header[0] if header else None


def main(out_path: str) -> None:
    search = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    own_dirs = [p for p in search if not p.startswith(MOUNTED)]
    candidates = ldconfig_libraries() + directory_libraries([*own_dirs, *DEFAULT_DIRS])
    machine = own_machine()
    libraries: dict[str, list[str]] = {}
    versions: dict[str, list[str]] = {}
    seen: dict[str, tuple[int | None, list[str]]] = {}
    for path in candidates[:MAX_FILES]:
        real = os.path.realpath(path)
        if real not in seen:
            try:
                seen[real] = version_definitions(real)
            except (OSError, struct.error, ValueError, IndexError):
                seen[real] = (None, [])
        lib_machine, defined = seen[real]
        if lib_machine is None or (machine is not None and lib_machine != machine):
            continue
        directory, _, name = path.rpartition("/")
        dirs = libraries.setdefault(name, [])
        if directory not in dirs:
            dirs.append(directory)
        if defined:
            versions[name] = sorted(set(versions.get(name, [])) | set(defined))
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        glibc = ""
    os_name = ""
    try:
        with Path("/etc/os-release").open(encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    document = {
        "probe": PROBE_VERSION,
        "machine": platform.machine(),
        "glibc": glibc.split()[-1] if glibc.startswith("glibc ") else "",
        "os": os_name,
        "python": platform.python_version(),
        "ld_library_path": search,
        "libraries": libraries,
        "versions": versions,
    }
    Path(out_path).write_text(json.dumps(document, sort_keys=True), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
