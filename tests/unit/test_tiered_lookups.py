"""Concurrent lookups of one entry in the tiered cache: the remote is asked once per build, and a
lookup that arrives while that answer is on its way waits for it rather than taking a miss
(``sam build`` resolves and plans its dependency sets at once, and sets share wheels)."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from nativebuild.cache.local import BuiltWheelEntry, LocalCache
from nativebuild.cache.tiered import TieredCache
from tests.fakes import RecordingReporter

KEY = "ab" * 32
WHEEL = b"a wheel's bytes"


class SlowRemote:
    """The remote's side of the seam: each answer held back until ``release`` is set."""

    url = "s3://bucket/cache"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.asked: list[str] = []

    def fetch_built(self, key: str, work: Path) -> tuple[Path, dict[str, Any]]:
        self.asked.append(key)
        self.release.wait(10)
        wheel = work / "pkg-1.0-cp39-cp39-linux_x86_64.whl"
        wheel.write_bytes(WHEEL)
        return wheel, {"name": "pkg", "key": key}

    def fetch_json(self, kind: str, key: str) -> dict[str, Any]:
        self.asked.append(f"{kind}-{key}")
        self.release.wait(10)
        return {"pins": ["pkg==1.0"]}


def tiered(tmp_path: Path, remote: SlowRemote) -> TieredCache:
    reporter = RecordingReporter()
    local = LocalCache(tmp_path / "cache", reporter=reporter)
    cache = TieredCache(local, reporter=reporter, remote=remote, record=False)  # type: ignore[arg-type]
    cache.ensure()
    return cache


def both_at_once(remote: SlowRemote, lookup: Any) -> list[Any]:
    """Two lookups of one entry, the second while the remote is still answering the first."""
    found: list[Any] = [None, None]

    def look(slot: int) -> None:
        found[slot] = lookup()

    first = threading.Thread(target=look, args=(0,))
    first.start()
    deadline = time.monotonic() + 10
    while not remote.asked and time.monotonic() < deadline:
        time.sleep(0.01)
    second = threading.Thread(target=look, args=(1,))
    second.start()
    second.join(0.3)  # a lookup that does not wait would be done by now, with a miss
    remote.release.set()
    first.join(10)
    second.join(10)
    return found


def test_a_wheel_being_fetched_is_waited_for_not_missed(tmp_path: Path) -> None:
    remote = SlowRemote()
    cache = tiered(tmp_path, remote)
    found = both_at_once(remote, lambda: cache.get_built(KEY))
    assert all(isinstance(entry, BuiltWheelEntry) for entry in found), found
    assert [entry.wheel.sha256 for entry in found] == [hashlib.sha256(WHEEL).hexdigest()] * 2
    assert remote.asked == [KEY]  # once per build


def test_a_document_being_fetched_is_waited_for_not_missed(tmp_path: Path) -> None:
    remote = SlowRemote()
    cache = tiered(tmp_path, remote)
    found = both_at_once(remote, lambda: cache.get_json("resolution", KEY))
    assert found == [{"pins": ["pkg==1.0"]}] * 2
    assert remote.asked == [f"resolution-{KEY}"]
