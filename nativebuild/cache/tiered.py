"""The cache a build uses: local first, then a shared remote one, written back.

:class:`TieredCache` has :class:`LocalCache`'s interface. A lookup that misses locally asks the
remote (when one is configured), verifies what comes back, and stores it locally; whatever the
build stores locally it also uploads, unless the cache is read-only. A remote that cannot be
reached, or refuses us, is reported once and then left alone: the build goes on with the local
cache. A remote entry that fails verification is rejected, evicted when allowed, reported, and
treated as a miss, so the pipeline rebuilds it and uploads a good one.

Besides the entries, it keeps under the cache root:

    used/<kind>/<key>      touched on every use: ``nativebuild cache prune`` evicts the least
                           recently used (st_atime is no guide: noatime/relatime mounts, and
                           every verifying read would count as a use)
    stats/<time>-<id>.json one small event per build: lookups by source, uploads, rejections
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nativebuild.cache.local import BuiltWheelEntry, CachedFile, LocalCache, default_cache_dir
from nativebuild.errors import CacheError
from nativebuild.redact import has_credentials
from nativebuild.reporting import Reporter

if TYPE_CHECKING:
    from nativebuild.cache.s3 import Corrupt, RemoteCache

LOCAL_ONLY_KINDS = frozenset({"image-id"})  # what this machine's engine holds: not shared
STATS_DIR = "stats"
USED_DIR = "used"
STATS_KEEP = 200
SOURCES = ("local", "remote", "miss")

_T = TypeVar("_T")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class BuildStats:
    """One build's cache outcomes, rewritten atomically after each new one (builds have no
    'finished' hook, and an interrupted build's numbers are worth keeping too)."""

    def __init__(self, directory: Path | None, *, remote: str | None) -> None:
        started = _now()
        name = f"{started:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.json"
        self.path = directory / name if directory is not None else None
        self._remote = remote
        self._started = started.isoformat(timespec="seconds")
        self._outcomes: dict[tuple[str, str], str] = {}
        self._uploads = 0
        self._rejected = 0
        self._lock = threading.Lock()

    def record(self, kind: str, key: str, source: str) -> None:
        """The first outcome per entry counts: a miss that is then built stays a miss."""
        with self._lock:
            if (kind, key) in self._outcomes:
                return
            self._outcomes[(kind, key)] = source
            self._write()

    def uploaded(self) -> None:
        with self._lock:
            self._uploads += 1
            self._write()

    def rejected(self) -> None:
        with self._lock:
            self._rejected += 1
            self._write()

    def to_json(self) -> dict[str, Any]:
        lookups: dict[str, dict[str, int]] = {}
        for (kind, _), source in self._outcomes.items():
            counts = lookups.setdefault(kind, dict.fromkeys(SOURCES, 0))
            counts[source] += 1
        return {
            "format": 1,
            "started": self._started,
            "updated": _now().isoformat(timespec="seconds"),
            "remote": self._remote,
            "lookups": lookups,
            "uploads": self._uploads,
            "rejected": self._rejected,
        }

    def _write(self) -> None:
        if self.path is None:
            return
        with contextlib.suppress(OSError):  # statistics never fail a build
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, staged = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(self.to_json(), f, sort_keys=True)
                Path(staged).replace(self.path)
            finally:
                Path(staged).unlink(missing_ok=True)


def trim_stats(directory: Path, keep: int = STATS_KEEP) -> None:
    with contextlib.suppress(OSError):
        events = sorted(p for p in directory.glob("*.json") if not p.name.startswith("."))
        for old in events[: max(0, len(events) - keep)]:
            old.unlink(missing_ok=True)


class TieredCache(LocalCache):
    """Local, then remote. A LocalCache subclass only so that every ``cache: LocalCache``
    parameter takes it: all of its state lives in the wrapped ``local`` cache, and every
    public method is overridden to delegate."""

    def __init__(
        self,
        local: LocalCache,
        *,
        reporter: Reporter,
        remote: RemoteCache | None = None,
        readonly: bool = False,
        record: bool = True,
    ) -> None:
        super().__init__(local.root, reporter=reporter)
        self.local = local
        self.reporter = reporter
        self.remote = remote
        self.remote_url = remote.url if remote is not None else None
        self.readonly = readonly
        self._push = remote is not None and not readonly
        self._state = threading.Lock()
        self._asked: set[tuple[str, str]] = set()  # each remote lookup once per build
        self._asking: dict[tuple[str, str], threading.Lock] = {}  # ... and one at a time
        self._warned: set[str] = set()
        self._told = False
        self.stats = BuildStats(local.root / STATS_DIR if record else None, remote=self.remote_url)
        if record:
            trim_stats(local.root / STATS_DIR)

    # Layout, locks and machine-local documents: the local cache's.
    @property
    def machine_local(self) -> LocalCache:
        return self.local

    def ensure(self) -> None:
        self.local.ensure()

    def lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        return self.local.lock(key)

    @contextlib.contextmanager
    def scratch_dir(self) -> Iterator[Path]:
        with self.local.scratch_dir() as path:
            yield path

    # Downloaded files, by sha256.
    def get_file(self, sha256: str, filename: str) -> CachedFile | None:
        hit = self.local.get_file(sha256, filename)
        if hit is not None:
            return self._used("file", sha256, "local", hit)
        with self._reader("file", sha256) as remote:
            if remote is None:  # asked already, maybe while this lookup waited
                hit = self.local.get_file(sha256, filename)
                if hit is not None:
                    return self._used("file", sha256, "local", hit)
            else:
                with self.local.scratch_dir() as work:
                    got = self._call(lambda: remote.fetch_file(sha256, filename, work), write=False)
                    if isinstance(got, Path):
                        entry = self.local.put_file(
                            got, sha256=sha256, filename=filename, move=True
                        )
                        return self._used("file", sha256, "remote", entry)
                    self._reject(remote, got, "it will be downloaded again")
        self.stats.record("file", sha256, "miss")
        return None

    def stored_file(self, sha256: str, filename: str) -> Path | None:
        return self.local.stored_file(sha256, filename)

    def put_file(
        self, source: Path, *, sha256: str, filename: str, move: bool = False
    ) -> CachedFile:
        entry = self.local.put_file(source, sha256=sha256, filename=filename, move=move)
        self._touch("file", sha256)
        self._upload(lambda remote: remote.push_file(entry.path, sha256=sha256, filename=filename))
        return entry

    # Compiled wheels, by cache key.
    def get_built(self, key: str) -> BuiltWheelEntry | None:
        hit = self.local.get_built(key)
        if hit is not None:
            return self._used("built", key, "local", hit)
        with self._reader("built", key) as remote:
            if remote is None:  # asked already, maybe while this lookup waited
                hit = self.local.get_built(key)
                if hit is not None:
                    return self._used("built", key, "local", hit)
            else:
                with self.local.scratch_dir() as work:
                    got = self._call(lambda: remote.fetch_built(key, work), write=False)
                    if isinstance(got, tuple):
                        entry = self.local.put_built(key, got[0], got[1], move=True)
                        return self._used("built", key, "remote", entry)
                    self._reject(remote, got, "the wheel will be rebuilt")
        self.stats.record("built", key, "miss")
        return None

    def put_built(
        self, key: str, wheel: Path, manifest: Mapping[str, Any], *, move: bool = False
    ) -> BuiltWheelEntry:
        entry = self.local.put_built(key, wheel, manifest, move=move)
        self._touch("built", key)
        self._upload(lambda remote: remote.push_built(key, entry.wheel.path, entry.manifest))
        return entry

    # Small JSON documents (resolutions; image ids stay on this machine).
    def get_json(self, kind: str, key: str) -> dict[str, Any] | None:
        hit = self.local.get_json(kind, key)
        if kind in LOCAL_ONLY_KINDS:
            return hit
        if hit is not None:
            return self._used("json", f"{kind}-{key}", "local", hit)
        with self._reader("json", f"{kind}-{key}") as remote:
            if remote is None:  # asked already, maybe while this lookup waited
                hit = self.local.get_json(kind, key)
                if hit is not None:
                    return self._used("json", f"{kind}-{key}", "local", hit)
            else:
                got = self._call(lambda: remote.fetch_json(kind, key), write=False)
                if isinstance(got, dict):
                    self.local.put_json(kind, key, got)
                    return self._used("json", f"{kind}-{key}", "remote", got)
                self._reject(remote, got, "it will be recomputed")
        self.stats.record("json", f"{kind}-{key}", "miss")
        return None

    def put_json(self, kind: str, key: str, document: Mapping[str, Any]) -> None:
        self.local.put_json(kind, key, document)
        if kind in LOCAL_ONLY_KINDS:
            return
        self._touch("json", f"{kind}-{key}")
        if has_credentials(document):
            self._reporter.detail(f"not uploading the {kind} {key[:12]}: it holds credentials")
            return
        self._upload(lambda remote: remote.push_json(kind, key, document))

    def replace_json(self, kind: str, key: str, document: Mapping[str, Any]) -> None:
        self.local.replace_json(kind, key, document)  # mutable, machine-local facts

    # The remote, and what to do when it fails.
    @contextlib.contextmanager
    def _reader(self, kind: str, key: str) -> Iterator[RemoteCache | None]:
        """The remote to ask for an entry: once per build (None after that, or without a
        remote). A lookup of an entry being fetched waits for that fetch, then finds the
        entry locally (two dependency sets built at once often share a wheel)."""
        with self._state:
            asking = self._asking.setdefault((kind, key), threading.Lock())
        with asking:
            with self._state:
                remote = None if (kind, key) in self._asked else self.remote
                self._asked.add((kind, key))
            yield remote

    def _call(self, op: Callable[[], _T], *, write: bool) -> _T | None:
        try:
            return op()
        except CacheError as err:
            self._give_up(err, write=write)
            return None

    def _give_up(self, err: CacheError, *, write: bool) -> None:
        """Stop using the remote (or stop writing to it), and say so once per build."""
        with self._state:
            self._push = False
            if not write:
                self.remote = None
            told, self._told = self._told, True
        if told:
            return
        if write:
            self._reporter.warning(
                f"Not uploading to the remote cache {self.remote_url}: {err} The build goes on; "
                "use --cache-readonly where writing is not allowed."
            )
        else:
            self._reporter.warning(
                f"The remote cache {self.remote_url} is not usable: {err} "
                "The build goes on with the local cache only."
            )

    def _upload(self, op: Callable[[RemoteCache], bool]) -> None:
        with self._state:
            remote = self.remote if self._push else None
        if remote is not None and self._call(lambda: op(remote), write=True):
            self.stats.uploaded()

    def _reject(self, remote: RemoteCache, corrupt: Corrupt | None, remedy: str) -> None:
        """Never use a bad entry; evict it when allowed, so a good one can replace it."""
        if corrupt is None:
            return
        self.stats.rejected()
        with self._state:
            may_delete = self._push
        evicted = may_delete and bool(self._call(lambda: remote.evict(corrupt), write=True))
        name = f"s3://{remote.store.location.bucket}/{corrupt.names[0]}"
        with self._state:
            if name in self._warned:
                return
            self._warned.add(name)
        why = "read-only" if self.readonly else "not allowed to delete it"
        done = "evicted it" if evicted else f"left it in place ({why})"
        self._reporter.warning(
            f"Rejected the remote cache entry {name} ({corrupt.reason}): {done}; {remedy}."
        )

    def _used(self, kind: str, key: str, source: str, value: _T) -> _T:
        self._touch(kind, key)
        self.stats.record(kind, key, source)
        return value

    def _touch(self, kind: str, key: str) -> None:
        marker = self.local.root / USED_DIR / kind / key
        with contextlib.suppress(OSError):  # LRU bookkeeping never fails a build
            try:
                marker.touch()
            except FileNotFoundError:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()


def open_cache(
    *,
    cache_dir: Path | None,
    remote_url: str | None,
    endpoint_url: str | None,
    readonly: bool,
    no_cache: bool,
    env: Mapping[str, str],
    reporter: Reporter,
) -> TieredCache:
    """The cache for one build: local (or a throwaway one with --no-cache), a remote behind it
    with --cache, read-only with --cache-readonly."""
    if no_cache:
        root = Path(tempfile.mkdtemp(prefix="nativebuild-no-cache-"))
        cache = TieredCache(LocalCache(root, reporter=reporter), reporter=reporter, record=False)
        weakref.finalize(cache, shutil.rmtree, root, ignore_errors=True)
        reporter.detail("--no-cache: using a throwaway cache, reading and sharing nothing")
    else:
        local = LocalCache(cache_dir or default_cache_dir(env), reporter=reporter)
        remote = None
        if remote_url:
            from nativebuild.cache.s3 import open_remote

            remote = open_remote(remote_url, endpoint_url=endpoint_url)
            reporter.detail(f"remote cache: {remote.url}{' (read-only)' if readonly else ''}")
        cache = TieredCache(local, reporter=reporter, remote=remote, readonly=readonly)
    cache.ensure()
    return cache
