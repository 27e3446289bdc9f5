"""Downloads are verified against the pinned sha256 by the downloader itself, before the cache
sees the file: the cache's own check on the way in is a second line, not the only one."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from nativebuild.cache.local import CachedFile, LocalCache
from nativebuild.errors import DownloadError
from nativebuild.index.downloads import fetch_all, fetch_pin, ssl_context
from nativebuild.index.pip_config import IndexSettings
from nativebuild.pins import Pin
from nativebuild.reporting import NullReporter

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


def test_one_tls_context_per_ca_bundle_until_the_bundle_changes(tmp_path: Path) -> None:
    """Loading a CA bundle costs tens of milliseconds: once per process, not once per file."""
    import certifi

    bundle = tmp_path / "ca.pem"
    shutil.copyfile(certifi.where(), bundle)
    settings = IndexSettings(ca_bundle=bundle)
    first = ssl_context(settings)
    assert ssl_context(IndexSettings(ca_bundle=bundle)) is first
    assert ssl_context(IndexSettings()) is not first, "the system store is another context"
    bundle.write_text(bundle.read_text() + "\n")  # a bundle edited in place is loaded again
    assert ssl_context(settings) is not first
    with pytest.raises(FileNotFoundError):
        ssl_context(IndexSettings(ca_bundle=tmp_path / "missing.pem"))


def test_each_file_is_handed_on_by_the_worker_that_fetched_it(tmp_path: Path) -> None:
    """``then`` runs on every verified file in its download worker (the wheels are read while
    the other files still download), and its failure is the fetch's failure."""
    pins = []
    for n in range(6):
        data = f"wheel {n}".encode()
        path = tmp_path / "index" / f"pkg{n}-1.0-py3-none-any.whl"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        pins.append(
            Pin(name=f"pkg{n}", version="1.0", filename=path.name, url=path.as_uri(),
                sha256=hashlib.sha256(data).hexdigest())
        )  # fmt: skip
    handed: list[tuple[str, str]] = []

    def then(cached: CachedFile) -> None:
        handed.append((cached.path.read_text(), threading.current_thread().name))

    cache = LocalCache(tmp_path / "cache")
    got = fetch_all(pins, cache=cache, settings=IndexSettings(), reporter=NullReporter(), then=then)
    assert sorted(text for text, _ in handed) == [f"wheel {n}" for n in range(6)]
    assert all(thread != threading.main_thread().name for _, thread in handed)
    assert set(got) == {pin.sha256 for pin in pins}

    def refuse(cached: CachedFile) -> None:
        msg = f"cannot read {cached.path.name}"
        raise DownloadError(msg)

    with pytest.raises(DownloadError, match="cannot read"):
        fetch_all(pins, cache=cache, settings=IndexSettings(), reporter=NullReporter(), then=refuse)


def test_each_host_is_looked_up_once_for_all_its_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file opens a connection of its own, but the host's name is resolved once per
    process: sixteen lookups at once are what a lossy resolver drops (a 5 s retry each)."""
    folder = tmp_path / "index"
    folder.mkdir()
    pins = []
    for n in range(6):
        data = f"wheel {n}".encode()
        (folder / f"pkg{n}-1.0-py3-none-any.whl").write_bytes(data)
        pins.append((f"pkg{n}-1.0-py3-none-any.whl", hashlib.sha256(data).hexdigest()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    lookups: list[str] = []
    real = socket.getaddrinfo

    def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    monkeypatch.setattr("nativebuild.index.downloads._addresses", {})
    monkeypatch.setenv("NO_PROXY", "*")
    try:
        got = fetch_all(
            [
                Pin(name=f"pkg{n}", version="1.0", filename=name, sha256=sha,
                    url=f"http://localhost:{port}/{name}")
                for n, (name, sha) in enumerate(pins)
            ],
            cache=LocalCache(tmp_path / "cache"), settings=IndexSettings(), reporter=NullReporter(),
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(cached.path.read_text() for cached in got.values()) == [
        f"wheel {n}" for n in range(6)
    ]
    assert lookups == ["localhost"]
