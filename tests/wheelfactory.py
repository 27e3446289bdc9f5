"""Write real, small wheels and source trees for tests.

``make_wheel`` writes a valid ``.whl`` (WHEEL, METADATA and a RECORD with hashes) whose members
have the modes and timestamps the test asks for; ``RawMember`` adds members verbatim, which is
how tests build hostile wheels (``../evil.py``, symlink entries). ``make_tree`` writes a source
directory with explicit permission bits and symlinks.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import itertools
import os
import re
import stat
import zipfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

Content = bytes | str
DateTime = tuple[int, int, int, int, int, int]

__all__ = [
    "DateTime",
    "RawMember",
    "dist_info_dir",
    "make_tree",
    "make_wheel",
    "normalize",
    "symlink_member",
    "wheel_filename",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RawMember:
    """A member written exactly as given; ``mode`` is the full st_mode (file type included)."""

    name: str
    data: bytes = b""
    mode: int = stat.S_IFREG | 0o644


def symlink_member(name: str, target: str) -> RawMember:
    """A zip entry that unzip would restore as a symlink to ``target``."""
    return RawMember(name=name, data=target.encode(), mode=stat.S_IFLNK | 0o777)


def normalize(name: str) -> str:
    """A distribution name as wheel file names and .dist-info directories spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    return f"{normalize(name)}-{version}-{tag}.whl"


def dist_info_dir(name: str, version: str) -> str:
    return f"{normalize(name)}-{version}.dist-info"


def _bytes(content: Content) -> bytes:
    return content.encode() if isinstance(content, str) else content


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def _expand_tags(tag: str) -> list[str]:
    interpreters, abis, platforms = tag.split("-")
    return [
        "-".join(parts)
        for parts in itertools.product(
            interpreters.split("."), abis.split("."), platforms.split(".")
        )
    ]


def _parents(names: Iterable[str]) -> list[str]:
    dirs: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
    return sorted(dirs)


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    files: Mapping[str, Content],
    *,
    tag: str = "py3-none-any",
    data_files: Mapping[str, Content] | None = None,
    executable: Collection[str] = frozenset(),
    dist_info: Mapping[str, Content] | None = None,
    raw_members: Sequence[RawMember] = (),
    directory_entries: bool = False,
    file_mode: int = 0o644,
    exec_mode: int = 0o755,
    date_time: DateTime = (2020, 2, 2, 12, 0, 0),
) -> Path:
    """Write ``<directory>/<name>-<version>-<tag>.whl`` and return its path.

    ``files`` are members at the wheel root ("pkg/__init__.py"); ``data_files`` go under
    ``<name>-<version>.data/`` and are keyed from there ("scripts/run", "headers/x.h").
    ``executable`` lists keys of either mapping that get ``exec_mode``; the others get
    ``file_mode``. ``dist_info`` adds files to the .dist-info directory (entry_points.txt).
    ``raw_members`` are appended verbatim and left out of RECORD. ``directory_entries`` adds
    an explicit entry for every parent directory, as some wheel builders do.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{normalize(name)}-{version}"
    info_dir = dist_info_dir(name, version)
    root_is_purelib = "true" if tag.endswith("-none-any") else "false"
    wheel_text = "".join(
        [
            "Wheel-Version: 1.0\n",
            "Generator: wheelfactory\n",
            f"Root-Is-Purelib: {root_is_purelib}\n",
            *(f"Tag: {t}\n" for t in _expand_tags(tag)),
        ]
    )
    members: list[tuple[str, bytes, int]] = []
    for key, content in files.items():
        members.append((key, _bytes(content), exec_mode if key in executable else file_mode))
    for key, content in (data_files or {}).items():
        mode = exec_mode if key in executable else file_mode
        members.append((f"{stem}.data/{key}", _bytes(content), mode))
    meta = {
        "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "WHEEL": wheel_text,
        **(dist_info or {}),
    }
    members.extend(
        (f"{info_dir}/{key}", _bytes(content), file_mode) for key, content in meta.items()
    )

    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for member, data, _ in members:
        writer.writerow([member, _record_hash(data), len(data)])
    writer.writerow([f"{info_dir}/RECORD", "", ""])
    members.append((f"{info_dir}/RECORD", record.getvalue().encode(), file_mode))

    path = directory / wheel_filename(name, version, tag)
    with zipfile.ZipFile(path, "w") as zf:
        if directory_entries:
            for dirname in _parents(m[0] for m in members):
                _write(zf, dirname, b"", stat.S_IFDIR | 0o755, date_time)
        for member, data, mode in members:
            _write(zf, member, data, stat.S_IFREG | mode, date_time)
        for raw in raw_members:
            _write(zf, raw.name, raw.data, raw.mode, date_time)
    return path


def _write(zf: zipfile.ZipFile, name: str, data: bytes, st_mode: int, date_time: DateTime) -> None:
    info = zipfile.ZipInfo(name, date_time=date_time)
    info.create_system = 3
    info.external_attr = st_mode << 16
    if stat.S_ISDIR(st_mode):
        info.external_attr |= 0x10  # MS-DOS directory flag
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def make_tree(
    directory: Path,
    files: Mapping[str, Content],
    *,
    executable: Collection[str] = frozenset(),
    file_mode: int = 0o644,
    exec_mode: int = 0o755,
    symlinks: Mapping[str, str] | None = None,
    mtime: float | None = None,
) -> Path:
    """Write ``files`` (posix paths relative to ``directory``) and return ``directory``.

    Permission bits are set explicitly, so the umask does not matter. ``symlinks`` maps a link
    path to its target as written (relative or absolute; it may dangle). ``mtime`` sets the
    access and modification times of every file written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_bytes(content))
        path.chmod(exec_mode if rel in executable else file_mode)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    for rel, target in (symlinks or {}).items():
        link = directory / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    return directory
