"""The local content-addressed cache: downloaded files, built wheels and small JSON documents.

Every entry is write-once and appears atomically: it is written under ``<root>/tmp/`` and then
renamed into place, so a reader sees either nothing or a complete entry, even if the writer is
killed. Reads re-hash the content and evict what does not match, so corruption (a disk error, a
truncated file after a power cut) costs a rebuild, never a broken archive. The public methods
are the seam a remote (S3) layer can later sit behind.

Layout::

    <root>/CACHEDIR.TAG
    <root>/v1/files/<sha[:2]>/<sha>/<filename>
    <root>/v1/built/<key[:2]>/<key>/{manifest.json,<wheel filename>}
    <root>/v1/json/<kind>/<key[:2]>/<key>.json
    <root>/tmp/      writes in progress, scratch dirs, evicted entries awaiting deletion
    <root>/locks/    one lock file per key
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import filelock
import platformdirs

from nativebuild.cache.keys import (
    CACHE_LAYOUT_VERSION,
    manifest_key_problem,
)
from nativebuild.errors import CacheError
from nativebuild.reporting import LoggingReporter, Reporter

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by nativebuild.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
TMP_MAX_AGE_SECONDS = 3600.0
_CHUNK = 1024 * 1024
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_KEY_RE = re.compile(r"[0-9a-f]{16,128}")
_KIND_RE = re.compile(r"[a-z0-9-]{1,64}")
_MANIFEST = "manifest.json"
_HINT = "Choose a writable cache directory with --cache-dir or NATIVEBUILD_CACHE_DIR."

_T = TypeVar("_T")


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """``NATIVEBUILD_CACHE_DIR`` if set, else the platform's user cache directory."""
    override = env.get("NATIVEBUILD_CACHE_DIR", "")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path("nativebuild", appauthor=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CachedFile:
    path: Path  # inside the cache: read it, never move or edit it
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuiltWheelEntry:
    key: str
    wheel: CachedFile
    manifest: Mapping[str, Any]


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        msg = f"Invalid cache {what} {value!r}: expected {pattern.pattern}."
        raise CacheError(msg)
    return value


def _check_filename(name: str) -> str:
    if not name or name in {".", ".."} or any(c in name for c in "/\\\0"):
        msg = f"Invalid file name for the cache: {name!r} (a plain file name is required)."
        raise CacheError(msg)
    return name


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _copy_hashing(source: Path, dest: Path) -> tuple[str, int]:
    """Copy in one pass, hashing what is written. No fsync: every read re-verifies anyway."""
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as src, dest.open("xb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _ingest(source: Path, dest: Path, *, move: bool, expected: str | None) -> tuple[str, int]:
    """Copy or move ``source`` to ``dest``; on a hash mismatch the source is left as it was."""
    moved = False
    if move:
        try:
            source.replace(dest)
            moved = True
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
    digest, size = _hash_file(dest) if moved else _copy_hashing(source, dest)
    if expected is not None and digest != expected:
        if moved:
            dest.replace(source)
        msg = f"{source} does not match its expected sha256: expected {expected}, got {digest}."
        raise CacheError(msg, hint="Download the file again; it may be truncated or tampered.")
    if move and not moved:
        source.unlink()
    dest.chmod(0o644)
    return digest, size


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        msg = f"Cannot write the cache entry {target}: {err.strerror or err}."
        raise CacheError(msg, hint=_HINT) from err


def _dump_json(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()


class LocalCache:
    def __init__(self, root: Path, *, reporter: Reporter | None = None) -> None:
        self.root = root
        self._reporter: Reporter = reporter if reporter is not None else LoggingReporter()
        self._data = root / f"v{CACHE_LAYOUT_VERSION}"
        self._tmp = root / "tmp"
        self._locks_dir = root / "locks"
        # One FileLock object per name so nested acquisition in one thread is re-entrant.
        self._locks: dict[str, filelock.FileLock] = {}
        self._ready = False

    def ensure(self) -> None:
        """Create the layout and CACHEDIR.TAG, and clear abandoned temp files."""
        dirs = [self._data / sub for sub in ("files", "built", "json")]
        try:
            for path in [*dirs, self._tmp, self._locks_dir]:
                path.mkdir(parents=True, exist_ok=True)
            # Rewritten every time: proves the cache is writable now rather than at the first put.
            self._write_atomic(self.root / "CACHEDIR.TAG", CACHEDIR_TAG.encode())
        except OSError as err:
            msg = f"Cannot use the cache directory {self.root}: {err.strerror or err}."
            raise CacheError(msg, hint=_HINT) from err
        self._clean_tmp(time.time() - TMP_MAX_AGE_SECONDS)
        self._ready = True

    def _prepare(self) -> None:
        if not self._ready:
            self.ensure()

    def _clean_tmp(self, cutoff: float) -> None:
        """Remove temp entries older than ``cutoff``; fresh ones may belong to a live writer."""
        for entry in self._tmp.iterdir():
            with contextlib.suppress(OSError):
                if entry.lstat().st_mtime >= cutoff:
                    continue
                if entry.name.startswith("scratch-"):
                    # Compiles can outlive the age limit: the owner holds this lock while it runs.
                    with filelock.FileLock(self._locks_dir / f"{entry.name}.lock", timeout=0):
                        shutil.rmtree(entry, ignore_errors=True)
                elif entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()

    def lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        """Hold across "check cache -> build -> put" so concurrent builders do the work once."""
        return self._lock(_check(_KEY_RE, key, "key"))

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self._prepare()
        if (lock := self._locks.get(name)) is None:
            lock = self._locks[name] = filelock.FileLock(self._locks_dir / f"{name}.lock")
        with lock:
            yield

    @property
    def machine_local(self) -> LocalCache:
        """Where to keep what is true of this machine only (documents keyed by its paths):
        never pushed to, nor fetched from, a shared cache."""
        return self

    @contextlib.contextmanager
    def scratch_dir(self) -> Iterator[Path]:
        """A fresh directory on the cache's filesystem (so results rename in), removed on exit."""
        self._prepare()
        name = f"scratch-{uuid.uuid4().hex}"
        with filelock.FileLock(self._locks_dir / f"{name}.lock"):
            path = self._tmp / name
            path.mkdir()
            try:
                yield path
            finally:
                shutil.rmtree(path, ignore_errors=True)
        (self._locks_dir / f"{name}.lock").unlink(missing_ok=True)

    def _file_path(self, sha256: str, filename: str) -> Path:
        sha256 = _check(_SHA256_RE, sha256, "sha256")
        return self._data / "files" / sha256[:2] / sha256 / _check_filename(filename)

    def get_file(self, sha256: str, filename: str) -> CachedFile | None:
        path = self._file_path(sha256, filename)

        def load() -> CachedFile | str | None:
            try:
                digest, size = _hash_file(path)
            except FileNotFoundError:
                return None
            except OSError as err:
                return f"unreadable: {err.strerror or err}"
            if digest != sha256:
                return f"content hashes to {digest}"
            return CachedFile(path=path, sha256=digest, size=size)

        return self._verified(load, sha256, path, "it will be downloaded again")

    def stored_file(self, sha256: str, filename: str) -> Path | None:
        """Where a stored file is, without reading it (None when absent): for large blobs that
        the caller hashes as it copies them, then hands to :meth:`get_file` on a mismatch,
        which evicts the corrupt entry."""
        path = self._file_path(sha256, filename)
        return path if path.is_file() else None

    def put_file(
        self, source: Path, *, sha256: str, filename: str, move: bool = False
    ) -> CachedFile:
        """Store ``source`` under its sha256, which is checked before anything is stored."""
        target = self._file_path(sha256, filename)
        self._prepare()
        staged = self._tmp / f"file-{uuid.uuid4().hex}.part"
        try:
            with _writing(target):
                _, size = _ingest(source, staged, move=move, expected=sha256)
                with self._lock(sha256):
                    existing = self.get_file(sha256, filename)
                    if existing is not None:
                        return existing
                    target.parent.mkdir(parents=True, exist_ok=True)
                    staged.replace(target)
            return CachedFile(path=target, sha256=sha256, size=size)
        finally:
            staged.unlink(missing_ok=True)

    def _built_dir(self, key: str) -> Path:
        key = _check(_KEY_RE, key, "key")
        return self._data / "built" / key[:2] / key

    def get_built(self, key: str) -> BuiltWheelEntry | None:
        entry_dir = self._built_dir(key)
        load = lambda: self._load_built(key, entry_dir)
        return self._verified(load, key, entry_dir, "the wheel will be rebuilt")

    def _load_built(self, key: str, entry_dir: Path) -> BuiltWheelEntry | str | None:
        if not entry_dir.is_dir():
            return None
        try:
            manifest = json.loads((entry_dir / _MANIFEST).read_bytes())
        except (OSError, ValueError) as err:
            return f"manifest unreadable: {err}"
        if not isinstance(manifest, dict):
            return "manifest is not a JSON object"
        filename, sha256, size = (
            manifest.get(f"wheel_{f}") for f in ("filename", "sha256", "size")
        )
        if not (isinstance(filename, str) and isinstance(sha256, str) and isinstance(size, int)):
            return "manifest lacks wheel_filename/wheel_sha256/wheel_size"
        if (problem := manifest_key_problem(manifest, key)) is not None:
            return problem
        try:
            wheel = entry_dir / _check_filename(filename)
            digest, actual_size = _hash_file(wheel)
        except (CacheError, OSError) as err:
            return f"wheel unreadable: {err}"
        if (digest, actual_size) != (sha256, size):
            return f"wheel hashes to {digest} ({actual_size} bytes), manifest says {sha256}"
        cached = CachedFile(path=wheel, sha256=digest, size=actual_size)
        return BuiltWheelEntry(key=key, wheel=cached, manifest=manifest)

    def put_built(
        self, key: str, wheel: Path, manifest: Mapping[str, Any], *, move: bool = False
    ) -> BuiltWheelEntry:
        """Store a built wheel with its manifest; if ``key`` already exists, keep and return that."""
        target = self._built_dir(key)
        filename = _check_filename(wheel.name)
        if not filename.endswith(".whl"):
            msg = f"Refusing to cache {wheel} as a built wheel: its name does not end in .whl."
            raise CacheError(msg)
        _dump_json(manifest)  # fail on unserialisable values before touching the wheel
        if (problem := manifest_key_problem(manifest, key)) is not None:
            msg = f"Refusing to cache {wheel.name} under the key {key}: the {problem}."
            raise CacheError(msg)  # every read would reject the entry
        self._prepare()
        with _writing(target):
            staging = Path(tempfile.mkdtemp(prefix="built-", dir=self._tmp))
        try:
            with _writing(target):
                sha256, size = _ingest(wheel, staging / filename, move=move, expected=None)
            created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            document = {
                **manifest,
                "wheel_filename": filename,
                "wheel_sha256": sha256,
                "wheel_size": size,
                "created": created,
            }
            with _writing(target):
                (staging / _MANIFEST).write_bytes(_dump_json(document))
                staging.chmod(0o755)
                target.parent.mkdir(parents=True, exist_ok=True)
            with self._lock(key):
                existing = self.get_built(key)
                if existing is not None:
                    return existing
                try:
                    staging.rename(target)  # atomic; fails if another writer got there first
                except OSError as err:
                    existing = self.get_built(key)
                    if existing is not None:
                        return existing
                    msg = f"Cannot store the built wheel {filename} in {target}: {err}."
                    raise CacheError(msg, hint=_HINT) from err
            cached = CachedFile(path=target / filename, sha256=sha256, size=size)
            return BuiltWheelEntry(key=key, wheel=cached, manifest=document)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _json_path(self, kind: str, key: str) -> Path:
        _check(_KIND_RE, kind, "kind")
        key = _check(_KEY_RE, key, "key")
        return self._data / "json" / kind / key[:2] / f"{key}.json"

    def get_json(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self._json_path(kind, key)

        def load() -> dict[str, Any] | str | None:
            try:
                document = json.loads(path.read_bytes())
            except FileNotFoundError:
                return None
            except (OSError, ValueError) as err:
                return f"unreadable: {err}"
            return document if isinstance(document, dict) else "not a JSON object"

        return self._verified(load, f"{kind}-{key}", path, "it will be recomputed")

    def put_json(self, kind: str, key: str, document: Mapping[str, Any]) -> None:
        path = self._json_path(kind, key)
        data = _dump_json(document)
        with self._lock(f"{kind}-{key}"):
            if self.get_json(kind, key) is None:
                with _writing(path):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self._write_atomic(path, data)

    def replace_json(self, kind: str, key: str, document: Mapping[str, Any]) -> None:
        """Overwrite a JSON document (atomically): for facts that change, like what image a
        tag points to. Write-once entries use put_json."""
        path = self._json_path(kind, key)
        data = _dump_json(document)
        with self._lock(f"{kind}-{key}"), _writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomic(path, data)

    def _verified(
        self, load: Callable[[], _T | str | None], lock: str, path: Path, remedy: str
    ) -> _T | None:
        """Run ``load``; if the entry is bad, re-check under its lock, then evict and warn."""
        result = load()
        if not isinstance(result, str):
            return result
        with self._lock(lock):
            result = load()  # another process may have replaced it meanwhile
            if not isinstance(result, str):
                return result
            evicted = self._tmp / f"evicted-{uuid.uuid4().hex}"
            try:
                path.rename(evicted)
            except FileNotFoundError:
                return None  # someone else evicted it
            except OSError as err:
                msg = f"Cannot remove the corrupt cache entry {path}: {err.strerror or err}."
                raise CacheError(msg, hint=_HINT) from err
        if evicted.is_dir():
            shutil.rmtree(evicted, ignore_errors=True)
        else:
            evicted.unlink(missing_ok=True)
        self._reporter.warning(f"Removed corrupt cache entry {path} ({result}); {remedy}.")
        return None

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, staged = tempfile.mkstemp(dir=self._tmp, prefix="write-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            Path(staged).chmod(0o644)
            Path(staged).replace(path)
        finally:
            Path(staged).unlink(missing_ok=True)
