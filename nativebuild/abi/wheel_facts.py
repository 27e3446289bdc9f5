"""What reading a cached wheel once tells: every member's data matches its CRC, and which
members are binaries (with what their ELF headers say).

Cached wheels never change in place, so the answer is kept in the local cache by the wheel's
path, size and modification time: a later build that packs the wheel again neither inflates
its members to check them (the archive writer copies their deflated bytes as they are) nor
reads its shared objects again (the ABI check takes their facts from here).
"""

from __future__ import annotations

import dataclasses
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nativebuild.abi.elf import Binary, BinaryKind, ElfFacts, VersionNeed, read_binary
from nativebuild.errors import ArchiveError

__all__ = ["KIND", "VERSION", "WheelFacts", "inspect_wheel"]

KIND = "wheel-facts"
VERSION = "1"  # bump when what is read changes, so kept answers are read again
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True, kw_only=True)
class WheelFacts:
    binaries: Mapping[str, Binary]  # member name -> the binary (its path: the member name)

    def to_json(self) -> dict[str, Any]:
        return {"binaries": {name: _binary_json(b) for name, b in sorted(self.binaries.items())}}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> WheelFacts:
        return cls(
            binaries={name: _binary_from(name, raw) for name, raw in document["binaries"].items()}
        )


def inspect_wheel(path: Path) -> WheelFacts:
    """Read every member of ``path`` to its end (zipfile checks each CRC there) and keep the
    binaries; a corrupt member is an ArchiveError."""
    binaries = {}
    current = ""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                current = info.filename
                with archive.open(info) as fh:
                    found = read_binary(info.filename, fh, wheel=path.name)
                    while fh.read(_CHUNK):  # the rest, for the CRC check at its end
                        pass
                if found is not None:
                    binaries[info.filename] = found
    except (OSError, zipfile.BadZipFile, KeyError, EOFError, zlib.error) as err:
        where = f" ({current})" if current else ""
        msg = f"Cannot read the wheel {path.name}{where}: {err}."
        raise ArchiveError(msg, hint="Run `nativebuild cache verify`, then build again.") from err
    return WheelFacts(binaries=binaries)


def _binary_json(binary: Binary) -> dict[str, Any]:
    return {
        "kind": binary.kind.value,
        "package": binary.package,
        "wheel": binary.wheel,
        "error": binary.error,
        "elf": None if binary.elf is None else dataclasses.asdict(binary.elf),
    }


def _binary_from(name: str, raw: Mapping[str, Any]) -> Binary:
    elf = raw["elf"]
    facts = None
    if elf is not None:
        facts = ElfFacts(
            machine=elf["machine"], elf_class=int(elf["elf_class"]), file_type=elf["file_type"],
            soname=elf["soname"], needed=tuple(elf["needed"]), rpath=tuple(elf["rpath"]),
            runpath=tuple(elf["runpath"]),
            version_needs=tuple(
                VersionNeed(library=v["library"], version=v["version"], weak=bool(v["weak"]),
                            symbols=tuple(v["symbols"]))
                for v in elf["version_needs"]
            ),
            version_definitions=tuple(elf["version_definitions"]), interpreter=elf["interpreter"],
        )  # fmt: skip
    return Binary(
        path=name, kind=BinaryKind(raw["kind"]), package=raw["package"], wheel=raw["wheel"],
        elf=facts, error=raw["error"],
    )  # fmt: skip
