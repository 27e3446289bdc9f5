"""The index client: pages parsed from canned bodies, and the real HTTP opener against a
server on 127.0.0.1 (no network)."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nativebuild.errors import DownloadError, ResolutionError
from nativebuild.index.pip_config import IndexSettings
from nativebuild.index.simple_api import ACCEPT, IndexFile, SimpleIndex, http_opener
from nativebuild.index.uv import HostUv
from nativebuild.inputs.lockfiles import load_locked

SHA_A = "a" * 64
SHA_B = "b" * 64
SETTINGS = IndexSettings()

JSON_PAGE = {
    "meta": {"api-version": "1.1"},
    "name": "six",
    "files": [
        {
            "filename": "six-1.16.0-py2.py3-none-any.whl",
            "url": "https://files.example/packages/six-1.16.0-py2.py3-none-any.whl",
            "hashes": {"sha256": SHA_A.upper()},
            "requires-python": ">=2.7",
            "yanked": False,
        },
        {
            "filename": "six-1.16.0.tar.gz",
            "url": "../../packages/six-1.16.0.tar.gz",
            "hashes": {},
            "yanked": "broken metadata",
        },
    ],
}
HTML_PAGE = f"""<!DOCTYPE html>
<html><body><h1>Links for six</h1>
<a href="../../packages/six-1.16.0-py2.py3-none-any.whl#sha256={SHA_A}"
   data-requires-python="&gt;=2.7, !=3.0.*">six-1.16.0-py2.py3-none-any.whl</a><br/>
<a href="https://user:pw@mirror.example/six-1.15.0.tar.gz#md5=abc" data-yanked="">
  six-1.15.0.tar.gz </a>
<a href="/p/six-1.14.0.tar.gz#sha256={SHA_B}" data-yanked="bad">six-1.14.0.tar.gz</a>
</body></html>
"""


class FakeOpener:
    """URL → body; anything else is a 404, as an index answers for an unknown project."""

    def __init__(self, pages: Mapping[str, bytes]) -> None:
        self.pages = dict(pages)
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if url not in self.pages:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
        return self.pages[url]


def test_pep691_json_page(tmp_path: Path) -> None:
    opener = FakeOpener({"https://idx.example/simple/six/": json.dumps(JSON_PAGE).encode()})
    index = SimpleIndex(["https://idx.example/simple"], settings=SETTINGS, opener=opener)
    assert index.files("Six") == [
        IndexFile(
            filename="six-1.16.0-py2.py3-none-any.whl",
            url="https://files.example/packages/six-1.16.0-py2.py3-none-any.whl",
            sha256=SHA_A,
            requires_python=">=2.7",
            yanked=False,
        ),
        IndexFile(
            filename="six-1.16.0.tar.gz",
            url="https://idx.example/packages/six-1.16.0.tar.gz",  # relative to the page
            sha256=None,
            requires_python=None,
            yanked=True,
        ),
    ]


def test_pep503_html_page() -> None:
    opener = FakeOpener({"https://idx.example/simple/six/": HTML_PAGE.encode()})
    index = SimpleIndex(["https://idx.example/simple/"], settings=SETTINGS, opener=opener)
    wheel, old, older = index.files("six")
    assert wheel == IndexFile(
        filename="six-1.16.0-py2.py3-none-any.whl",
        url="https://idx.example/packages/six-1.16.0-py2.py3-none-any.whl",
        sha256=SHA_A,
        requires_python=">=2.7, !=3.0.*",  # entities decoded
        yanked=False,
    )
    assert old.url == "https://mirror.example/six-1.15.0.tar.gz"  # credentials stripped
    assert old.filename == "six-1.15.0.tar.gz"
    assert old.sha256 is None  # md5 is not a hash we take
    assert old.yanked
    assert older.url == "https://idx.example/p/six-1.14.0.tar.gz"
    assert older.sha256 == SHA_B
    assert older.yanked


def test_html_base_tag_changes_what_links_are_relative_to() -> None:
    page = '<html><head><base href="https://cdn.example/files/"></head>'
    page += '<a href="x-1.0.tar.gz">x-1.0.tar.gz</a></html>'
    opener = FakeOpener({"https://idx.example/simple/x/": page.encode()})
    index = SimpleIndex(["https://idx.example/simple"], settings=SETTINGS, opener=opener)
    assert index.files("x")[0].url == "https://cdn.example/files/x-1.0.tar.gz"


def test_pages_are_asked_once_per_index_and_name_without_credentials() -> None:
    opener = FakeOpener({"https://idx.example/simple/six/": HTML_PAGE.encode()})
    urls = ["https://me:token@idx.example/simple", "https://other.example/simple"]
    index = SimpleIndex(urls, settings=SETTINGS, opener=opener)
    assert len(index.files("six")) == 3  # the second index answers 404: no files there
    index.files("SIX")
    index("six", "six-1.16.0-py2.py3-none-any.whl", SHA_A)
    assert opener.calls == ["https://idx.example/simple/six/", "https://other.example/simple/six/"]


def test_lookup_finds_the_file_across_indexes_in_order() -> None:
    opener = FakeOpener(
        {
            "https://first.example/simple/six/": b"<html></html>",
            "https://second.example/simple/six/": HTML_PAGE.encode(),
        }
    )
    urls = ["https://first.example/simple", "https://second.example/simple"]
    ref = SimpleIndex(urls, settings=SETTINGS, opener=opener)(
        "six", "six-1.16.0-py2.py3-none-any.whl", SHA_A.upper()
    )
    assert ref.url == "https://second.example/packages/six-1.16.0-py2.py3-none-any.whl"
    assert ref.sha256 == SHA_A


def test_lookup_accepts_a_file_whose_hash_the_index_does_not_list() -> None:
    opener = FakeOpener({"https://idx.example/simple/six/": HTML_PAGE.encode()})
    index = SimpleIndex(["https://idx.example/simple"], settings=SETTINGS, opener=opener)
    ref = index("six", "six-1.15.0.tar.gz", SHA_B)  # the download verifies it
    assert ref.sha256 == SHA_B


def test_lookup_hash_mismatch_is_refused() -> None:
    opener = FakeOpener({"https://idx.example/simple/six/": HTML_PAGE.encode()})
    index = SimpleIndex(["https://idx.example/simple"], settings=SETTINGS, opener=opener)
    with pytest.raises(ResolutionError, match=f"lists sha256 {SHA_A}") as info:
        index("six", "six-1.16.0-py2.py3-none-any.whl", SHA_B)
    assert "six-1.16.0-py2.py3-none-any.whl" in str(info.value)


def test_lookup_of_a_file_not_on_any_index_names_it() -> None:
    opener = FakeOpener({"https://idx.example/simple/six/": HTML_PAGE.encode()})
    index = SimpleIndex(["https://u:p@idx.example/simple"], settings=SETTINGS, opener=opener)
    with pytest.raises(ResolutionError, match=r"six-9\.9\.tar\.gz of six") as info:
        index("six", "six-9.9.tar.gz", SHA_A)
    assert "https://***@idx.example/simple" in str(info.value)


def test_index_failure_other_than_404_is_a_download_error() -> None:
    def opener(url: str) -> bytes:
        raise urllib.error.HTTPError(url, 403, "Forbidden", None, None)  # type: ignore[arg-type]

    index = SimpleIndex(["https://idx.example/simple"], settings=SETTINGS, opener=opener)
    with pytest.raises(DownloadError, match="403") as info:
        index.files("six")
    assert info.value.hint is not None
    assert "credentials" in info.value.hint


# --- the real opener, against a local server --------------------------------------------------


class Server:
    def __init__(self) -> None:
        self.routes: dict[str, list[tuple[int, bytes]]] = {}  # path → answers, last one repeats
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers)))
                answers = server.routes.get(self.path, [(404, b"")])
                status, body = answers.pop(0) if len(answers) > 1 else answers[0]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    srv = Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    thread.join()


def test_http_opener_sends_accept_and_credentials_of_the_index_url(server: Server) -> None:
    server.routes["/simple/six/"] = [(200, json.dumps(JSON_PAGE).encode())]
    url = server.url.replace("http://", "http://me:s%40cret@") + "/simple"
    index = SimpleIndex([url], settings=SETTINGS)
    assert index.files("six")[0].filename == "six-1.16.0-py2.py3-none-any.whl"
    ((path, headers),) = server.requests
    assert path == "/simple/six/"
    assert headers["Accept"] == ACCEPT
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"me:s@cret").decode()


def test_http_opener_retries_server_errors_then_succeeds(server: Server) -> None:
    server.routes["/simple/six/"] = [(503, b""), (500, b""), (200, HTML_PAGE.encode())]
    sleeps: list[float] = []
    urls = [server.url + "/simple"]
    opener = http_opener(SETTINGS, index_urls=urls, sleep=sleeps.append)
    assert len(SimpleIndex(urls, settings=SETTINGS, opener=opener).files("six")) == 3
    assert sleeps == [1.0, 2.0]


def test_http_opener_gives_up_after_three_tries(server: Server) -> None:
    server.routes["/simple/six/"] = [(502, b"")]
    urls = [server.url + "/simple"]
    opener = http_opener(SETTINGS, index_urls=urls, sleep=lambda _: None)
    with pytest.raises(DownloadError, match="502"):
        SimpleIndex(urls, settings=SETTINGS, opener=opener).files("six")
    assert len(server.requests) == 3


def test_http_opener_404_means_no_files_without_retrying(server: Server) -> None:
    urls = [server.url + "/simple"]
    opener = http_opener(SETTINGS, index_urls=urls, sleep=lambda _: None)
    assert SimpleIndex(urls, settings=SETTINGS, opener=opener).files("nothing") == []
    assert len(server.requests) == 1


def test_poetry_lock_files_are_looked_up_on_their_source_first(
    server: Server, tmp_path: Path
) -> None:
    """load_locked's default lookup: the package's [package.source] index, then the others."""
    private = (
        f'<a href="/files/corp-1.0-py3-none-any.whl#sha256={SHA_A}">corp-1.0-py3-none-any.whl</a>'
    )
    server.routes["/private/corp/"] = [(200, private.encode())]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.poetry]\nname = "app"\n[tool.poetry.dependencies]\npython = "^3.9"\ncorp = "1.0"\n'
    )
    (tmp_path / "poetry.lock").write_text(
        f"""[[package]]
name = "corp"
version = "1.0"
optional = false
python-versions = "*"
files = [{{file = "corp-1.0-py3-none-any.whl", hash = "sha256:{SHA_A}"}}]

[package.source]
type = "legacy"
url = "{server.url}/private"
reference = "corp"

[metadata]
lock-version = "2.0"
python-versions = "^3.9"
content-hash = "x"
"""
    )
    packages = load_locked(
        tmp_path / "poetry.lock",
        kind="poetry-lock",
        extras=(),
        groups=(),
        uv=HostUv(),
        index=IndexSettings(index_url=server.url + "/pypi"),
        env={},
        cache_dir=tmp_path / "cache",
    )
    (corp,) = packages
    assert corp.wheels[0].url == f"{server.url}/files/corp-1.0-py3-none-any.whl"
    assert [path for path, _ in server.requests] == ["/private/corp/"]
