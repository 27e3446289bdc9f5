"""A built wheel's manifest carries its full cache key (the fields the key hashes), and a
manifest filed under another key is rejected like a wheel that does not match its sha256:
locally on disk, and remotely against moto's S3 server over real HTTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from nativebuild.cache.keys import build_key, manifest_key_problem
from nativebuild.cache.local import LocalCache
from nativebuild.cache.s3 import Corrupt, RemoteCache, open_remote
from nativebuild.errors import CacheError
from tests.fakes import RecordingReporter
from tests.moto_server import S3, moto_endpoint, s3

__all__ = ["moto_endpoint", "s3"]  # fixtures

FIELDS = {
    "kind": "built-wheel",
    "name": "pkg",
    "version": "1.0",
    "sdist_sha256": "5" * 64,
    "abi": "cp39",
    "arch": "x86_64",
    "platform": "linux/amd64",
    "glibc": "2.26",
    "build_image_id": "sha256:" + "1" * 64,
    "recipe": "2",
    "setting:repair": "off",
}
KEY = build_key(FIELDS)
OTHER = {**FIELDS, "version": "2.0"}  # the fields of another entry: another key
WHEEL = "pkg-1.0-cp39-cp39-linux_x86_64.whl"


def wheel(directory: Path, content: bytes = b"compiled" * 500) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / WHEEL
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        (None, None),  # older entries: no key at all
        (KEY, None),  # older remote entries: the key itself
        (FIELDS, None),
        ("cd" * 32, "is for the key"),
        (OTHER, f"hash to {build_key(OTHER)}"),
        ({**FIELDS, "layout": "1"}, "layout"),
        ({**FIELDS, "glibc": 2.26}, "neither"),
        (["not", "fields"], "neither"),
    ],
)
def test_manifest_key_problem(declared: object, problem: str | None) -> None:
    manifest: dict[str, Any] = {"wheel_sha256": "0" * 64}
    if declared is not None:
        manifest["key"] = declared
    found = manifest_key_problem(manifest, KEY)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


# --- the local cache ----------------------------------------------------------------------


@pytest.fixture
def reporter() -> RecordingReporter:
    return RecordingReporter()


@pytest.fixture
def cache(tmp_path: Path, reporter: RecordingReporter) -> LocalCache:
    cache = LocalCache(tmp_path / "cache", reporter=reporter)
    cache.ensure()
    return cache


def manifest_path(cache: LocalCache, key: str) -> Path:
    return cache.root / "v1" / "built" / key[:2] / key / "manifest.json"


def test_local_manifest_keeps_the_key_fields(cache: LocalCache, tmp_path: Path) -> None:
    entry = cache.put_built(KEY, wheel(tmp_path / "w"), {"name": "pkg", "key": FIELDS})
    got = cache.get_built(KEY)
    assert got is not None
    assert got.manifest["key"] == FIELDS
    assert json.loads(manifest_path(cache, KEY).read_bytes())["key"] == FIELDS
    assert got.wheel.sha256 == entry.wheel.sha256


def test_local_entry_filed_under_another_key_is_evicted_with_one_warning(
    cache: LocalCache, reporter: RecordingReporter, tmp_path: Path
) -> None:
    cache.put_built(KEY, wheel(tmp_path / "w"), {"name": "pkg", "key": FIELDS})
    path = manifest_path(cache, KEY)
    document = json.loads(path.read_bytes())
    path.chmod(0o644)
    path.write_text(json.dumps({**document, "key": OTHER}))  # wheel and sha256 still agree
    assert cache.get_built(KEY) is None
    assert not path.parent.exists(), "the entry is evicted"
    assert len(reporter.warnings) == 1
    assert "key fields hash to" in reporter.warnings[0]
    assert "rebuilt" in reporter.warnings[0]
    assert cache.get_built(KEY) is None
    assert len(reporter.warnings) == 1


@pytest.mark.parametrize("declared", [None, KEY], ids=["no-key", "key-itself"])
def test_local_entries_of_older_versions_stay_accepted(
    cache: LocalCache, reporter: RecordingReporter, tmp_path: Path, declared: str | None
) -> None:
    manifest: dict[str, Any] = {"name": "pkg"}
    if declared is not None:
        manifest["key"] = declared
    cache.put_built(KEY, wheel(tmp_path / "w"), manifest)
    assert cache.get_built(KEY) is not None
    assert reporter.warnings == []


def test_local_cache_refuses_to_file_a_manifest_under_another_key(
    cache: LocalCache, tmp_path: Path
) -> None:
    source = wheel(tmp_path / "w")
    with pytest.raises(CacheError, match="key fields hash to"):
        cache.put_built(KEY, source, {"name": "pkg", "key": OTHER}, move=True)
    assert source.exists(), "nothing was taken"
    assert cache.get_built(KEY) is None


# --- the remote cache ---------------------------------------------------------------------


def remote_for(s3: S3) -> RemoteCache:
    return open_remote(s3.url, endpoint_url=s3.endpoint)


def push(remote: RemoteCache, tmp_path: Path, key_field: object) -> tuple[Path, dict[str, Any]]:
    path = wheel(tmp_path / "w")
    data = path.read_bytes()
    manifest: dict[str, Any] = {
        "name": "pkg",
        "wheel_filename": path.name,
        "wheel_sha256": hashlib.sha256(data).hexdigest(),
        "wheel_size": len(data),
        "key": key_field,
    }
    assert remote.push_built(KEY, path, manifest) is True
    return path, manifest


def test_remote_manifest_carries_the_key_fields(s3: S3, tmp_path: Path) -> None:
    remote = remote_for(s3)
    push(remote, tmp_path, FIELDS)
    stored = json.loads(s3.read(f"{remote.built_dir(KEY)}/manifest.json"))
    assert stored["key"] == FIELDS
    (tmp_path / "got").mkdir()
    got = remote.fetch_built(KEY, tmp_path / "got")
    assert isinstance(got, tuple)
    assert got[1]["key"] == FIELDS


def test_remote_entry_filed_under_another_key_is_corrupt(s3: S3, tmp_path: Path) -> None:
    """Manifest and wheel agree (the sha256 matches): only the key fields give it away."""
    remote = remote_for(s3)
    path, manifest = push(remote, tmp_path, FIELDS)
    manifest_name = f"{remote.built_dir(KEY)}/manifest.json"
    payload = f"{remote.built_dir(KEY)}/{manifest['wheel_sha256']}/{path.name}"
    stored = json.loads(s3.read(manifest_name))
    s3.write(manifest_name, json.dumps({**stored, "key": OTHER}).encode())
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    got = remote.fetch_built(KEY, tmp_path / "a")
    assert isinstance(got, Corrupt)
    assert "key fields hash to" in got.reason
    assert got.names == (manifest_name, payload)  # evicted like a wheel that fails its sha256
    assert remote.evict(got) is True
    assert remote.fetch_built(KEY, tmp_path / "b") is None
    push(remote, tmp_path / "again", FIELDS)  # a good entry replaces it
    assert isinstance(remote.fetch_built(KEY, tmp_path / "c"), tuple)


def test_remote_never_publishes_fields_of_another_key(s3: S3, tmp_path: Path) -> None:
    remote = remote_for(s3)
    push(remote, tmp_path, OTHER)
    stored = json.loads(s3.read(f"{remote.built_dir(KEY)}/manifest.json"))
    assert stored["key"] == KEY
    (tmp_path / "got").mkdir()
    assert isinstance(remote.fetch_built(KEY, tmp_path / "got"), tuple)
