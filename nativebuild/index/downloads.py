"""Downloading wheels and sdists on the host, verified against their sha256."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import netrc
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from nativebuild.cache.local import CachedFile, LocalCache
from nativebuild.errors import DownloadError
from nativebuild.index.pip_config import IndexSettings
from nativebuild.pins import Pin
from nativebuild.redact import redact
from nativebuild.reporting import Reporter, TaskKind, track

ATTEMPTS = 3
TIMEOUT_S = 60


# One TLS context per CA bundle (by path and identity): loading a bundle costs some 50 ms of
# CPU, once per process rather than once per file; a context serves any number of threads.
_contexts: dict[tuple[str | None, int, int], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def ssl_context(settings: IndexSettings) -> ssl.SSLContext:
    cafile = None if settings.ca_bundle is None else str(settings.ca_bundle)
    key: tuple[str | None, int, int] = (cafile, 0, 0)
    if cafile is not None:
        with contextlib.suppress(OSError):  # a missing bundle fails in create_default_context
            stat = Path(cafile).stat()
            key = (cafile, stat.st_mtime_ns, stat.st_size)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=cafile)
            _contexts[key] = context
        return context


def credentials_for(url: str, settings: IndexSettings) -> tuple[str, str] | None:
    """Index URLs carry credentials for their host (pip's rule); netrc comes next."""
    host = urlsplit(url).hostname
    for index in settings.index_urls:
        parts = urlsplit(index)
        if parts.hostname == host and parts.username is not None:
            return parts.username, parts.password or ""
    if settings.netrc is not None and host is not None:
        with contextlib.suppress(OSError, netrc.NetrcParseError):
            entry = netrc.netrc(str(settings.netrc)).authenticators(host)
            if entry is not None:
                return entry[0], entry[2] or ""
    return None


_ssl_context = ssl_context  # the old private names, kept for existing callers
_credentials_for = credentials_for


# Each host's addresses, looked up once per process: every download opens a connection of its
# own, and sixteen lookups of one host at once (each an A and an AAAA query) are what a lossy
# resolver drops, costing its five-second retry. A failed lookup is not kept.
_addresses: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
_addresses_lock = threading.Lock()


def addresses_of(host: str, port: int) -> list[tuple[Any, ...]]:
    """``socket.getaddrinfo`` of ``host``, once per process (the others wait for the first)."""
    with _addresses_lock:
        found = _addresses.get((host, port))
        if found is None:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            _addresses[(host, port)] = found
        return found


def _connect(
    address: tuple[str, int],
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """``socket.create_connection`` on the kept addresses: the first that answers. TLS still
    checks the certificate against the host's name (the connection keeps it)."""
    host, port = address
    last: OSError | None = None
    for info in addresses_of(host, port):
        try:
            return socket.create_connection((info[4][0], port), timeout, source_address)
        except OSError as err:
            last = err
    raise last or OSError(f"no address for {host}")


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connect


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connect


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self._tls = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, context=self._tls)


def _open(url: str, settings: IndexSettings) -> IO[bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": "nativebuild"})  # noqa: S310
    credentials = credentials_for(url, settings)
    if credentials is not None:
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    # urlopen's own opener (proxies from the environment included), with connections that
    # take their addresses from addresses_of().
    opener = urllib.request.build_opener(_HTTPHandler(), _HTTPSHandler(ssl_context(settings)))
    response: IO[bytes] = opener.open(request, timeout=TIMEOUT_S)
    return response


# Called with the bytes written so far and the size the server announced (None: not said).
OnBytes = Callable[[int, int | None], None]


def _announced_size(response: IO[bytes]) -> int | None:
    length = getattr(response, "headers", {}).get("Content-Length")
    return int(length) if isinstance(length, str) and length.isdigit() else None


def download_to(
    url: str, dest: Path, *, settings: IndexSettings, on_bytes: OnBytes | None = None
) -> str:
    """Stream ``url`` into ``dest``; return the sha256 of what was written."""
    digest = hashlib.sha256()
    written = 0
    with _open(url, settings) as response, dest.open("wb") as out:
        total = _announced_size(response)
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
            written += len(chunk)
            if on_bytes is not None:
                on_bytes(written, total)
    return digest.hexdigest()


def fetch_pin(
    pin: Pin,
    *,
    cache: LocalCache,
    settings: IndexSettings,
    sleep: Callable[[float], None] = time.sleep,
    on_bytes: OnBytes | None = None,
) -> CachedFile:
    """The file of ``pin``, from the cache or downloaded into it, always hash-verified."""
    cached = cache.get_file(pin.sha256, pin.filename)
    if cached is not None:
        return cached
    last_error: Exception | None = None
    for attempt in range(ATTEMPTS):
        with cache.scratch_dir() as scratch:
            part = scratch / pin.filename
            try:
                got = download_to(pin.url, part, settings=settings, on_bytes=on_bytes)
            except urllib.error.HTTPError as err:
                last_error = err
                if err.code < 500 and err.code != 429:
                    break  # a 404 or 403 will not get better by asking again
            except (OSError, urllib.error.URLError) as err:
                last_error = err
            else:
                if got != pin.sha256:
                    msg = (
                        f"{pin.filename} downloaded from {redact(pin.url)} has sha256 {got}, "
                        f"but {pin.sha256} was expected. The file was refused."
                    )
                    raise DownloadError(msg, hint="Check the index and the hashes you pinned.")
                return cache.put_file(part, sha256=pin.sha256, filename=pin.filename, move=True)
        sleep(2.0**attempt)
    msg = f"Could not download {pin.filename} from {redact(pin.url)}: {last_error}"
    hint = "Check your network, proxy and CA bundle (PIP_CERT), then run again."
    raise DownloadError(msg, hint=hint) from last_error


# Files fetched at once: each is mostly waiting on the network (a connection and its TLS
# handshake per file), so a set of small wheels takes about as long as its largest one.
WORKERS = 16


def fetch_all(
    pins: list[Pin],
    *,
    cache: LocalCache,
    settings: IndexSettings,
    reporter: Reporter,
    workers: int = WORKERS,
    then: Callable[[CachedFile], object] | None = None,
) -> dict[str, CachedFile]:
    """Fetch several pins at once (bounded), keyed by sha256 (names repeat across targets:
    one wheel per architecture). ``then`` runs on each verified file in the worker that
    fetched it, while the others still download."""
    if not pins:
        return {}

    def one(pin: Pin) -> tuple[str, CachedFile]:
        started = time.monotonic()
        with track(reporter, TaskKind.DOWNLOAD, pin.filename) as task:

            def on_bytes(done: int, total: int | None) -> None:
                task.advance(completed=done, total=total)

            cached = fetch_pin(pin, cache=cache, settings=settings, on_bytes=on_bytes)
        reporter.detail(
            f"downloaded {pin.filename} ({_size(cached.size)}, {time.monotonic() - started:.1f}s)"
        )
        if then is not None:
            then(cached)
        return pin.sha256, cached

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pins)))) as pool:
        return dict(pool.map(one, pins))


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"
