"""The package index's file lists (PEP 691 JSON, PEP 503 HTML), read on the host.

A ``poetry.lock`` names each file and its sha256 but not where it lives: the index tells. Only
the index is asked, never a resolver: the lock's pins and hashes stay exactly as locked.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from html.parser import HTMLParser
from typing import Any, Protocol
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import canonicalize_name

from nativebuild.errors import DownloadError, ResolutionError
from nativebuild.index.downloads import credentials_for, ssl_context
from nativebuild.index.pip_config import IndexSettings
from nativebuild.pins import FileRef, filename_of
from nativebuild.redact import redact, strip_credentials

ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
ATTEMPTS = 3
TIMEOUT_S = 60

Opener = Callable[[str], bytes]


@dataclasses.dataclass(frozen=True, kw_only=True)
class IndexFile:
    filename: str
    url: str  # absolute, without credentials or fragment
    sha256: str | None  # lower-case hex, when the index lists it
    requires_python: str | None
    yanked: bool


class FileLookup(Protocol):
    def __call__(self, name: str, filename: str, sha256: str) -> FileRef: ...


def parse_json_page(data: Mapping[str, Any], page_url: str) -> list[IndexFile]:
    files = []
    for entry in data.get("files", []):
        if not isinstance(entry, Mapping) or not entry.get("url"):
            continue
        hashes = entry.get("hashes") or {}
        sha256 = hashes.get("sha256") if isinstance(hashes, Mapping) else None
        yanked = entry.get("yanked", False)  # a reason string also means yanked (PEP 691)
        requires_python = entry.get("requires-python")
        url = strip_credentials(urldefrag(urljoin(page_url, str(entry["url"]))).url)
        files.append(
            IndexFile(
                filename=str(entry.get("filename") or filename_of(url)),
                url=url,
                sha256=str(sha256).lower() if sha256 else None,
                requires_python=str(requires_python) if requires_python else None,
                yanked=yanked is True or isinstance(yanked, str),
            )
        )
    return files


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.base: str | None = None
        self.anchors: list[tuple[dict[str, str | None], list[str]]] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._text = []
            self.anchors.append((dict(attrs), self._text))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def parse_html_page(text: str, page_url: str) -> list[IndexFile]:
    parser = _AnchorParser()
    parser.feed(text)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    files = []
    for attrs, text_parts in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base, href))
        algorithm, _, digest = fragment.partition("=")
        url = strip_credentials(url)
        files.append(
            IndexFile(
                filename="".join(text_parts).strip() or filename_of(url),
                url=url,
                sha256=digest.lower() if algorithm == "sha256" and digest else None,
                requires_python=attrs.get("data-requires-python") or None,
                yanked="data-yanked" in attrs,
            )
        )
    return files


def parse_page(body: bytes, page_url: str) -> list[IndexFile]:
    """Either API: the body tells which (the opener hides the Content-Type)."""
    text = body.decode("utf-8", errors="replace")
    if not text.lstrip().startswith("{"):
        return parse_html_page(text, page_url)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        msg = f"The index page {redact(page_url)} is not valid JSON: {err}"
        raise DownloadError(msg, hint="Check the index URL.") from err
    return parse_json_page(data, page_url)


def http_opener(
    settings: IndexSettings,
    *,
    index_urls: Sequence[str] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> Opener:
    """GET with our CA bundle and credentials (from ``index_urls``, then as pip finds them)."""

    def auth_for(url: str) -> tuple[str, str] | None:
        host = urlsplit(url).hostname
        for index in index_urls:
            parts = urlsplit(index)
            if parts.hostname == host and parts.username is not None:
                return unquote(parts.username), unquote(parts.password or "")
        return credentials_for(url, settings)

    def open_url(url: str) -> bytes:
        headers = {"Accept": ACCEPT, "User-Agent": "nativebuild"}
        credentials = auth_for(url)
        if credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(strip_credentials(url), headers=headers)  # noqa: S310
        for attempt in range(ATTEMPTS):
            try:
                with urllib.request.urlopen(  # noqa: S310
                    request, timeout=TIMEOUT_S, context=ssl_context(settings)
                ) as response:
                    body: bytes = response.read()
                    return body
            except urllib.error.HTTPError as err:
                if (err.code < 500 and err.code != 429) or attempt + 1 == ATTEMPTS:
                    raise
            except OSError:  # URLError, timeouts, resets: worth another try
                if attempt + 1 == ATTEMPTS:
                    raise
            sleep(2.0**attempt)
        raise AssertionError  # pragma: no cover - the loop returns or raises

    return open_url


class SimpleIndex:
    """The files of each project on ``index_urls``, in order; one request per (index, name)."""

    def __init__(
        self,
        index_urls: Sequence[str],
        *,
        settings: IndexSettings,
        opener: Opener | None = None,
    ) -> None:
        self._index_urls = tuple(index_urls)
        self._open = opener or http_opener(settings, index_urls=self._index_urls)
        self._pages: dict[tuple[str, str], list[IndexFile]] = {}

    def _page(self, index: str, name: str) -> list[IndexFile]:
        key = (index, canonicalize_name(name))
        if key not in self._pages:
            url = f"{strip_credentials(index).rstrip('/')}/{key[1]}/"
            try:
                body = self._open(url)
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise _index_error(url, err) from err
                body = b""  # the project is not on this index
            except OSError as err:
                raise _index_error(url, err) from err
            self._pages[key] = parse_page(body, url) if body else []
        return self._pages[key]

    def files(self, name: str) -> list[IndexFile]:
        return [file for index in self._index_urls for file in self._page(index, name)]

    def __call__(self, name: str, filename: str, sha256: str) -> FileRef:
        """The index file ``filename`` of ``name`` whose listed hash is ``sha256`` (or unlisted)."""
        sha256 = sha256.lower()
        differing = []
        for index in self._index_urls:
            for file in self._page(index, name):
                if file.filename != filename:
                    continue
                if file.sha256 is None or file.sha256 == sha256:
                    return FileRef(url=file.url, filename=filename, sha256=sha256)
                differing.append(f"{redact(index)} lists sha256 {file.sha256}")
        where = ", ".join(redact(index) for index in self._index_urls)
        if differing:
            msg = (
                f"{filename} of {name} is locked with sha256 {sha256}, but "
                f"{'; '.join(differing)}. The file was refused."
            )
            hint = "The file changed on the index, or the lock was made for another index: re-lock."
        else:
            msg = f"{filename} of {name}, pinned by the lock file, is not on {where}."
            hint = "Add the index it comes from (--extra-index-url), or re-lock the project."
        raise ResolutionError(msg, hint=hint)


def _index_error(url: str, err: OSError) -> DownloadError:
    msg = f"Could not read the index page {redact(url)}: {err}"
    if isinstance(err, urllib.error.HTTPError) and err.code in (401, 403):
        hint = "Give the index credentials in its URL (https://user:token@host/...) or in netrc."
    else:
        hint = "Check your network, proxy and CA bundle (PIP_CERT), then run again."
    return DownloadError(msg, hint=hint)
