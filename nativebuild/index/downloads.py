"""Downloading wheels and sdists on the host, verified against their sha256."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import netrc
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from nativebuild.cache.local import CachedFile, LocalCache
from nativebuild.errors import DownloadError
from nativebuild.index.pip_config import IndexSettings
from nativebuild.pins import Pin
from nativebuild.redact import redact
from nativebuild.reporting import Reporter

ATTEMPTS = 3
TIMEOUT_S = 60


def ssl_context(settings: IndexSettings) -> ssl.SSLContext:
    if settings.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    return ssl.create_default_context()


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


def _open(url: str, settings: IndexSettings) -> IO[bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": "nativebuild"})  # noqa: S310
    credentials = credentials_for(url, settings)
    if credentials is not None:
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    response: IO[bytes] = urllib.request.urlopen(  # noqa: S310
        request, timeout=TIMEOUT_S, context=ssl_context(settings)
    )
    return response


def download_to(url: str, dest: Path, *, settings: IndexSettings) -> str:
    """Stream ``url`` into ``dest``; return the sha256 of what was written."""
    digest = hashlib.sha256()
    with _open(url, settings) as response, dest.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def fetch_pin(
    pin: Pin,
    *,
    cache: LocalCache,
    settings: IndexSettings,
    sleep: Callable[[float], None] = time.sleep,
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
                got = download_to(pin.url, part, settings=settings)
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


def fetch_all(
    pins: list[Pin],
    *,
    cache: LocalCache,
    settings: IndexSettings,
    reporter: Reporter,
    workers: int = 4,
) -> dict[str, CachedFile]:
    """Fetch several pins at once (bounded), keyed by sha256 (names repeat across targets:
    one wheel per architecture)."""
    if not pins:
        return {}

    def one(pin: Pin) -> tuple[str, CachedFile]:
        started = time.monotonic()
        cached = fetch_pin(pin, cache=cache, settings=settings)
        reporter.detail(
            f"downloaded {pin.filename} ({_size(cached.size)}, {time.monotonic() - started:.1f}s)"
        )
        return pin.sha256, cached

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pins)))) as pool:
        return dict(pool.map(one, pins))


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"
