"""The remote cache's layout, write-once puts and integrity checks, against moto's server over
real HTTP with real boto3 (no in-process mock)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest
from botocore.stub import Stubber

from nativebuild.cache.s3 import (
    Corrupt,
    RemoteCache,
    RemoteLocation,
    S3Store,
    canonical_sha256,
    make_client,
    open_remote,
)
from nativebuild.errors import CacheError, ConfigError
from nativebuild.redact import has_credentials
from tests.moto_server import S3, dead_endpoint, denied_endpoint, moto_endpoint, s3
from tests.s3_stubs import stubbed_store

__all__ = ["dead_endpoint", "denied_endpoint", "moto_endpoint", "s3"]  # fixtures
KEY = "ab" * 32


@pytest.mark.parametrize(
    ("url", "bucket", "prefix", "canonical"),
    [
        ("s3://my-bucket", "my-bucket", "", "s3://my-bucket"),
        ("s3://my-bucket/", "my-bucket", "", "s3://my-bucket"),
        ("s3://my-bucket/team/cache/", "my-bucket", "team/cache", "s3://my-bucket/team/cache"),
        (" s3://b.example.com/x ", "b.example.com", "x", "s3://b.example.com/x"),
        ("s3://my-bucket/X/team/X/", "my-bucket", "X/team/X", "s3://my-bucket/X/team/X"),
    ],
)
def test_location_parse(url: str, bucket: str, prefix: str, canonical: str) -> None:
    location = RemoteLocation.parse(url)
    assert (location.bucket, location.prefix, location.url) == (bucket, prefix, canonical)


@pytest.mark.parametrize(
    "url",
    ["https://bucket/x", "s3://", "s3://UPPER/x", "s3://b/x?versionId=1", "bucket/x", "s3://a"],
)
def test_location_parse_rejects(url: str) -> None:
    with pytest.raises(ConfigError, match="s3://bucket") as caught:
        RemoteLocation.parse(url)
    assert "cache-endpoint-url" in str(caught.value.hint)  # for other S3-compatible stores


def test_layout_mirrors_the_local_cache() -> None:
    remote = RemoteCache(S3Store(RemoteLocation.parse("s3://bkt/p/q"), client=None))
    sha = "cd" * 32
    assert remote.file_name(sha, "six.whl") == f"p/q/v1/files/cd/{sha}/six.whl"
    assert remote.built_dir(KEY) == f"p/q/v1/built/ab/{KEY}"
    assert remote.json_name("resolution", KEY) == f"p/q/v1/json/resolution/ab/{KEY}.json"
    bare = RemoteCache(S3Store(RemoteLocation.parse("s3://bkt"), client=None))
    assert bare.built_dir(KEY) == f"v1/built/ab/{KEY}"


def remote_for(s3: S3) -> RemoteCache:
    return open_remote(s3.url, endpoint_url=s3.endpoint)


def wheel_file(
    directory: Path, content: bytes, name: str = "pkg-1.0-cp39-cp39-linux_x86_64.whl"
) -> tuple[Path, dict[str, object]]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(content)
    manifest = {
        "name": "pkg",
        "wheel_filename": name,
        "wheel_sha256": hashlib.sha256(content).hexdigest(),
        "wheel_size": len(content),
    }
    return path, manifest


def test_create_is_write_once(s3: S3) -> None:
    store = remote_for(s3).store
    assert store.create("x/object", b"first") is True
    assert store.create("x/object", b"second") is False
    assert s3.read("x/object") == b"first"


def test_conditional_put_refuses_even_when_the_head_check_is_stale(s3: S3) -> None:
    """Two writers both pass the HEAD check; If-None-Match lets exactly one write land."""
    store = remote_for(s3).store
    store.exists = lambda name: False  # type: ignore[method-assign]  # both think it is free
    assert store.create("race/object", b"one") is True
    assert store.create("race/object", b"two") is False
    assert s3.read("race/object") == b"one"


def test_missing_objects_are_misses(s3: S3, tmp_path: Path) -> None:
    remote = remote_for(s3)
    assert remote.fetch_file("00" * 32, "six.whl", tmp_path) is None
    assert remote.fetch_built(KEY, tmp_path) is None
    assert remote.fetch_json("resolution", KEY) is None


def test_file_round_trip_and_corruption(s3: S3, tmp_path: Path) -> None:
    remote = remote_for(s3)
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    source = tmp_path / "six-1.16.0-py3-none-any.whl"
    source.write_bytes(b"wheel bytes" * 100)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert remote.push_file(source, sha256=sha, filename=source.name) is True
    assert remote.push_file(source, sha256=sha, filename=source.name) is False
    got = remote.fetch_file(sha, source.name, tmp_path / "a")
    assert isinstance(got, Path)
    assert got.read_bytes() == source.read_bytes()

    s3.write(remote.file_name(sha, source.name), b"wheel bytes" * 99)  # truncated
    bad = remote.fetch_file(sha, source.name, tmp_path / "b")
    assert isinstance(bad, Corrupt)
    assert bad.names == (remote.file_name(sha, source.name),)
    assert bad.reason == f"content hashes to {hashlib.sha256(b'wheel bytes' * 99).hexdigest()}"
    assert remote.evict(bad) is True
    assert remote.fetch_file(sha, source.name, tmp_path / "c") is None


@pytest.fixture
def dirs(tmp_path: Path) -> Path:
    for name in ("a", "b", "c", "d"):
        (tmp_path / name).mkdir()
    return tmp_path


def test_built_round_trip_puts_the_manifest_last_and_names_the_payload_by_hash(
    s3: S3, dirs: Path
) -> None:
    remote = remote_for(s3)
    wheel, manifest = wheel_file(dirs / "w", b"compiled" * 1000)
    assert remote.push_built(KEY, wheel, manifest) is True
    sha = manifest["wheel_sha256"]
    assert f"{remote.built_dir(KEY)}/{sha}/{wheel.name}" in s3.objects()
    got = remote.fetch_built(KEY, dirs / "a")
    assert isinstance(got, tuple)
    path, document = got
    assert path.read_bytes() == wheel.read_bytes()
    assert document["key"] == KEY
    assert document["wheel_sha256"] == sha
    assert document["format"] == 1  # for readers of later versions


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("payload", "wheel hashes to"),
        ("manifest-key", "does not describe this key"),
        ("manifest-json", "not a JSON object"),
        ("payload-missing", "is missing"),
        ("manifest-name", "does not describe this key"),
        ("manifest-escape", "does not describe this key"),
        ("manifest-size", "does not describe this key"),
        ("manifest-sha", "does not describe this key"),
        ("manifest-sdist", "does not describe this key"),
        ("manifest-list", "not a JSON object"),
    ],
)
def test_built_entry_that_does_not_match_its_manifest_is_corrupt(
    s3: S3, dirs: Path, tamper: str, reason: str
) -> None:
    remote = remote_for(s3)
    wheel, manifest = wheel_file(dirs / "w", b"compiled" * 1000)
    remote.push_built(KEY, wheel, manifest)
    payload = f"{remote.built_dir(KEY)}/{manifest['wheel_sha256']}/{wheel.name}"
    manifest_name = f"{remote.built_dir(KEY)}/manifest.json"
    if tamper == "payload":
        s3.write(payload, b"compiled" * 999 + b"evil----")
    elif tamper == "manifest-key":
        document = json.loads(s3.read(manifest_name))
        s3.write(manifest_name, json.dumps({**document, "key": "cd" * 32}).encode())
    elif tamper == "manifest-json":
        s3.write(manifest_name, s3.read(manifest_name)[:20])
    elif tamper == "manifest-name":  # a number where the wheel's file name belongs
        document = json.loads(s3.read(manifest_name))
        s3.write(manifest_name, json.dumps({**document, "wheel_filename": 5}).encode())
    elif tamper == "manifest-escape":  # a name that would write outside the destination
        document = json.loads(s3.read(manifest_name))
        s3.write(manifest_name, json.dumps({**document, "wheel_filename": "../x.whl"}).encode())
    elif tamper.startswith("manifest-") and tamper != "manifest-list":
        field, value = {
            "manifest-size": ("wheel_size", "8000"),  # a string, though the right number
            "manifest-sha": ("wheel_sha256", "not-a-sha256"),
            "manifest-sdist": ("wheel_filename", "pkg-1.0.tar.gz"),
        }[tamper]
        document = json.loads(s3.read(manifest_name))
        s3.write(manifest_name, json.dumps({**document, field: value}).encode())
    elif tamper == "manifest-list":
        s3.write(manifest_name, b"[1, 2]")
    else:
        s3.client.delete_object(Bucket=s3.bucket, Key=payload)
    got = remote.fetch_built(KEY, dirs / "a")
    assert isinstance(got, Corrupt)
    assert reason in got.reason
    assert got.names[0] == manifest_name  # readers stop seeing it first
    remote.evict(got)
    assert remote.fetch_built(KEY, dirs / "b") is None
    assert remote.push_built(KEY, wheel, manifest) is True  # a good entry can replace it
    assert isinstance(remote.fetch_built(KEY, dirs / "c"), tuple)


def test_concurrent_writers_of_one_key_leave_one_complete_entry(s3: S3, tmp_path: Path) -> None:
    remote = remote_for(s3)
    writers = 6
    barrier = threading.Barrier(writers)
    results: list[bool] = []

    def write(n: int) -> None:
        # Different bytes per writer (a build that is not reproducible) under one key.
        wheel, manifest = wheel_file(tmp_path / f"w{n}", f"writer {n};".encode() * 5000)
        barrier.wait()
        results.append(remote.push_built(KEY, wheel, manifest))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * (writers - 1) + [True]
    got = remote.fetch_built(KEY, tmp_path)
    assert isinstance(got, tuple)
    path, manifest = got
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["wheel_sha256"]
    payloads = [k for k in s3.objects() if k.endswith(".whl")]
    assert payloads == [f"{remote.built_dir(KEY)}/{manifest['wheel_sha256']}/{path.name}"], (
        "the losers' payloads are removed"
    )


def test_json_documents_carry_a_checksum(s3: S3) -> None:
    remote = remote_for(s3)
    document = {"pins": [{"name": "six", "version": "1.16.0"}], "resolver": 1}
    assert remote.push_json("resolution", KEY, document) is True
    assert remote.fetch_json("resolution", KEY) == document
    name = remote.json_name("resolution", KEY)
    envelope = json.loads(s3.read(name))
    envelope["document"]["pins"][0]["version"] = "1.15.0"
    s3.write(name, json.dumps(envelope).encode())
    got = remote.fetch_json("resolution", KEY)
    assert isinstance(got, Corrupt)
    assert got.names == (name,)


def test_entries_lists_complete_entries_only(s3: S3, dirs: Path) -> None:
    remote = remote_for(s3)
    wheel, manifest = wheel_file(dirs / "w", b"compiled")
    remote.push_built(KEY, wheel, manifest)
    remote.push_json("resolution", KEY, {"pins": []})
    sha = hashlib.sha256(b"compiled").hexdigest()
    remote.push_file(wheel, sha256=sha, filename=wheel.name)
    # A payload whose manifest never landed (a writer killed in between) is no entry.
    s3.write(f"{remote.built_dir('cd' * 32)}/{sha}/{wheel.name}", b"compiled")
    entries = {(e.kind, e.key, e.filename) for e in remote.entries()}
    assert entries == {
        ("built", KEY, "manifest.json"),
        ("json", f"resolution/{KEY}", f"{KEY}.json"),
        ("file", sha, wheel.name),
    }


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_built_entry_counts_its_manifest_and_payload_sizes(s3: S3, dirs: Path) -> None:
    remote = remote_for(s3)
    other = "ef" * 32
    for key, content in ((KEY, b"compiled" * 100), (other, b"another wheel" * 7)):
        wheel, manifest = wheel_file(dirs / key[:2], content)
        remote.push_built(key, wheel, manifest)
    s3.write(f"{remote.built_dir('cd' * 32)}/{'0' * 64}/x.whl", b"orphan")  # no manifest
    # Strays under the prefix that no writer of entries leaves are neither entries nor sizes.
    s3.write(f"{remote.built_dir(KEY)}/notes.txt", b"not part of the entry")
    s3.write(remote.file_name("0" * 64, "dir") + "/x.whl", b"one level too deep")
    root = remote.built_dir(KEY).removesuffix(f"built/{KEY[:2]}/{KEY}")
    s3.write(f"{root}README", b"a note left by hand")
    s3.write(f"{root}json/notes", b"another")
    # Two writers of one key whose wheels differ leave two payloads: both take space.
    s3.write(f"{remote.built_dir(KEY)}/{'1' * 64}/pkg-1.0-py3-none-any.whl", b"x" * 50)
    no_payload = "12" * 32  # its payload deleted by hand: the manifest alone
    s3.write(f"{remote.built_dir(no_payload)}/manifest.json", b"{}")
    sha = hashlib.sha256(b"a file").hexdigest()
    remote.push_file(write_file(dirs / "f.tar.gz", b"a file"), sha256=sha, filename="f.tar.gz")
    remote.push_json("resolution", KEY, {"pins": []})
    document = len(s3.read(remote.json_name("resolution", KEY)))
    sizes = {e.key: e.size for e in remote.entries()}
    for key, payload in ((KEY, 800 + 50), (other, 91)):
        manifest_size = len(s3.read(f"{remote.built_dir(key)}/manifest.json"))
        assert sizes[key] == manifest_size + payload
    assert sizes[no_payload] == 2
    assert sizes[sha] == len(b"a file")
    assert sizes[f"resolution/{KEY}"] == document
    assert set(sizes) == {KEY, other, no_payload, sha, f"resolution/{KEY}"}


def test_unreachable_endpoint_fails_fast_with_a_cache_error(
    s3: S3, dead_endpoint: str, tmp_path: Path
) -> None:
    remote = open_remote(s3.url, endpoint_url=dead_endpoint)
    started = time.monotonic()
    with pytest.raises(CacheError, match="Cannot read s3://") as info:
        remote.fetch_built(KEY, tmp_path)
    assert time.monotonic() - started < 15, "short timeouts and few retries"
    assert "testing" not in str(info.value)  # the secret key never appears


def test_refused_credentials_are_a_cache_error(
    s3: S3, denied_endpoint: str, tmp_path: Path
) -> None:
    remote = open_remote(s3.url, endpoint_url=denied_endpoint)
    with pytest.raises(CacheError, match=r"InvalidAccessKeyId|access denied"):
        remote.fetch_json("resolution", KEY)
    with pytest.raises(CacheError, match=r"Cannot (read|write)"):
        remote.push_json("resolution", KEY, {"pins": []})


def test_endpoint_comes_from_the_environment_when_not_configured(s3: S3) -> None:
    """AWS_ENDPOINT_URL_S3 (set by the fixture) is honoured by boto3 itself."""
    client = make_client(None)
    assert client.meta.endpoint_url == s3.endpoint
    remote = RemoteCache(S3Store(RemoteLocation.parse(s3.url), client=client))
    assert remote.push_json("resolution", KEY, {"pins": []}) is True


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"pins": [{"url": "https://files.example/six.whl"}]}, False),
        ({"pins": [{"url": "https://user:token@private.example/x.whl"}]}, True),
        ({"pins": [{"url": "https://token@private.example/x.whl"}]}, True),
        ({"note": "mail me at a@b.c"}, False),
    ],
)
def test_documents_with_credentials_are_recognised(document: object, expected: bool) -> None:
    assert has_credentials(document) is expected


def deny(stub: Stubber, method: str) -> None:
    stub.add_client_error(method, service_error_code="AccessDenied", http_status_code=403)


def test_a_403_on_a_missing_key_without_list_permission_is_a_miss(tmp_path: Path) -> None:
    store, stub = stubbed_store()
    deny(stub, "get_object")
    deny(stub, "list_objects_v2")
    deny(stub, "head_object")  # the second 403 is not asked about again
    deny(stub, "get_object")
    with stub:
        assert store.read("p/v1/json/resolution/ab/x.json") is None
        assert store.listing_denied is True
        assert store.exists("p/v1/built/ab/x/manifest.json") is False
        assert store.download("p/v1/files/ab/x/six.whl", tmp_path / "six.whl") is None
    stub.assert_no_pending_responses()


def test_a_403_on_a_key_the_listing_shows_is_a_denied_read() -> None:
    store, stub = stubbed_store()
    name = "p/v1/json/resolution/ab/x.json"
    deny(stub, "get_object")
    stub.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": name, "Size": 3}], "KeyCount": 1},
        {"Bucket": "bkt", "Prefix": name, "MaxKeys": 1},
    )
    with stub, pytest.raises(CacheError, match=r"Cannot read s3://bkt/p/v1/json.*access denied"):
        store.read(name)
    assert store.listing_denied is False


def test_a_403_with_list_permission_and_no_such_key_is_a_miss() -> None:
    store, stub = stubbed_store()
    deny(stub, "head_object")
    stub.add_response("list_objects_v2", {"KeyCount": 0})
    with stub:
        assert store.exists("p/v1/files/ab/x/six.whl") is False


def test_a_writer_without_list_permission_still_writes_once() -> None:
    """HEAD answers 403 for the missing key; the conditional PUT then decides."""
    store, stub = stubbed_store()
    deny(stub, "head_object")
    deny(stub, "list_objects_v2")
    stub.add_response("put_object", {})
    deny(stub, "head_object")
    stub.add_client_error(
        "put_object", service_error_code="PreconditionFailed", http_status_code=412
    )
    with stub:
        assert store.create("p/v1/json/resolution/ab/x.json", b"{}") is True
        assert store.create("p/v1/json/resolution/ab/x.json", b"{}") is False


def test_a_reader_without_write_permission_is_told_it_cannot_write() -> None:
    store, stub = stubbed_store()
    deny(stub, "head_object")
    deny(stub, "list_objects_v2")
    deny(stub, "put_object")
    with stub, pytest.raises(CacheError, match=r"Cannot write .*access denied"):
        store.create("p/v1/json/resolution/ab/x.json", b"{}")


# ----- listings and the messages of failures ----------------------------------------------------

HINT_NAMES = "AWS_ENDPOINT_URL_S3"  # the hint says where the endpoint comes from


def test_a_listing_asks_for_its_prefix_only_and_an_empty_one_is_empty() -> None:
    store, stub = stubbed_store()
    stub.add_response(
        "list_objects_v2",
        {"KeyCount": 0, "IsTruncated": False},  # S3 leaves out Contents when nothing matches
        {"Bucket": "bkt", "Prefix": "p/v1/files/"},
    )
    with stub:
        assert list(store.list("p/v1/files/")) == []
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "why"),
    [("SlowDown", "SlowDown"), ("", "error"), ("AccessDenied", "access denied")],
    ids=["named", "unnamed", "denied"],
)
def test_a_failed_listing_names_the_prefix_and_the_cause(code: str, why: str) -> None:
    store, stub = stubbed_store()
    stub.add_client_error("list_objects_v2", service_error_code=code, http_status_code=503)
    with stub, pytest.raises(CacheError) as caught:
        list(store.list("p/v1/built/"))
    assert str(caught.value) == f"Cannot list s3://bkt/p/v1/built/: {why}."
    assert HINT_NAMES in str(caught.value.hint)


def test_an_unreachable_endpoint_is_named_in_the_error(
    s3: S3, dead_endpoint: str, tmp_path: Path
) -> None:
    remote = open_remote(s3.url, endpoint_url=dead_endpoint)
    with pytest.raises(CacheError) as caught:
        remote.fetch_json("resolution", KEY)
    assert f'Could not connect to the endpoint URL: "{dead_endpoint}/' in str(caught.value)
    assert HINT_NAMES in str(caught.value.hint)


def test_missing_credentials_are_named_in_the_error(
    dead_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    remote = open_remote("s3://bkt/p", endpoint_url=dead_endpoint)
    with pytest.raises(CacheError) as caught:
        remote.fetch_json("resolution", KEY)
    assert str(caught.value).startswith("Cannot read s3://bkt/p/v1/json/resolution/")
    assert str(caught.value).endswith(": no AWS credentials found.")
    assert HINT_NAMES in str(caught.value.hint)


def test_a_delete_is_refused_quietly_only_when_access_is_denied() -> None:
    store, stub = stubbed_store()
    name = "p/v1/files/ab/x/six.whl"
    stub.add_response("delete_object", {}, {"Bucket": "bkt", "Key": name})
    deny(stub, "delete_object")
    stub.add_client_error("delete_object", service_error_code="InternalError", http_status_code=500)
    with stub:
        assert store.delete(name) is True
        assert store.delete(name) is False  # read-only credentials: the caller says so once
        with pytest.raises(CacheError) as caught:
            store.delete(name)
    assert str(caught.value) == f"Cannot delete s3://bkt/{name}: InternalError."


def test_document_checksums_are_over_compact_sorted_json() -> None:
    """Machines sharing a bucket check each other's documents: the canonical form is a contract."""
    document = {"pins": ["a==1", "b==2"], "python": "3.13"}
    compact = b'{"pins":["a==1","b==2"],"python":"3.13"}'
    assert canonical_sha256(document) == hashlib.sha256(compact).hexdigest()


def test_a_built_wheel_may_have_any_letter_in_its_name(s3: S3, dirs: Path) -> None:
    remote = remote_for(s3)
    wheel, manifest = wheel_file(dirs / "w", b"compiled", name="PyXB-1.2.6-py3-none-any.whl")
    remote.push_built(KEY, wheel, manifest)
    got = remote.fetch_built(KEY, dirs / "a")
    assert isinstance(got, tuple)
    assert got[0] == dirs / "a" / "PyXB-1.2.6-py3-none-any.whl"
