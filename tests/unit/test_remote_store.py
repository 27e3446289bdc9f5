"""The S3 store under the remote cache: the client's settings as the wire sees them, what each
read and write sends, the answers moto's server never gives (errors without a code, a body
without a length, stores without conditional writes) and the limits of a document's size and a
download's memory. Real boto3 throughout: against moto's server, against a small HTTP server of
the test's own on 127.0.0.1 when the answer must be one that moto does not give, or with
botocore's Stubber for the exact requests a call makes."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY

from nativebuild.cache.s3 import Corrupt, RemoteCache, S3Store, make_client
from nativebuild.cache.s3 import open_remote as open_remote_cache
from nativebuild.errors import CacheError, ConfigError
from tests.moto_server import FAKE_CREDENTIALS, S3, isolate_aws, moto_endpoint, s3
from tests.s3_stubs import stubbed_store

__all__ = ["moto_endpoint", "s3"]  # fixtures
KEY = "ab" * 32
DOCUMENT_LIMIT = 16 * 1024 * 1024  # the largest manifest or document a reader accepts
Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


# ----- a store whose answers the test writes --------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Endpoint:
    """An HTTP server on 127.0.0.1 that answers every request with ``answer(method, path)`` and
    keeps what each request sent."""

    url: str
    requests: list[Request] = field(default_factory=list)
    answer: Callable[[str, str], Answer] = lambda method, path: (404, {}, b"")

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]


def _handler(endpoint: Endpoint) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            endpoint.requests.append(Request(self.command, self.path, headers))
            status, extra, body = endpoint.answer(self.command, self.path)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if "Content-Length" in extra or "Connection" in extra:
                self.close_connection = "Connection" in extra
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Endpoint]:
    isolate_aws(
        monkeypatch,
        {
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        },
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    found = Endpoint(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(found)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def error(code: str | None, status: int) -> Answer:
    """S3's error document; without ``<Code>`` when code is None."""
    named = f"<Code>{code}</Code>" if code is not None else ""
    body = f"<Error>{named}<Message>refused</Message></Error>".encode()
    return status, {"Content-Type": "application/xml"}, body


def store_at(endpoint: Endpoint) -> S3Store:
    return open_remote_cache("s3://bkt/p", endpoint_url=endpoint.url).store


# ----- the client's settings ------------------------------------------------------------------


def test_a_failing_request_is_tried_twice_in_all(endpoint: Endpoint) -> None:
    endpoint.answer = lambda method, path: error("SlowDown", 503)
    with pytest.raises(CacheError) as caught:
        store_at(endpoint).read("p/v1/json/resolution/ab/x.json")
    assert str(caught.value) == "Cannot read s3://bkt/p/v1/json/resolution/ab/x.json: SlowDown."
    assert endpoint.methods() == ["GET", "GET"]


def test_the_sdk_neither_adds_nor_asks_for_checksums(endpoint: Endpoint) -> None:
    """nativebuild hashes every read itself; the SDK's checksum headers trip some S3-compatible
    stores, so neither a PUT nor a GET carries them."""
    answers = {"HEAD": (404, {}, b""), "PUT": (200, {}, b""), "GET": (200, {}, b"{}")}
    endpoint.answer = lambda method, path: answers[method]
    store = store_at(endpoint)
    assert store.create("p/v1/json/resolution/ab/x.json", b"{}") is True
    assert store.read("p/v1/json/resolution/ab/x.json") == b"{}"
    assert endpoint.methods() == ["HEAD", "PUT", "GET"]
    assert endpoint.requests[1].path == "/bkt/p/v1/json/resolution/ab/x.json"
    sent = [name for r in endpoint.requests for name in r.headers if "checksum" in name]
    assert sent == []


def test_timeouts_are_short_and_the_pool_fits_parallel_uploads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dead endpoint costs seconds, not minutes; sixteen uploads share the pool at once."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    config = make_client("http://127.0.0.1:9").meta.config
    assert (config.connect_timeout, config.read_timeout) == (3, 30)
    assert config.max_pool_connections == 16


def test_an_s3_error_without_a_code_is_named_as_an_error(endpoint: Endpoint) -> None:
    endpoint.answer = lambda method, path: error(None, 400)
    with pytest.raises(CacheError) as caught:
        store_at(endpoint).read("p/v1/json/resolution/ab/x.json")
    assert str(caught.value) == "Cannot read s3://bkt/p/v1/json/resolution/ab/x.json: error."


def test_a_document_sent_without_a_length_is_read_whole(endpoint: Endpoint) -> None:
    """Some stores and proxies end a GET's body by closing the connection."""
    endpoint.answer = lambda method, path: (200, {"Connection": "close"}, b'{"pins": []}')
    assert store_at(endpoint).read("p/v1/json/resolution/ab/x.json") == b'{"pins": []}'


def test_an_endpoint_the_sdk_refuses_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as caught:
        open_remote_cache("s3://bkt/p/", endpoint_url="http://user:secret@bad host")
    message = str(caught.value)
    assert message.startswith("Cannot set up the S3 client for s3://bkt/p: Invalid endpoint: ")
    assert "secret" not in message
    assert "cache-endpoint-url" in str(caught.value.hint)


def test_the_cache_is_named_by_its_canonical_url(endpoint: Endpoint) -> None:
    assert open_remote_cache(" s3://bkt/p/q/ ", endpoint_url=endpoint.url).url == "s3://bkt/p/q"


# ----- the exact requests, and the messages of failures ---------------------------------------


NAME = "p/v1/files/ab/x/six.whl"


@pytest.mark.parametrize(
    ("method", "doing", "call"),
    [
        ("get_object", "read", lambda store, tmp: store.read(NAME)),
        ("get_object", "read", lambda store, tmp: store.download(NAME, tmp / "six.whl")),
        ("head_object", "read", lambda store, tmp: store.exists(NAME)),
        ("put_object", "write", lambda store, tmp: store.create(NAME, b"x")),
    ],
    ids=["read", "download", "exists", "create"],
)
def test_a_failure_names_the_operation_the_object_and_the_cause(
    method: str, doing: str, call: Callable[[S3Store, Path], object], tmp_path: Path
) -> None:
    store, stub = stubbed_store()
    if method == "put_object":
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
    stub.add_client_error(method, service_error_code="InternalError", http_status_code=500)
    with stub, pytest.raises(CacheError) as caught:
        call(store, tmp_path)
    assert str(caught.value) == f"Cannot {doing} s3://bkt/{NAME}: InternalError."


def test_a_download_denied_on_a_key_the_listing_lacks_is_a_miss(tmp_path: Path) -> None:
    store, stub = stubbed_store()
    stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    stub.add_response(
        "list_objects_v2", {"KeyCount": 0}, {"Bucket": "bkt", "Prefix": NAME, "MaxKeys": 1}
    )
    with stub:
        assert store.download(NAME, tmp_path / "six.whl") is None
    stub.assert_no_pending_responses()
    assert not (tmp_path / "six.whl").exists()


@pytest.mark.parametrize("kind", ["bytes", "file"])
def test_a_store_without_conditional_writes_is_written_plainly(kind: str, tmp_path: Path) -> None:
    """The HEAD is then the only check; payloads are content-addressed, so a lost race is
    harmless."""
    store, stub = stubbed_store()
    body: bytes | Path = b"{}"
    if kind == "file":
        body = tmp_path / "six.whl"
        body.write_bytes(b"wheel")
    sent = {"Bucket": "bkt", "Key": NAME, "Body": b"{}" if kind == "bytes" else ANY}
    stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
    stub.add_client_error(
        "put_object",
        service_error_code="NotImplemented",
        http_status_code=501,
        expected_params={**sent, "IfNoneMatch": "*"},
    )
    stub.add_response("put_object", {}, sent)
    with stub:
        assert store.create(NAME, body) is True
    stub.assert_no_pending_responses()


# ----- documents ------------------------------------------------------------------------------


def remote_for(s3: S3) -> RemoteCache:
    return open_remote_cache(s3.url, endpoint_url=s3.endpoint)


def envelope(document: object, *, kind: str = "resolution", key: str = KEY) -> dict[str, object]:
    checksum = hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return {"kind": kind, "key": key, "sha256": checksum, "document": document}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps(envelope([1, 2])).encode(),  # its checksum right, but not an object
        json.dumps(envelope({"pins": []}, kind="lock")).encode(),  # filed under another kind
        json.dumps(envelope({"pins": []}, key="cd" * 32)).encode(),  # ... under another key
        json.dumps({**envelope({"pins": []}), "sha256": "0" * 64}).encode(),
    ],
    ids=["not-json", "list", "not-an-object", "other-kind", "other-key", "checksum"],
)
def test_a_document_that_is_not_what_its_name_says_is_corrupt(s3: S3, body: bytes) -> None:
    remote = remote_for(s3)
    name = remote.json_name("resolution", KEY)
    s3.write(name, body)
    assert remote.fetch_json("resolution", KEY) == Corrupt(
        names=(name,), reason="document does not match its checksum"
    )


def padded(document: dict[str, object], size: int) -> bytes:
    """The envelope of ``document``, padded with trailing spaces (still JSON) to ``size``."""
    body = json.dumps(envelope(document)).encode()
    return body + b" " * (size - len(body))


def test_a_document_of_the_largest_size_is_read_and_a_larger_one_refused(s3: S3) -> None:
    remote = remote_for(s3)
    name = remote.json_name("resolution", KEY)
    s3.write(name, padded({"pins": []}, DOCUMENT_LIMIT))
    assert remote.fetch_json("resolution", KEY) == {"pins": []}
    s3.write(name, padded({"pins": []}, DOCUMENT_LIMIT + 1))
    got = remote.fetch_json("resolution", KEY)
    assert isinstance(got, Corrupt)


# ----- built wheels ---------------------------------------------------------------------------


def wheel_file(directory: Path, content: bytes) -> tuple[Path, dict[str, object]]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pkg-1.0-cp39-cp39-linux_x86_64.whl"
    path.write_bytes(content)
    manifest = {
        "name": "pkg",
        "wheel_filename": path.name,
        "wheel_sha256": hashlib.sha256(content).hexdigest(),
        "wheel_size": len(content),
    }
    return path, manifest


def puts(remote: RemoteCache) -> list[str]:
    """The keys of every PutObject the remote's client sends from now on."""
    sent: list[str] = []
    remote.store._client.meta.events.register(
        "provide-client-params.s3.PutObject", lambda params, **_: sent.append(params["Key"])
    )
    return sent


def test_an_entry_that_stands_is_not_sent_again(s3: S3, tmp_path: Path) -> None:
    remote = remote_for(s3)
    wheel, manifest = wheel_file(tmp_path / "w", b"compiled" * 1000)
    assert remote.push_built(KEY, wheel, manifest) is True
    sent = puts(remote)
    assert remote.push_built(KEY, wheel, manifest) is False
    assert remote.store.create(remote.file_name("0" * 64, "x.whl"), b"x") is True
    assert remote.store.create(remote.file_name("0" * 64, "x.whl"), b"x") is False
    assert sent == [remote.file_name("0" * 64, "x.whl")]


def stale(remote: RemoteCache) -> RemoteCache:
    """A writer whose existence checks all came before another writer's entry landed."""
    remote.store.exists = lambda name: False  # type: ignore[method-assign]
    return remote


def test_a_writer_that_loses_the_manifest_race_removes_its_payload(s3: S3, tmp_path: Path) -> None:
    first, second = remote_for(s3), stale(remote_for(s3))
    wheel, manifest = wheel_file(tmp_path / "a", b"first build" * 100)
    other, other_manifest = wheel_file(tmp_path / "b", b"second build" * 100)
    assert first.push_built(KEY, wheel, manifest) is True
    assert second.push_built(KEY, other, other_manifest) is False
    payloads = [k for k in s3.objects() if k.endswith(".whl")]
    assert payloads == [f"{first.built_dir(KEY)}/{manifest['wheel_sha256']}/{wheel.name}"]


def test_a_loser_whose_payload_the_winner_names_leaves_it(s3: S3, tmp_path: Path) -> None:
    """The winner's manifest landed while its own payload write lost to this writer's identical
    bytes: the payload is the winner's now."""
    first, second = remote_for(s3), stale(remote_for(s3))
    wheel, manifest = wheel_file(tmp_path / "a", b"reproducible" * 100)
    assert first.push_built(KEY, wheel, manifest) is True
    payload = f"{first.built_dir(KEY)}/{manifest['wheel_sha256']}/{wheel.name}"
    s3.client.delete_object(Bucket=s3.bucket, Key=payload)
    assert second.push_built(KEY, wheel, manifest) is False
    assert s3.read(payload) == wheel.read_bytes()
    (tmp_path / "check").mkdir()
    assert isinstance(first.fetch_built(KEY, tmp_path / "check"), tuple)


def test_a_tampered_payload_is_named_with_what_it_hashes_to(s3: S3, tmp_path: Path) -> None:
    remote = remote_for(s3)
    wheel, manifest = wheel_file(tmp_path / "w", b"compiled" * 1000)
    remote.push_built(KEY, wheel, manifest)
    payload = f"{remote.built_dir(KEY)}/{manifest['wheel_sha256']}/{wheel.name}"
    evil = b"compiled" * 999 + b"evil"
    s3.write(payload, evil)
    (tmp_path / "a").mkdir()
    assert remote.fetch_built(KEY, tmp_path / "a") == Corrupt(
        names=(f"{remote.built_dir(KEY)}/manifest.json", payload),
        reason=(
            f"wheel hashes to {hashlib.sha256(evil).hexdigest()} (7996 bytes), "
            f"manifest says {manifest['wheel_sha256']}"
        ),
    )


def test_a_large_wheel_is_streamed_in_chunks(s3: S3, tmp_path: Path) -> None:
    """Wheels reach hundreds of MB: a download holds a chunk in memory, never the file."""
    size = 12 * 1024 * 1024
    content = hashlib.sha256(b"seed").digest() * (size // 32)
    remote = remote_for(s3)
    wheel, manifest = wheel_file(tmp_path / "w", content)
    assert remote.push_built(KEY, wheel, manifest) is True
    (tmp_path / "a").mkdir()
    tracemalloc.start()
    try:
        got = remote.fetch_built(KEY, tmp_path / "a")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(got, tuple)
    assert got[0].read_bytes() == content
    assert peak < size // 3, f"{peak} bytes held at once"
