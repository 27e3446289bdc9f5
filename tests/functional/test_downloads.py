"""Downloads are verified against the pinned sha256 by the downloader itself, before the cache
sees the file: the cache's own check on the way in is a second line, not the only one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nativebuild.cache.local import CachedFile, LocalCache
from nativebuild.errors import DownloadError
from nativebuild.index.downloads import fetch_pin
from nativebuild.index.pip_config import IndexSettings
from nativebuild.pins import Pin

WHEEL = "six-1.16.0-py3-none-any.whl"


class TrustingCache(LocalCache):
    """A cache that stores whatever it is given (no check of its own), and records it: only
    the downloader's comparison stands between a wrong file and the build."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.stored: list[tuple[str, bytes]] = []

    def put_file(
        self, source: Path, *, sha256: str, filename: str, move: bool = False
    ) -> CachedFile:
        self.stored.append((sha256, source.read_bytes()))
        return CachedFile(path=source, sha256=sha256, size=source.stat().st_size)


def served(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "index" / WHEEL
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path.as_uri()


def pin_of(url: str, sha256: str) -> Pin:
    return Pin(name="six", version="1.16.0", filename=WHEEL, url=url, sha256=sha256)


def test_a_download_whose_sha256_differs_is_refused_before_the_cache(tmp_path: Path) -> None:
    url = served(tmp_path, b"what the index sent")
    got = hashlib.sha256(b"what the index sent").hexdigest()
    pinned = hashlib.sha256(b"what was pinned").hexdigest()
    cache = TrustingCache(tmp_path / "cache")
    slept: list[float] = []
    with pytest.raises(DownloadError) as caught:
        fetch_pin(pin_of(url, pinned), cache=cache, settings=IndexSettings(), sleep=slept.append)
    message = str(caught.value)
    assert f"{WHEEL} downloaded from {url} has sha256 {got}" in message
    assert f"but {pinned} was expected" in message
    assert cache.stored == [], "the wrong file never reaches the cache"
    assert slept == [], "a wrong file is not asked for again"
    assert caught.value.exit_code == 10
    assert list((tmp_path / "cache" / "tmp").iterdir()) == [], "the download is cleaned up"


def test_a_download_with_the_pinned_sha256_is_stored(tmp_path: Path) -> None:
    url = served(tmp_path, b"the right bytes")
    sha256 = hashlib.sha256(b"the right bytes").hexdigest()
    cache = TrustingCache(tmp_path / "cache")
    fetch_pin(pin_of(url, sha256), cache=cache, settings=IndexSettings())
    assert cache.stored == [(sha256, b"the right bytes")]


def test_the_real_cache_keeps_the_verified_download(tmp_path: Path) -> None:
    url = served(tmp_path, b"the right bytes")
    sha256 = hashlib.sha256(b"the right bytes").hexdigest()
    cache = LocalCache(tmp_path / "cache")
    cached = fetch_pin(pin_of(url, sha256), cache=cache, settings=IndexSettings())
    assert cached.path.read_bytes() == b"the right bytes"
    (tmp_path / "index" / WHEEL).unlink()  # the second time comes from the cache
    assert fetch_pin(pin_of(url, sha256), cache=cache, settings=IndexSettings()) == cached
