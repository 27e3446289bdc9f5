"""Upkeep of the cache: its entries, pruning by size and age, statistics of the last builds, and
re-hashing every entry. The ``nativebuild cache`` commands are thin wrappers around this.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nativebuild.cache.keys import CACHE_LAYOUT_VERSION
from nativebuild.cache.local import LocalCache
from nativebuild.cache.tiered import SOURCES, STATS_DIR, USED_DIR, TieredCache
from nativebuild.errors import ConfigError

_UNITS: dict[str, float] = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_PERIODS: dict[str, float] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LocalEntry:
    kind: str  # file | built | json
    key: str  # sha256, cache key, or "<kind>-<key>": the name of its used/ marker
    name: str
    path: Path  # the entry's directory (files, built wheels) or file (documents)
    size: int
    last_used: float  # seconds since the epoch


def _amount(text: str, units: Mapping[str, float], what: str, example: str) -> float:
    pattern = rf"\s*(\d+(?:\.\d+)?)\s*([{''.join(units)}]?)b?\s*"
    match = re.fullmatch(pattern, text.lower())
    if match is None or match[2] not in units:
        msg = f"Invalid {what} {text!r}: expected a number and one of {', '.join(units)}."
        raise ConfigError(msg, hint=f"For example {example}.")
    return float(match[1]) * units[match[2]]


def parse_size(text: str) -> int:
    """``1G``, ``500M``, ``10k``, ``2.5GB`` or a number of bytes (decimal units)."""
    return int(_amount(text, _UNITS, "size", "--max-size 5G"))


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``2w``, ``90m`` or ``3600s``, in seconds."""
    return _amount(text, _PERIODS, "age", "--older-than 30d")


def choose_prune(
    entries: Sequence[LocalEntry], *, now: float, max_size: int | None, older_than: float | None
) -> list[LocalEntry]:
    """Least recently used first: everything unused for ``older_than``, then more until the
    rest fits in ``max_size``."""
    total = sum(entry.size for entry in entries)
    chosen = []
    for entry in sorted(entries, key=lambda e: (e.last_used, e.key)):
        stale = older_than is not None and now - entry.last_used > older_than
        too_big = max_size is not None and total > max_size
        if not (stale or too_big):
            break
        chosen.append(entry)
        total -= entry.size
    return chosen


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _tree_size(path: Path) -> int:
    with contextlib.suppress(OSError):  # an entry evicted meanwhile
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def local_entries(root: Path) -> Iterator[LocalEntry]:
    data, used = root / f"v{CACHE_LAYOUT_VERSION}", root / USED_DIR

    def entry(kind: str, key: str, name: str, path: Path) -> LocalEntry:
        last = max(_mtime(used / kind / key), _mtime(path))
        return LocalEntry(
            kind=kind, key=key, name=name, path=path, size=_tree_size(path), last_used=last
        )

    for directory in sorted(data.glob("files/*/*")):
        for file in directory.iterdir():
            yield entry("file", directory.name, file.name, directory)
    for directory in sorted(data.glob("built/*/*")):
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((directory / "manifest.json").read_bytes())
            name = f"{manifest.get('wheel_filename', '?')} ({manifest.get('target', '?')})"
            yield entry("built", directory.name, name, directory)
    for file in sorted(data.glob("json/*/*/*.json")):
        kind = file.parent.parent.name
        yield entry("json", f"{kind}-{file.stem}", kind, file)


def evict(root: Path, entry: LocalEntry) -> None:
    """Move the entry out of the way in one rename (readers see it whole or not at all)."""
    gone = root / "tmp" / f"evicted-{uuid.uuid4().hex}"
    with contextlib.suppress(FileNotFoundError):
        entry.path.rename(gone)
    if gone.is_dir():
        shutil.rmtree(gone, ignore_errors=True)
    else:
        gone.unlink(missing_ok=True)
    (root / USED_DIR / entry.kind / entry.key).unlink(missing_ok=True)


def read_stats(root: Path, last: int) -> list[dict[str, Any]]:
    events = []
    for file in sorted((root / STATS_DIR).glob("*.json"))[-last:]:
        with contextlib.suppress(OSError, ValueError):
            events.append(json.loads(file.read_text(encoding="utf-8")))
    return events


@dataclasses.dataclass(frozen=True, kw_only=True)
class HitRate:
    local: int
    remote: int
    miss: int

    @property
    def rate(self) -> float | None:
        asked = self.local + self.remote + self.miss
        return (self.local + self.remote) / asked if asked else None


def hit_rates(events: Sequence[dict[str, Any]]) -> dict[str, HitRate]:
    """Per kind of entry: lookups by source over ``events``."""
    totals: dict[str, dict[str, int]] = {}
    for event in events:
        for kind, counts in (event.get("lookups") or {}).items():
            into = totals.setdefault(kind, dict.fromkeys(SOURCES, 0))
            for source in SOURCES:
                into[source] += int(counts.get(source, 0))
    return {kind: HitRate(**counts) for kind, counts in totals.items()}


def verify_local(local: LocalCache) -> tuple[int, int]:
    """The local cache's own reads re-hash, and evict and warn on a mismatch."""
    entries, bad = list(local_entries(local.root)), 0
    for entry in entries:
        if entry.kind == "file":
            bad += local.get_file(entry.key, entry.name) is None
        elif entry.kind == "built":
            bad += local.get_built(entry.key) is None
        else:
            kind, key = entry.key.rsplit("-", 1)
            bad += local.get_json(kind, key) is None
    return len(entries), bad


def verify_remote(cache: TieredCache) -> tuple[int, int]:
    from nativebuild.cache.s3 import Corrupt

    remote = cache.remote
    assert remote is not None  # noqa: S101 - need_remote
    entries, bad = list(remote.entries()), 0
    with cache.scratch_dir() as work:
        for n, entry in enumerate(entries):
            into = work / str(n)
            into.mkdir()
            if entry.kind == "file":
                got: object = remote.fetch_file(entry.key, entry.filename, into)
            elif entry.kind == "built":
                got = remote.fetch_built(entry.key, into)
            else:
                got = remote.fetch_json(*entry.key.split("/", 1))
            shutil.rmtree(into)
            if isinstance(got, Corrupt):
                bad += 1
                done = not cache.readonly and remote.evict(got)
                cache.reporter.warning(
                    f"{remote.url}: {got.names[0]} is corrupt ({got.reason})"
                    + ("; evicted" if done else "; left in place")
                )
    return len(entries), bad
