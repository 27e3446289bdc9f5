"""Plan and write a Lambda function .zip from wheels and a source directory, byte-reproducibly.

Planning reads only zip central directories and the source tree listing, and returns an
:class:`ArchivePlan`. :func:`write_zip` then streams each member from its wheel (or file)
straight into the output zip with fixed timestamps, modes and compression, so the same inputs
always give the same bytes, and so the same ``CodeSha256``. There is no staging directory.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import IO

from nativebuild.errors import ArchiveError, ConfigError
from nativebuild.wheels import WheelFile, WheelMember, merge_duplicate, rewrite_shebang, wheel_files

__all__ = [
    "ArchiveEntry",
    "ArchiveInfo",
    "ArchivePlan",
    "SourceFile",
    "WheelMember",
    "is_excluded",
    "plan_function_archive",
    "source_date_epoch",
    "write_zip",
    "zip_datetime",
]

# Names skipped anywhere in the source tree: caches, VCS and tool state, build leftovers.
EXCLUDED_NAMES = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".DS_Store",
        ".venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".egg-info")

DateTime = tuple[int, int, int, int, int, int]

DOS_EPOCH: DateTime = (1980, 1, 1, 0, 0, 0)
_MIN_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip header can hold
_MAX_EPOCH = 4354819199  # 2107-12-31T23:59:59Z, the latest
_EPOCH_RE = re.compile(r"-?[0-9]+")
_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceFile:
    """A file of the user's source tree (a symlink's target when the tree had a link)."""

    path: Path


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchiveEntry:
    path: str
    mode: int
    source: WheelMember | SourceFile


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchivePlan:
    """Every file of the archive, sorted by path; ``interpreter`` is what ``#!python`` becomes."""

    entries: tuple[ArchiveEntry, ...]
    interpreter: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchiveInfo:
    path: Path
    sha256: str
    size: int
    entries: int
    uncompressed_size: int

    @property
    def code_sha256(self) -> str:
        """The hash as Lambda reports it (``CodeSha256``): base64 of the raw digest."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


# --- planning ----------------------------------------------------------------------------------


def is_excluded(name: str) -> bool:
    """Whether a file or directory called ``name`` is left out of the source tree."""
    return name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES)


def plan_function_archive(
    wheels: Sequence[Path],
    src: Path | None,
    *,
    python: str,
    skip_dirs: Collection[Path] = (),
) -> ArchivePlan:
    """Decide the archive's contents: the files ``wheels`` install plus every file under ``src``.

    ``python`` is the runtime's version ("3.12"), for rewriting ``#!python`` in wheel scripts.
    Raises ArchiveError for unsafe wheel members, for two inputs writing one path with different
    bytes, for a path that is a file in one input and a directory in another, and for source
    symlinks that are broken or leave ``src`` for a directory. ``skip_dirs`` are left out of
    the source walk (the output and cache directories, when they sit inside ``src``).
    """
    if not re.fullmatch(r"3\.[0-9]+", python):
        msg = f"Invalid Python version {python!r}: expected 3.MINOR, for example 3.12."
        raise ConfigError(msg)

    chosen: dict[str, WheelFile] = {}
    # Sorted so the plan does not depend on the order wheels were given in.
    for wheel in sorted(wheels, key=lambda p: (p.name, str(p))):
        for found in wheel_files(wheel):
            kept = chosen.get(found.path)
            if kept is None:
                chosen[found.path] = found
            elif kept.same_bytes(found):
                chosen[found.path] = merge_duplicate(kept, found)
            else:
                msg = (
                    f"Wheels {kept.source.wheel.name} and {wheel.name} both install "
                    f"{found.path}, with different contents."
                )
                hint = "Pin versions that do not overlap, or drop one of the two packages."
                raise ArchiveError(msg, hint=hint)

    entries = {
        path: ArchiveEntry(path=path, mode=found.mode, source=found.source)
        for path, found in chosen.items()
    }
    if src is not None:
        for entry in _source_entries(src, frozenset(p.resolve() for p in skip_dirs)):
            clash = chosen.get(entry.path)
            if clash is not None:
                msg = (
                    f"Your source has {entry.path} which the wheel "
                    f"{clash.source.wheel.name} also installs."
                )
                hint = f"Rename or remove {entry.path} in {src}, or drop the dependency."
                raise ArchiveError(msg, hint=hint)
            entries[entry.path] = entry

    ordered = tuple(entries[path] for path in sorted(entries))
    _check_file_directory_clash(ordered)
    return ArchivePlan(entries=ordered, interpreter=f"/var/lang/bin/python{python}")


def _origin(entry: ArchiveEntry) -> str:
    if isinstance(entry.source, WheelMember):
        return f"the wheel {entry.source.wheel.name}"
    return "your source"


def _check_file_directory_clash(entries: Sequence[ArchiveEntry]) -> None:
    # A zip with both "pkg" and "pkg/mod.py" cannot be extracted.
    files = {entry.path: entry for entry in entries}
    for entry in entries:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            blocker = files.get("/".join(parts[:depth]))
            if blocker is not None:
                msg = (
                    f"{blocker.path} is a file in {_origin(blocker)} but a directory in "
                    f"{_origin(entry)} (which has {entry.path})."
                )
                raise ArchiveError(msg, hint="Rename the file or drop one of the packages.")


def _source_entries(src: Path, skip_dirs: frozenset[Path] = frozenset()) -> list[ArchiveEntry]:
    """Every regular file under ``src``, following symlinks that stay sensible."""
    if not src.is_dir():
        what = "does not exist" if not src.exists() else "is not a directory"
        msg = f"Source directory {src} {what}."
        raise ArchiveError(msg, hint="Point the source option at your function's code directory.")
    root = src.resolve()
    found: list[ArchiveEntry] = []
    # (real directory, its path in the archive, the real directories above it)
    stack: list[tuple[Path, str, frozenset[Path]]] = [(root, "", frozenset({root}))]
    while stack:
        directory, prefix, above = stack.pop()
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as err:
            msg = f"Cannot list {directory}: {err.strerror}."
            raise ArchiveError(msg) from err
        for child in children:
            if is_excluded(child.name):
                continue
            rel = f"{prefix}{child.name}"
            _check_encodable(rel, src)
            path = Path(child.path)
            try:
                if child.is_symlink():
                    path = _resolve_link(path, rel, src)
                info = path.stat()
            except OSError as err:
                msg = f"Cannot read {src / rel}: {err.strerror}."
                raise ArchiveError(msg) from err
            if stat.S_ISDIR(info.st_mode):
                if path.resolve() in skip_dirs:
                    continue
                if not path.is_relative_to(root):
                    msg = f"{src / rel} is a symlink to {path}, a directory outside {src}."
                    hint = "Copy the directory into your source tree, or install it as a package."
                    raise ArchiveError(msg, hint=hint)
                if path in above:
                    msg = f"{src / rel} is a symlink to {path}, which contains it (a loop)."
                    raise ArchiveError(msg, hint="Remove the symlink.")
                stack.append((path, f"{rel}/", above | {path}))
            elif stat.S_ISREG(info.st_mode):
                mode = 0o755 if info.st_mode & stat.S_IXUSR else 0o644
                found.append(ArchiveEntry(path=rel, mode=mode, source=SourceFile(path=path)))
            else:
                msg = f"{src / rel} is not a regular file, directory or symlink to one."
                raise ArchiveError(msg, hint="Move it out of your source directory.")
    return found


def _resolve_link(link: Path, rel: str, src: Path) -> Path:
    try:
        return link.resolve(strict=True)
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop before Python 3.13
        msg = f"{src / rel} is a broken or looping symlink (to {link.readlink()})."
        raise ArchiveError(msg, hint="Fix or remove the symlink.") from err


def _check_encodable(rel: str, src: Path) -> None:
    # Names a zip cannot store (undecodable bytes on disk surface as surrogates).
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError as err:
        msg = f"{src / rel!r} has a name that is not valid UTF-8."
        raise ArchiveError(msg, hint="Rename the file.") from err


# --- timestamps --------------------------------------------------------------------------------


def zip_datetime(epoch: int | None) -> DateTime:
    """The zip ``date_time`` for a SOURCE_DATE_EPOCH value, in UTC, clamped to 1980..2107."""
    if epoch is None:
        return DOS_EPOCH
    clamped = min(max(epoch, _MIN_EPOCH), _MAX_EPOCH)
    moment = datetime.datetime.fromtimestamp(clamped, tz=datetime.timezone.utc)
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def source_date_epoch(env: Mapping[str, str]) -> int | None:
    """SOURCE_DATE_EPOCH from ``env`` as an int; None when unset or empty."""
    value = env.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not _EPOCH_RE.fullmatch(value):
        msg = f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds since 1970."
        raise ConfigError(msg, hint="Use `git log -1 --format=%ct` or `date +%s`, or unset it.")
    return int(value)


# --- writing -----------------------------------------------------------------------------------


def _zipinfo(entry: ArchiveEntry, date_time: DateTime, size: int, level: int) -> zipfile.ZipInfo:
    zinfo = zipfile.ZipInfo(entry.path, date_time=date_time)
    zinfo.create_system = 3  # Unix, so external_attr carries the mode on every host
    zinfo.external_attr = (stat.S_IFREG | entry.mode) << 16
    zinfo.compress_type = zipfile.ZIP_DEFLATED
    # Known up front so the zip64 decision depends on the data only, never on a guess.
    zinfo.file_size = size
    if sys.version_info >= (3, 13):
        zinfo.compress_level = level
    else:
        zinfo._compresslevel = level  # type: ignore[attr-defined]
    return zinfo


class _Writer:
    """Copies plan entries into an open output zip, opening each wheel once."""

    def __init__(
        self, out: zipfile.ZipFile, stack: contextlib.ExitStack, plan: ArchivePlan
    ) -> None:
        self.out = out
        self.stack = stack
        self.plan = plan
        self.wheels: dict[Path, zipfile.ZipFile] = {}
        self.uncompressed = 0

    def add(self, entry: ArchiveEntry, date_time: DateTime, level: int) -> None:
        source = entry.source
        if isinstance(source, SourceFile):
            with source.path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                self._copy(fh, _zipinfo(entry, date_time, size, level))
            return
        wheel = self.wheels.get(source.wheel)
        if wheel is None:
            wheel = self.stack.enter_context(zipfile.ZipFile(source.wheel))
            self.wheels[source.wheel] = wheel
        info = wheel.getinfo(source.member)
        with wheel.open(info) as fh:
            if source.rewrite_shebang:
                data = rewrite_shebang(fh.read(), self.plan.interpreter)
                with self.out.open(_zipinfo(entry, date_time, len(data), level), "w") as dst:
                    dst.write(data)
                self.uncompressed += len(data)
            else:
                self._copy(fh, _zipinfo(entry, date_time, info.file_size, level))

    def _copy(self, fh: IO[bytes], zinfo: zipfile.ZipInfo) -> None:
        with self.out.open(zinfo, "w") as dst:
            shutil.copyfileobj(fh, dst, _CHUNK)
        self.uncompressed += zinfo.file_size


def write_zip(
    plan: ArchivePlan, dest: Path, *, epoch: int | None = None, compresslevel: int = 6
) -> ArchiveInfo:
    """Write ``plan`` to ``dest`` atomically; the same plan contents always give the same bytes.

    Entries go in plan order, with the ``epoch`` timestamp (see :func:`zip_datetime`), mode 0o644
    or 0o755, Unix ``create_system``, deflate at ``compresslevel``, no directory entries and no
    extra fields. On any failure (KeyboardInterrupt included) ``dest`` is left as it was.
    """
    date_time = zip_datetime(epoch)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as err:
        msg = f"Cannot create {dest}: {err}."
        raise ArchiveError(msg, hint="Choose an output path you can write to.") from err
    tmp = Path(tmp_name)
    current = ""
    uncompressed = 0
    try:
        with os.fdopen(fd, "w+b") as raw:
            with contextlib.ExitStack() as stack:
                writer = _Writer(stack.enter_context(zipfile.ZipFile(raw, "w")), stack, plan)
                for entry in plan.entries:
                    current = entry.path
                    writer.add(entry, date_time, compresslevel)
                current = ""
                uncompressed = writer.uncompressed
            raw.flush()
            os.fsync(raw.fileno())
            digest, size = _sha256(raw)
        tmp.chmod(0o644)  # mkstemp makes it 0o600
        tmp.replace(dest)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, zipfile.BadZipFile, zlib.error, KeyError)):
            where = f" while adding {current}" if current else ""
            msg = f"Cannot write {dest}{where}: {err}."
            raise ArchiveError(msg, hint="Check the input files and free disk space.") from err
        raise
    _fsync_dir(dest.parent)
    return ArchiveInfo(
        path=dest,
        sha256=digest,
        size=size,
        entries=len(plan.entries),
        uncompressed_size=uncompressed,
    )


def _sha256(fh: IO[bytes]) -> tuple[str, int]:
    fh.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _fsync_dir(directory: Path) -> None:
    # Makes the rename durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
