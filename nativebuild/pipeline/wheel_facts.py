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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nativebuild import __version__
from nativebuild.abi.elf import Binary, BinaryKind, ElfFacts, VersionNeed, read_binary
from nativebuild.cache.keys import build_key, file_identity
from nativebuild.errors import ArchiveError
from nativebuild.pipeline.context import BuildContext

__all__ = ["WheelFacts", "inspect_wheel", "verified_wheels", "wheel_binaries"]

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


def wheel_facts(context: BuildContext, path: Path) -> WheelFacts:
    """``path``'s facts: known in this build, kept from an earlier one, or read now."""
    memo = context.wheel_facts
    if path not in memo:
        local = context.cache.machine_local  # the key holds this machine's paths
        key = build_key(
            {"kind": KIND, "version": f"{__version__}/{VERSION}", "file": file_identity(path)}
        )
        kept = local.get_json(KIND, key)
        facts = None
        if kept is not None:
            try:
                facts = WheelFacts.from_json(kept)
            except (KeyError, TypeError, ValueError):
                facts = None
        if facts is None:
            facts = inspect_wheel(path)
            local.put_json(KIND, key, facts.to_json())
        memo[path] = facts
    return memo[path]


def wheel_binaries(context: BuildContext, path: Path) -> Mapping[str, Binary]:
    return wheel_facts(context, path).binaries


def verified_wheels(context: BuildContext, paths: Iterable[Path]) -> frozenset[Path]:
    """``paths``, each with every member's CRC checked (now, or by an earlier build): a
    corrupt member raises ArchiveError here."""
    chosen = frozenset(paths)
    for path in chosen:
        wheel_facts(context, path)
    return chosen


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
