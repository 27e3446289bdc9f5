"""Read a wheel's central directory and decide where each member lands in a Lambda archive.

This is ``pip install --target`` without pip: the layout is the same, minus pip's host-specific
files (INSTALLER, REQUESTED, direct_url.json) and console-script wrappers. Only the zip's
central directory is read here; member bytes are streamed later by :mod:`nativebuild.archive.plan`.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import stat
import zipfile
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from nativebuild.errors import ArchiveError

# The .data/<key> directories a wheel may carry (binary-distribution-format spec).
DATA_KEYS = frozenset({"purelib", "platlib", "scripts", "data", "headers"})

_DRIVE = re.compile(r"^[A-Za-z]:")
_SHEBANG = re.compile(rb"#!pythonw?(?=[ \t\r\n]|\Z)")


class Scheme(enum.StrEnum):
    """Where a wheel file is installed, as the install scheme names it.

    A function archive puts all of them at its root; a layer puts SITE files under
    ``python/`` and the others at the layer root, so ``lib/`` and ``bin/`` land on
    ``/opt/lib`` (LD_LIBRARY_PATH) and ``/opt/bin`` (PATH).
    """

    SITE = "site"  # the wheel root, .data/purelib and .data/platlib: importable files
    SCRIPTS = "scripts"  # .data/scripts -> bin/
    DATA = "data"  # .data/data -> the prefix root (share/, lib/, ...)
    HEADERS = "headers"  # .data/headers -> include/<dist>/


@dataclasses.dataclass(frozen=True, kw_only=True)
class WheelMember:
    """Bytes to copy from a member of a zip (a wheel, or a bundle of files nativebuild made);
    scripts may need their ``#!python`` rewritten."""

    wheel: Path
    member: str
    rewrite_shebang: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class WheelFile:
    """One file a wheel installs: where it goes, its mode, and what identifies its bytes."""

    path: str  # relative to where its scheme lands (see Scheme)
    mode: int
    source: WheelMember
    crc: int
    size: int
    scheme: Scheme = Scheme.SITE

    def same_bytes(self, other: WheelFile) -> bool:
        """Whether both would write identical bytes (a shebang rewrite changes them alike)."""
        return (self.crc, self.size, self.source.rewrite_shebang) == (
            other.crc,
            other.size,
            other.source.rewrite_shebang,
        )


def unsafe_reason(name: str) -> str | None:
    """Why a member name could escape the install directory, or None when it is safe."""
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        return "has a '..' component"
    if any(part in {"", "."} for part in parts):
        return "has an empty or '.' component"
    return None


def is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def member_mode(info: zipfile.ZipInfo) -> int:
    """0o755 when any execute bit is set in the member's Unix mode, else 0o644."""
    return 0o755 if (info.external_attr >> 16) & 0o111 else 0o644


def install_target(member: str, *, data_dir: str, dist_name: str) -> tuple[str, Scheme]:
    """Where ``member`` goes, relative to its scheme's directory, and that scheme.

    SCRIPTS paths start with ``bin/`` and HEADERS paths with ``include/<dist_name>/``: both,
    like DATA paths, are relative to the archive (or layer) root. ``data_dir`` is the wheel's
    ``<name>-<version>.data`` directory. Raises ArchiveError for a ``.data`` entry outside the
    known keys.
    """
    top, _, rest = member.partition("/")
    if top != data_dir:
        return member, Scheme.SITE
    key, _, tail = rest.partition("/")
    if key not in DATA_KEYS or not tail:
        msg = (
            f"{member!r} is not in one of the {data_dir}/ directories a wheel may use "
            f"({', '.join(sorted(DATA_KEYS))})."
        )
        raise ArchiveError(msg)
    if key == "scripts":
        return f"bin/{tail}", Scheme.SCRIPTS
    if key == "headers":
        return f"include/{dist_name}/{tail}", Scheme.HEADERS
    if key == "data":
        return tail, Scheme.DATA
    return tail, Scheme.SITE


def install_path(member: str, *, data_dir: str, dist_name: str) -> tuple[str, bool]:
    """Where ``member`` goes in a function archive (all schemes at its root), and whether it is
    a script. See :func:`install_target`."""
    path, scheme = install_target(member, data_dir=data_dir, dist_name=dist_name)
    return path, scheme is Scheme.SCRIPTS


def wheel_owner(wheel: Path) -> str:
    """``"name version"`` of a wheel file, from its name; the file name when it is not a
    wheel's (a bundle of compiled files)."""
    try:
        name, version, _, _ = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename:
        return wheel.name
    return f"{name} {version}"


def rewrite_shebang(data: bytes, interpreter: str) -> bytes:
    """Point a ``#!python`` or ``#!pythonw`` first line at ``interpreter``, keeping its arguments.

    Any other first line (``#!/bin/sh``, ``#!python3``, a binary) is left alone, as the wheel
    spec asks only for the two placeholder forms.
    """
    match = _SHEBANG.match(data)
    if match is None:
        return data
    return b"#!" + interpreter.encode() + data[match.end() :]


def _dist_info_dir(wheel: Path, names: list[str]) -> str:
    tops = sorted({name.split("/", 1)[0] for name in names if "/" in name})
    found = [top for top in tops if top.endswith(".dist-info")]
    if len(found) != 1:
        what = "no .dist-info directory" if not found else f"{len(found)}: {', '.join(found)}"
        msg = f"Wheel {wheel.name} must have exactly one top-level .dist-info directory, found {what}."
        raise ArchiveError(msg, hint="The file is not a valid wheel; rebuild or re-download it.")
    return found[0]


def _infolist(wheel: Path) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.infolist()
    except (OSError, zipfile.BadZipFile) as err:
        msg = f"Cannot read wheel {wheel}: {err}."
        raise ArchiveError(msg, hint="Delete the file so it is downloaded or built again.") from err


def wheel_files(wheel: Path) -> list[WheelFile]:
    """Every file ``wheel`` installs, in member order, after the zip-slip checks.

    Raises ArchiveError naming the wheel and the member for an unsafe name, a symlink entry, an
    unknown ``.data`` directory, or one archive path written twice with different bytes.
    """
    infos = _infolist(wheel)
    info_dir = _dist_info_dir(wheel, [info.filename for info in infos])
    stem = info_dir.removesuffix(".dist-info")
    data_dir = f"{stem}.data"
    dist_name = stem.partition("-")[0]

    files: dict[str, WheelFile] = {}
    for info in infos:
        name = info.filename
        reason = unsafe_reason(name)
        if reason is None and is_symlink(info):
            reason = "is a symbolic link"
        if reason is not None:
            msg = f"Wheel {wheel.name} has a member {name!r} that {reason}; refusing to install it."
            raise ArchiveError(msg, hint="Only install wheels from sources you trust.")
        if info.is_dir():
            continue
        try:
            path, scheme = install_target(name, data_dir=data_dir, dist_name=dist_name)
        except ArchiveError as err:
            msg = f"Wheel {wheel.name}: {err}"
            raise ArchiveError(msg, hint="The file is not a valid wheel.") from err
        script = scheme is Scheme.SCRIPTS
        found = WheelFile(
            path=path,
            mode=0o755 if script else member_mode(info),
            source=WheelMember(wheel=wheel, member=name, rewrite_shebang=script),
            crc=info.CRC,
            size=info.file_size,
            scheme=scheme,
        )
        previous = files.get(f"{scheme}:{path}")
        if previous is not None and not previous.same_bytes(found):
            msg = (
                f"Wheel {wheel.name} installs {path} twice with different contents "
                f"(members {previous.source.member!r} and {name!r})."
            )
            raise ArchiveError(msg, hint="The file is not a valid wheel.")
        files[f"{scheme}:{path}"] = merge_duplicate(previous, found) if previous else found
    return list(files.values())


def merge_duplicate(kept: WheelFile, other: WheelFile) -> WheelFile:
    """One of two files with the same bytes; executable if either is, whatever their order."""
    return dataclasses.replace(kept, mode=max(kept.mode, other.mode))
