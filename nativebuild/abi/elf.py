"""What the dynamic loader will ask of a binary: read from ELF files with pyelftools.

:func:`sniff` tells ELF, Mach-O and PE files apart from their first bytes (file names and wheel
tags say nothing reliable); :func:`read_elf` returns the loader-relevant facts of an ELF file:
machine, class, ``DT_NEEDED``, ``RPATH``/``RUNPATH``, and the symbol versions it requires
(``.gnu.version_r``) and defines (``.gnu.version_d``). :mod:`nativebuild.abi.scan` does that
for every file of an archive, planned or written.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import re
import struct
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from nativebuild.errors import AbiError

if TYPE_CHECKING:  # pyelftools is imported when a file is read (it costs ~40 ms to import)
    from elftools.elf.dynamic import DynamicSection, DynamicSegment
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection, GNUVerSymSection
    from elftools.elf.sections import Section

__all__ = [
    "SNIFF_BYTES",
    "Binary",
    "BinaryKind",
    "ElfFacts",
    "VersionNeed",
    "binary_of",
    "package_of",
    "parse_version",
    "read_binary",
    "read_elf",
    "sniff",
]

# Enough for the ELF and Mach-O magics and for a PE header at any usual e_lfanew offset.
SNIFF_BYTES = 1024
# Symbol names kept per required version: enough to name the culprit (statx@GLIBC_2.28).
MAX_SYMBOLS = 5

_MACHO_MAGICS = frozenset(
    {
        b"\xfe\xed\xfa\xce",  # 32-bit, big endian
        b"\xce\xfa\xed\xfe",  # 32-bit, little endian
        b"\xfe\xed\xfa\xcf",  # 64-bit, big endian
        b"\xcf\xfa\xed\xfe",  # 64-bit, little endian
    }
)
_FAT_MAGIC = b"\xca\xfe\xba\xbe"  # universal binary; Java class files share it
_MAX_FAT_ARCHS = 30  # Java's major version (>= 45) sits where a fat header's arch count does
_VER_FLG_BASE = 0x1
_VER_FLG_WEAK = 0x2
_VERSYM_HIDDEN = 0x8000
_VERSION_RE = re.compile(r"([A-Z][A-Z0-9]*?)_([0-9]+(?:\.[0-9]+)*)")

_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_AARCH64": "aarch64",
    "EM_386": "i686",
    "EM_ARM": "armv7l",
    "EM_S390": "s390x",
    "EM_RISCV": "riscv64",
}


class BinaryKind(enum.StrEnum):
    ELF = "ELF"
    MACHO = "Mach-O"
    PE = "PE"


@dataclasses.dataclass(frozen=True, kw_only=True)
class VersionNeed:
    """One ``.gnu.version_r`` entry: ``library`` must define ``version`` (unless ``weak``)."""

    library: str
    version: str
    weak: bool = False
    symbols: tuple[str, ...] = ()  # undefined symbols bound to this version (a few)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ElfFacts:
    machine: str  # as `uname -m` names it (x86_64, aarch64), or the raw EM_* name
    elf_class: int  # 32 or 64
    file_type: str  # ET_DYN, ET_EXEC, ET_REL, ...
    soname: str | None = None
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    version_needs: tuple[VersionNeed, ...] = ()
    version_definitions: tuple[str, ...] = ()
    interpreter: str | None = None  # PT_INTERP of an executable

    @property
    def loadable(self) -> bool:
        """Whether the loader maps it (a library or an executable), not an object or core file."""
        return self.file_type in {"ET_DYN", "ET_EXEC"}


def sniff(head: bytes) -> BinaryKind | None:
    """The binary format of a file from its first :data:`SNIFF_BYTES` bytes, or None."""
    magic = head[:4]
    if magic == b"\x7fELF":
        return BinaryKind.ELF
    if magic in _MACHO_MAGICS:
        return BinaryKind.MACHO
    if magic == _FAT_MAGIC and len(head) >= 8:
        (count,) = struct.unpack(">I", head[4:8])
        return BinaryKind.MACHO if 0 < count < _MAX_FAT_ARCHS else None
    if head[:2] == b"MZ" and len(head) >= 0x40:
        (offset,) = struct.unpack("<I", head[0x3C:0x40])
        if head[offset : offset + 4] == b"PE\0\0":
            return BinaryKind.PE
    return None


def parse_version(name: str) -> tuple[str, tuple[int, ...]] | None:
    """``GLIBCXX_3.4.29`` → ``("GLIBCXX", (3, 4, 29))``; None for unnumbered names."""
    match = _VERSION_RE.fullmatch(name)
    if match is None:
        return None
    return match.group(1), tuple(int(part) for part in match.group(2).split("."))


def load_reader() -> None:
    """Import pyelftools' parts that :func:`read_elf` uses (some 70 ms): a build calls this
    from a thread while it waits on something else, so the first binary read does not pay."""
    from elftools.elf import dynamic, elffile, gnuversions, sections, segments  # noqa: F401


def read_elf(data: bytes) -> ElfFacts:
    """The loader-relevant facts of an ELF file. Raises AbiError when it cannot be parsed."""
    try:
        from elftools.elf.elffile import ELFFile

        return _read(ELFFile(io.BytesIO(data)), data)
    except Exception as err:  # pyelftools raises many types on corrupt input
        msg = f"not a readable ELF file ({type(err).__name__}: {err})"
        raise AbiError(msg) from err


def _machine(elf: ELFFile) -> str:
    raw = str(elf.header.e_machine)
    if raw == "EM_PPC64":
        return "ppc64le" if elf.little_endian else "ppc64"
    return _MACHINES.get(raw, raw)


def _read(elf: ELFFile, data: bytes) -> ElfFacts:
    from elftools.elf.dynamic import DynamicSection, DynamicSegment
    from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection, GNUVerSymSection
    from elftools.elf.segments import InterpSegment

    dynamic: DynamicSection | DynamicSegment | None = None
    need_section: GNUVerNeedSection | None = None
    def_section: GNUVerDefSection | None = None
    versym: GNUVerSymSection | None = None
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection) and dynamic is None:
            dynamic = section
        elif isinstance(section, GNUVerNeedSection):
            need_section = section
        elif isinstance(section, GNUVerDefSection):
            def_section = section
        elif isinstance(section, GNUVerSymSection):
            versym = section
    interpreter = None
    for segment in elf.iter_segments():
        if isinstance(segment, InterpSegment):
            interpreter = str(segment.get_interp_name())
        elif isinstance(segment, DynamicSegment) and dynamic is None:
            dynamic = segment  # a file stripped of its section headers

    soname: str | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    if dynamic is not None:
        for tag in dynamic.iter_tags():
            # pyelftools sets the string of a tag as an attribute named after it.
            name = tag.entry.d_tag
            if name == "DT_NEEDED":
                needed.append(str(getattr(tag, "needed")))  # noqa: B009
            elif name == "DT_SONAME":
                soname = str(getattr(tag, "soname"))  # noqa: B009
            elif name == "DT_RPATH":
                rpath.extend(_split_path(str(getattr(tag, "rpath"))))  # noqa: B009
            elif name == "DT_RUNPATH":
                runpath.extend(_split_path(str(getattr(tag, "runpath"))))  # noqa: B009

    return ElfFacts(
        machine=_machine(elf),
        elf_class=int(elf.elfclass),
        file_type=str(elf.header.e_type),
        soname=soname,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        version_needs=_version_needs(elf, data, need_section, versym),
        version_definitions=_version_definitions(def_section),
        interpreter=interpreter,
    )


def _split_path(value: str) -> Iterable[str]:
    return (part for part in value.split(":") if part)


def _section_bytes(data: bytes, section: Section) -> bytes:
    offset = int(section["sh_offset"])
    return data[offset : offset + int(section["sh_size"])]


def _symbols_by_version(
    elf: ELFFile, data: bytes, versym: GNUVerSymSection | None
) -> dict[int, set[str]]:
    """Undefined dynamic symbols grouped by their version index (``vna_other``).

    Read with struct rather than pyelftools' per-symbol parser: libraries such as libtorch
    have hundreds of thousands of symbols, and the parser takes seconds over them.
    """
    from elftools.elf.sections import SymbolTableSection

    if versym is None:
        return {}
    dynsym = elf.get_section(int(versym["sh_link"]))
    if not isinstance(dynsym, SymbolTableSection):
        return {}
    strings = _section_bytes(data, elf.get_section(int(dynsym["sh_link"])))
    end = "<" if elf.little_endian else ">"
    # Elf64_Sym: name, info, other, shndx, value, size; Elf32_Sym: name, value, size, info,
    # other, shndx.
    layout, shndx_at = (f"{end}IBBHQQ", 3) if elf.elfclass == 64 else (f"{end}IIIBBH", 5)
    table = _section_bytes(data, dynsym)
    size = struct.calcsize(layout)
    if int(dynsym["sh_entsize"]) != size or len(table) % size:
        return {}
    raw_versions = _section_bytes(data, versym)
    versions = struct.unpack(
        f"{end}{len(raw_versions) // 2}H", raw_versions[: len(raw_versions) // 2 * 2]
    )
    found: dict[int, set[str]] = {}
    for index, entry in enumerate(struct.iter_unpack(layout, table)):
        if entry[shndx_at] != 0 or index >= len(versions):  # defined here, or no version entry
            continue
        ndx = versions[index] & ~_VERSYM_HIDDEN
        if ndx < 2:  # local or global: not bound to a needed version
            continue
        start = entry[0]
        name = strings[start : strings.find(b"\0", start)].decode("utf-8", "replace")
        if name:
            found.setdefault(ndx, set()).add(name)
    return found


def _version_needs(
    elf: ELFFile, data: bytes, section: GNUVerNeedSection | None, versym: GNUVerSymSection | None
) -> tuple[VersionNeed, ...]:
    if section is None:
        return ()
    symbols = _symbols_by_version(elf, data, versym)
    needs = []
    for verneed, auxiliaries in section.iter_versions():
        for aux in auxiliaries:
            names = sorted(symbols.get(int(aux["vna_other"]), ()))
            needs.append(
                VersionNeed(
                    library=str(verneed.name),
                    version=str(aux.name),
                    weak=bool(int(aux["vna_flags"]) & _VER_FLG_WEAK),
                    symbols=tuple(names[:MAX_SYMBOLS]),
                )
            )
    return tuple(needs)


def _version_definitions(section: GNUVerDefSection | None) -> tuple[str, ...]:
    if section is None:
        return ()
    names = []
    for verdef, auxiliaries in section.iter_versions():
        if int(verdef["vd_flags"]) & _VER_FLG_BASE:
            continue  # the file's own name, not a version
        first = next(iter(auxiliaries), None)  # later ones name the parent versions
        if first is not None:
            names.append(str(first.name))
    return tuple(names)


# --- one file of an archive ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Binary:
    """A file of an archive whose first bytes are those of a binary format."""

    path: str  # inside its archive
    kind: BinaryKind
    package: str | None = None  # "bcrypt 4.0.1"; None: the user's source
    wheel: str | None = None  # the wheel file it came from, when known
    elf: ElfFacts | None = None
    error: str | None = None  # why an ELF file could not be read


def package_of(wheel: str) -> str:
    try:
        name, version, _, _ = parse_wheel_filename(wheel)
    except InvalidWheelFilename:
        return wheel
    return f"{name} {version}"


def binary_of(path: str, fh: IO[bytes], package: str | None, wheel: str | None) -> Binary | None:
    """The binary at ``path`` (read from ``fh``), owned by ``package`` of ``wheel``, or None."""
    head = fh.read(SNIFF_BYTES)
    kind = sniff(head)
    if kind is None:
        return None
    if kind is not BinaryKind.ELF:
        return Binary(path=path, kind=kind, package=package, wheel=wheel)
    try:
        facts = read_elf(head + fh.read())
    except AbiError as err:
        return Binary(path=path, kind=kind, package=package, wheel=wheel, error=str(err))
    return Binary(path=path, kind=kind, package=package, wheel=wheel, elf=facts)


def read_binary(path: str, fh: IO[bytes], *, wheel: str | None = None) -> Binary | None:
    """The binary at ``path`` (read from ``fh``, of the wheel file named ``wheel``), or None."""
    return binary_of(path, fh, package_of(wheel) if wheel else None, wheel)
