"""Plan and write Lambda archives (function .zip or layer .zip) from wheels and source, byte for
byte reproducibly.

Planning reads only zip central directories and the source tree listing, and returns an
:class:`ArchivePlan`: every file, where it goes, and where its bytes come from. :func:`write_zip`
then streams each member from its wheel (or file) straight into the output zip with fixed
timestamps, modes and compression, so the same inputs always give the same bytes, and so the
same ``CodeSha256``. There is no staging directory. A layer is the same plan with the
importable files moved under ``python/`` (see :mod:`nativebuild.archive.layout`).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import fcntl
import glob
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from nativebuild.archive.sourcetree import SourceFile, is_excluded, source_files
from nativebuild.archive.wheels import (
    Scheme,
    WheelFile,
    WheelMember,
    merge_duplicate,
    rewrite_shebang,
    unsafe_reason,
    wheel_files,
    wheel_owner,
)
from nativebuild.archive.zipwriter import ZipFormatError, ZipWriter, raw_member_data
from nativebuild.errors import ArchiveError, ConfigError

__all__ = [
    "ArchiveEntry",
    "ArchiveInfo",
    "ArchivePlan",
    "SourceFile",
    "WheelMember",
    "is_excluded",
    "plan_archive",
    "plan_function_archive",
    "source_date_epoch",
    "with_entries",
    "write_zip",
    "zip_datetime",
]

DateTime = tuple[int, int, int, int, int, int]

PROGRESS_EVERY = 256  # entries between two progress callbacks of write_zip: cheap on large sets

DOS_EPOCH: DateTime = (1980, 1, 1, 0, 0, 0)
_MIN_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip header can hold
_MAX_EPOCH = 4354819199  # 2107-12-31T23:59:59Z, the latest
_EPOCH_RE = re.compile(r"-?[0-9]+")
_PREFIX_RE = re.compile(r"(?:[A-Za-z0-9_.-]+/)*")
SOURCE_OWNER = ""  # the owner of the user's own files


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchiveEntry:
    path: str
    mode: int
    source: WheelMember | SourceFile
    owner: str = SOURCE_OWNER  # "name version" of the distribution; "" for the user's source
    size: int = 0  # uncompressed bytes (before a shebang rewrite)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchivePlan:
    """Every file of the archive, sorted by path; ``interpreter`` is what ``#!python`` becomes."""

    entries: tuple[ArchiveEntry, ...]
    interpreter: str

    @property
    def unzipped_size(self) -> int:
        return sum(entry.size for entry in self.entries)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchiveInfo:
    path: Path
    sha256: str
    size: int
    entries: int
    uncompressed_size: int
    compressed_sizes: tuple[int, ...] = ()  # per entry, in plan order

    @property
    def code_sha256(self) -> str:
        """The hash as Lambda reports it (``CodeSha256``): base64 of the raw digest."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


# --- planning ----------------------------------------------------------------------------------


def plan_function_archive(
    wheels: Sequence[Path],
    src: Path | None,
    *,
    python: str,
    skip_dirs: Collection[Path] = (),
) -> ArchivePlan:
    """A function archive: what ``wheels`` install and every file under ``src``, at the root.
    See :func:`plan_archive`."""
    return plan_archive(wheels, src, python=python, skip_dirs=skip_dirs)


def _check_prefix(prefix: str, what: str) -> str:
    if prefix and (not prefix.endswith("/") or not _PREFIX_RE.fullmatch(prefix)):
        msg = f"Invalid {what} {prefix!r}: expected relative directories ending in '/'."
        raise ConfigError(msg)
    if any(part in {".", ".."} for part in prefix.split("/")):
        msg = f"Invalid {what} {prefix!r}: '.' and '..' are not allowed."
        raise ConfigError(msg)
    return prefix


def placed_path(found: WheelFile, site_prefix: str) -> str:
    """Importable files go under ``site_prefix``; scripts, data and headers at the root."""
    return f"{site_prefix}{found.path}" if found.scheme is Scheme.SITE else found.path


def plan_archive(
    wheels: Sequence[Path],
    src: Path | None,
    *,
    python: str,
    site_prefix: str = "",
    src_prefix: str = "",
    skip_dirs: Collection[Path] = (),
    src_excludes: tuple[str, ...] = (),
) -> ArchivePlan:
    """Decide the archive's contents: the files ``wheels`` install plus every file under ``src``
    (but names matching ``src_excludes``).

    Importable wheel files go under ``site_prefix`` ("" for a function, "python/" for a layer);
    scripts (bin/), data and headers stay at the root. ``src`` goes under ``src_prefix``.
    ``python`` is the runtime's version ("3.12"), for rewriting ``#!python`` in wheel scripts.
    Raises ArchiveError for unsafe wheel members, for two inputs writing one path with different
    bytes, for a path that is a file in one input and a directory in another, and for source
    symlinks that are broken or leave ``src`` for a directory. ``skip_dirs`` are left out of
    the source walk (the output and cache directories, when they sit inside ``src``).
    """
    if not re.fullmatch(r"3\.[0-9]+", python):
        msg = f"Invalid Python version {python!r}: expected 3.MINOR, for example 3.12."
        raise ConfigError(msg)
    _check_prefix(site_prefix, "site prefix")
    _check_prefix(src_prefix, "source prefix")

    chosen: dict[str, WheelFile] = {}
    # Sorted so the plan does not depend on the order wheels were given in.
    for wheel in sorted(wheels, key=lambda p: (p.name, str(p))):
        for found in wheel_files(wheel):
            path = placed_path(found, site_prefix)
            kept = chosen.get(path)
            if kept is None:
                chosen[path] = found
            elif kept.same_bytes(found):
                chosen[path] = merge_duplicate(kept, found)
            else:
                msg = (
                    f"Wheels {kept.source.wheel.name} and {wheel.name} both install "
                    f"{path}, with different contents."
                )
                hint = "Pin versions that do not overlap, or drop one of the two packages."
                raise ArchiveError(msg, hint=hint)

    entries = {
        path: ArchiveEntry(
            path=path,
            mode=found.mode,
            source=found.source,
            owner=wheel_owner(found.source.wheel),
            size=found.size,
        )
        for path, found in chosen.items()
    }
    if src is not None:
        skipped = frozenset(p.resolve() for p in skip_dirs)
        for tree_file in source_files(src, skipped, src_excludes):
            path = f"{src_prefix}{tree_file.path}"
            clash = chosen.get(path)
            if clash is not None:
                msg = f"Your source has {tree_file.path} which the wheel {clash.source.wheel.name} also installs."
                hint = f"Rename or remove {tree_file.path} in {src}, or drop the dependency."
                raise ArchiveError(msg, hint=hint)
            entries[path] = ArchiveEntry(
                path=path, mode=tree_file.mode, source=tree_file.source, size=tree_file.size
            )

    ordered = tuple(entries[path] for path in sorted(entries))
    _check_file_directory_clash(ordered)
    return ArchivePlan(entries=ordered, interpreter=f"/var/lang/bin/python{python}")


def with_entries(
    plan: ArchivePlan, added: Iterable[ArchiveEntry], *, replace: bool = False
) -> ArchivePlan:
    """``plan`` plus ``added``, sorted again. A path already planned is an ArchiveError, unless
    ``replace`` (compiled bytecode replacing a wheel's own ``.pyc``)."""
    entries = {entry.path: entry for entry in plan.entries}
    for entry in added:
        if entry.path in entries and not replace:
            msg = f"{entry.path} would be added twice to the archive."
            raise ArchiveError(msg)
        entries[entry.path] = entry
    ordered = tuple(entries[path] for path in sorted(entries))
    _check_file_directory_clash(ordered)
    return dataclasses.replace(plan, entries=ordered)


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


class _Writer:
    """Copies plan entries into the output zip, opening each wheel once."""

    def __init__(
        self,
        out: ZipWriter,
        stack: contextlib.ExitStack,
        plan: ArchivePlan,
        *,
        reuse: bool,
        verified: Collection[Path] = frozenset(),
    ) -> None:
        self.out = out
        self.reuse = reuse  # copy deflated wheel members as they are
        self.verified = verified  # wheels whose members' CRCs were checked already
        self.stack = stack
        self.plan = plan
        self.wheels: dict[Path, tuple[zipfile.ZipFile, IO[bytes]]] = {}

    def _wheel(self, path: Path) -> tuple[zipfile.ZipFile, IO[bytes]]:
        opened = self.wheels.get(path)
        if opened is None:
            archive = self.stack.enter_context(zipfile.ZipFile(path))
            raw = self.stack.enter_context(path.open("rb"))
            opened = self.wheels[path] = (archive, raw)
        return opened

    def add(self, entry: ArchiveEntry, date_time: DateTime, level: int) -> None:
        reason = unsafe_reason(entry.path)
        if reason is not None:
            msg = f"archive path {entry.path!r} {reason}"
            raise ZipFormatError(msg)
        source = entry.source
        if isinstance(source, SourceFile):
            with source.path.open("rb") as fh:
                self.out.add_stream(entry.path, entry.mode, date_time, fh, level)
            return
        archive, raw = self._wheel(source.wheel)
        info = archive.getinfo(source.member)
        if source.rewrite_shebang:
            with archive.open(info) as fh:
                data = rewrite_shebang(fh.read(), self.plan.interpreter)
            self.out.add_bytes(entry.path, entry.mode, date_time, data, level)
        elif self.reuse and info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & 1:
            # Already deflated in the wheel: copy those bytes (checked), do not recompress.
            raw_member_data(raw, info.header_offset)
            self.out.add_deflated(
                entry.path, entry.mode, date_time, raw,
                crc=info.CRC, compress_size=info.compress_size, file_size=info.file_size,
                check=source.wheel not in self.verified,
            )  # fmt: skip
        else:
            with archive.open(info) as fh:
                self.out.add_stream(entry.path, entry.mode, date_time, fh, level)


DEFAULT_LEVEL = 6


def write_zip(
    plan: ArchivePlan,
    dest: Path,
    *,
    epoch: int | None = None,
    compresslevel: int | None = None,
    verified: Collection[Path] = frozenset(),
    on_entries: Callable[[int], None] | None = None,
) -> ArchiveInfo:
    """Write ``plan`` to ``dest`` atomically; the same plan contents always give the same bytes.

    Entries go in plan order, with the ``epoch`` timestamp (see :func:`zip_datetime`), mode 0o644
    or 0o755, Unix ``create_system``, deflate, no directory entries and no extra fields. With
    ``compresslevel`` None, members a wheel already deflated are copied as they are (after
    checking their CRC, unless the wheel is among ``verified``, whose members were checked
    before: the wheel's sha256 pins those bytes) and the rest is deflated at level 6; a level given recompresses every file at that level. On any failure (KeyboardInterrupt
    included) ``dest`` is left as it was. ``on_entries`` hears how many entries are written,
    every PROGRESS_EVERY of them.
    """
    date_time = zip_datetime(epoch)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned_temps(dest)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        fcntl.flock(fd, fcntl.LOCK_EX)  # live until closed: see remove_abandoned_temps
    except OSError as err:
        msg = f"Cannot create {dest}: {err}."
        raise ArchiveError(msg, hint="Choose an output path you can write to.") from err
    tmp = Path(tmp_name)
    current = ""
    try:
        with os.fdopen(fd, "wb") as raw:
            out = ZipWriter(raw)
            with contextlib.ExitStack() as stack:
                writer = _Writer(out, stack, plan, reuse=compresslevel is None, verified=verified)
                level = DEFAULT_LEVEL if compresslevel is None else compresslevel
                for done, entry in enumerate(plan.entries):
                    if on_entries is not None and done % PROGRESS_EVERY == 0:
                        on_entries(done)
                    current = entry.path
                    writer.add(entry, date_time, level)
                current = ""
            digest, size = out.finish()
            raw.flush()
            os.fsync(raw.fileno())
        tmp.chmod(0o644)  # mkstemp makes it 0o600
        tmp.replace(dest)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, zipfile.BadZipFile, zlib.error, KeyError, ZipFormatError)):
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
        uncompressed_size=out.uncompressed,
        compressed_sizes=tuple(out.compressed_sizes),
    )


def remove_abandoned_temps(dest: Path) -> None:
    """Delete temp files that a killed writer of ``dest`` left (SIGKILL runs no cleanup). A
    live writer holds an flock on its temp file, so only abandoned ones can be locked here."""
    for stale in dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            fd = os.open(stale, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                stale.unlink()
            finally:
                os.close(fd)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
