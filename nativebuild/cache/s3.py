"""The remote (S3) half of the wheel cache; the only module that imports boto3 and botocore.

The layout under ``s3://bucket/prefix/`` mirrors the local cache::

    v1/files/<sha[:2]>/<sha>/<filename>                        a downloaded file, by content
    v1/built/<key[:2]>/<key>/<wheel sha256>/<wheel filename>   a compiled wheel, by content
    v1/built/<key[:2]>/<key>/manifest.json                     written last: the entry exists
    v1/json/<kind>/<key[:2]>/<key>.json                        {"document": ..., "sha256": ...}

A built wheel's manifest names its full cache key (the fields ``cache.build_key`` hashes; older
versions wrote the key itself): a reader re-hashes the fields and rejects a manifest filed under
another key, as it rejects a wheel that does not hash to its manifest's sha256.

Entries are write-once (``If-None-Match: *``, after a HEAD so known objects are never sent
again) and payloads are named by their own sha256, so runners writing one key at once cannot
mix their bytes: whichever manifest lands names a payload that was complete before it. Every
read is re-hashed against its address or manifest; a mismatch comes back as :class:`Corrupt`.

Failures to reach or use the store raise :class:`CacheError`: the caller decides whether the
build goes on without it. Timeouts are short and retries few, so a dead endpoint costs seconds.

A missing key is a miss, never a failure. S3 answers a GET or HEAD of a missing key with 404
only when the caller may list the bucket (``s3:ListBucket``), and with 403 otherwise, so a 403 on
one key is asked about once more by listing that key: when the listing is refused too, the 403
counts as a miss (nothing can tell it from a denied read); when the listing shows the key, the
read really was denied.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
)

from nativebuild.cache.keys import manifest_key_problem
from nativebuild.errors import CacheError, ConfigError
from nativebuild.redact import redact

LAYOUT = "v1"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
_CHUNK = 1024 * 1024
_MAX_DOCUMENT = 16 * 1024 * 1024  # manifests and resolutions are small; refuse anything huge
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_EXISTS = frozenset({"412", "409", "PreconditionFailed", "ConditionalRequestConflict"})
_DENIED = frozenset({"403", "AccessDenied", "AllAccessDisabled"})
_HINT = (
    "Check the bucket name, the endpoint (AWS_ENDPOINT_URL_S3 or cache-endpoint-url) and the "
    "AWS credentials; the build goes on with the local cache meanwhile."
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RemoteLocation:
    bucket: str
    prefix: str  # without leading or trailing slashes; "" for the bucket's root

    @classmethod
    def parse(cls, url: str) -> RemoteLocation:
        parts = urlsplit(url.strip())
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if parts.scheme != "s3" or not _BUCKET_RE.fullmatch(bucket) or parts.query:
            msg = f"Invalid remote cache {url!r}: expected s3://bucket or s3://bucket/prefix."
            raise ConfigError(msg, hint="Other S3-compatible stores: set cache-endpoint-url.")
        return cls(bucket=bucket, prefix=prefix)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def name(self, *parts: str) -> str:
        return "/".join([self.prefix, LAYOUT, *parts] if self.prefix else [LAYOUT, *parts])


@dataclasses.dataclass(frozen=True, kw_only=True)
class RemoteObject:
    name: str
    size: int
    modified: datetime.datetime


def make_client(endpoint_url: str | None) -> Any:
    """An S3 client on the standard credential chain. Without ``endpoint_url`` boto3 itself
    honours AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL."""
    config = Config(
        connect_timeout=3,
        read_timeout=30,
        retries={"total_max_attempts": 2, "mode": "standard"},
        max_pool_connections=16,
        # Checksums are ours (sha256 on every read); the SDK's newer defaults trip some
        # S3-compatible stores.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class S3Store:
    """Objects in and out of one bucket and prefix, with errors mapped to CacheError."""

    def __init__(self, location: RemoteLocation, *, client: Any) -> None:
        self.location = location
        self._client = client
        # Set once a listing is refused: from then on a 403 on one key counts as a miss.
        self.listing_denied = False

    def _failure(self, doing: str, name: str, err: Exception) -> CacheError:
        if isinstance(err, ClientError):
            code = _code(err) or "error"
            why = "access denied" if code in _DENIED else f"{code}"
        elif isinstance(err, NoCredentialsError):
            why = "no AWS credentials found"
        else:
            why = redact(str(err))  # endpoint URLs can carry user:password
        msg = f"Cannot {doing} s3://{self.location.bucket}/{name}: {why}."
        return CacheError(msg, hint=_HINT)

    @contextlib.contextmanager
    def _errors(self, doing: str, name: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as err:
            raise self._failure(doing, name, err) from err

    def download(self, name: str, dest: Path) -> tuple[str, int] | None:
        """Stream an object into ``dest``; its sha256 and size, or None when it is absent."""
        digest, size = hashlib.sha256(), 0
        with self._errors("read", name):
            try:
                response = self._client.get_object(Bucket=self.location.bucket, Key=name)
            except ClientError as err:
                if self._absent(name, err):
                    return None
                raise
            with dest.open("xb") as out:
                for chunk in response["Body"].iter_chunks(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        return digest.hexdigest(), size

    def read(self, name: str) -> bytes | None:
        with self._errors("read", name):
            try:
                response = self._client.get_object(Bucket=self.location.bucket, Key=name)
            except ClientError as err:
                if self._absent(name, err):
                    return None
                raise
            if int(response.get("ContentLength", 0)) > _MAX_DOCUMENT:
                return b""  # not a document of ours: the caller sees it as corrupt
            return bytes(response["Body"].read())

    def exists(self, name: str) -> bool:
        with self._errors("read", name):
            try:
                self._client.head_object(Bucket=self.location.bucket, Key=name)
            except ClientError as err:
                if self._absent(name, err):
                    return False
                raise
        return True

    def _absent(self, name: str, err: ClientError) -> bool:
        """Whether a failed GET or HEAD of ``name`` means that the key is missing."""
        code = _code(err)
        if code in _MISSING:
            return True
        if code not in _DENIED:
            return False
        if self.listing_denied:
            return True
        try:
            listing = self._client.list_objects_v2(
                Bucket=self.location.bucket, Prefix=name, MaxKeys=1
            )
        except ClientError as list_err:
            if _code(list_err) not in _DENIED:
                raise
            self.listing_denied = True
            return True
        return all(item.get("Key") != name for item in listing.get("Contents", []))

    def create(self, name: str, body: bytes | Path) -> bool:
        """Write an object that must not exist yet; False when it does (someone was first)."""
        if self.exists(name):
            return False
        with self._errors("write", name):
            try:
                self._put(name, body, conditional=True)
            except ClientError as err:
                code = _code(err)
                if code in _EXISTS:
                    return False
                if code != "NotImplemented":
                    raise
                # A store without conditional writes: the HEAD above is the check; payloads
                # are content-addressed and manifests complete, so a lost race is harmless.
                self._put(name, body, conditional=False)
        return True

    def _put(self, name: str, body: bytes | Path, *, conditional: bool) -> None:
        extra = {"IfNoneMatch": "*"} if conditional else {}
        if isinstance(body, bytes):
            self._client.put_object(Bucket=self.location.bucket, Key=name, Body=body, **extra)
            return
        with body.open("rb") as stream:
            self._client.put_object(Bucket=self.location.bucket, Key=name, Body=stream, **extra)

    def delete(self, name: str) -> bool:
        """Remove an object; False when this identity may not (read-only credentials)."""
        with self._errors("delete", name):
            try:
                self._client.delete_object(Bucket=self.location.bucket, Key=name)
            except ClientError as err:
                if _code(err) in _DENIED:
                    return False
                raise
        return True

    def list(self, under: str) -> Iterator[RemoteObject]:
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors("list", under):
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=under):
                for item in page.get("Contents", []):
                    yield RemoteObject(
                        name=str(item["Key"]), size=int(item["Size"]), modified=item["LastModified"]
                    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Corrupt:
    """A remote entry that failed verification: what to evict, and why."""

    names: tuple[str, ...]  # manifest first, so readers stop finding the entry at once
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class RemoteEntry:
    kind: str  # file | built | json
    key: str  # sha256 for files, cache key for built wheels, "<kind>/<key>" for documents
    filename: str
    size: int
    modified: datetime.datetime


def canonical_sha256(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _load_object(data: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(data)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _plain_name(name: object) -> str | None:
    if not isinstance(name, str) or not name or name in {".", ".."}:
        return None
    return None if any(c in name for c in "/\\\0") else name


class RemoteCache:
    """The cache layout and its integrity checks over an :class:`S3Store`."""

    def __init__(self, store: S3Store) -> None:
        self.store = store
        self.url = store.location.url

    def _name(self, *parts: str) -> str:
        return self.store.location.name(*parts)

    def file_name(self, sha256: str, filename: str) -> str:
        return self._name("files", sha256[:2], sha256, filename)

    def built_dir(self, key: str) -> str:
        return self._name("built", key[:2], key)

    def json_name(self, kind: str, key: str) -> str:
        return self._name("json", kind, key[:2], f"{key}.json")

    def fetch_file(self, sha256: str, filename: str, dest_dir: Path) -> Path | Corrupt | None:
        name = self.file_name(sha256, filename)
        dest = dest_dir / filename
        got = self.store.download(name, dest)
        if got is None:
            return None
        if got[0] != sha256:
            return Corrupt(names=(name,), reason=f"content hashes to {got[0]}")
        return dest

    def fetch_built(self, key: str, dest_dir: Path) -> tuple[Path, dict[str, Any]] | Corrupt | None:
        manifest_name = f"{self.built_dir(key)}/{MANIFEST}"
        data = self.store.read(manifest_name)
        if data is None:
            return None
        manifest = _load_object(data)
        if manifest is None:
            return Corrupt(names=(manifest_name,), reason="manifest is not a JSON object")
        filename, sha256, size = (
            manifest.get(f"wheel_{f}") for f in ("filename", "sha256", "size")
        )
        filename = _plain_name(filename)
        if (
            manifest.get("key") is None
            or filename is None
            or not filename.endswith(".whl")
            or not (isinstance(sha256, str) and _SHA256_RE.fullmatch(sha256))
            or not isinstance(size, int)
        ):
            return Corrupt(names=(manifest_name,), reason="manifest does not describe this key")
        payload = f"{self.built_dir(key)}/{sha256}/{filename}"
        if (problem := manifest_key_problem(manifest, key)) is not None:
            reason = f"manifest does not describe this key: {problem}"
            return Corrupt(names=(manifest_name, payload), reason=reason)
        got = self.store.download(payload, dest_dir / filename)
        if got is None:
            return Corrupt(names=(manifest_name,), reason="the wheel it names is missing")
        if got != (sha256, size):
            reason = f"wheel hashes to {got[0]} ({got[1]} bytes), manifest says {sha256}"
            return Corrupt(names=(manifest_name, payload), reason=reason)
        return dest_dir / filename, manifest

    def fetch_json(self, kind: str, key: str) -> dict[str, Any] | Corrupt | None:
        name = self.json_name(kind, key)
        data = self.store.read(name)
        if data is None:
            return None
        envelope = _load_object(data)
        document = envelope.get("document") if envelope is not None else None
        if (
            envelope is None
            or (envelope.get("kind"), envelope.get("key")) != (kind, key)
            or not isinstance(document, dict)
            or envelope.get("sha256") != canonical_sha256(document)
        ):
            return Corrupt(names=(name,), reason="document does not match its checksum")
        return document

    def push_file(self, path: Path, *, sha256: str, filename: str) -> bool:
        return self.store.create(self.file_name(sha256, filename), path)

    def push_built(self, key: str, wheel: Path, manifest: Mapping[str, Any]) -> bool:
        """Payload first, manifest last; False when another writer's entry already stands."""
        sha256 = str(manifest["wheel_sha256"])
        payload = f"{self.built_dir(key)}/{sha256}/{wheel.name}"
        # The full key (its fields) when the manifest has it right, else the key itself.
        fields = manifest.get("key")
        full = isinstance(fields, dict) and manifest_key_problem(manifest, key) is None
        document = {**manifest, "key": fields if full else key, "format": MANIFEST_FORMAT}
        body = (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()
        manifest_name = f"{self.built_dir(key)}/{MANIFEST}"
        if self.store.exists(manifest_name):
            return False
        wrote_payload = self.store.create(payload, wheel)
        if self.store.create(manifest_name, body):
            return True
        winner = _load_object(self.store.read(manifest_name) or b"")
        if wrote_payload and (winner or {}).get("wheel_sha256") != sha256:
            self.store.delete(payload)  # an orphan: no manifest will ever name it
        return False

    def push_json(self, kind: str, key: str, document: Mapping[str, Any]) -> bool:
        envelope = {
            "kind": kind,
            "key": key,
            "sha256": canonical_sha256(document),
            "document": document,
        }
        body = (json.dumps(envelope, sort_keys=True) + "\n").encode()
        return self.store.create(self.json_name(kind, key), body)

    def evict(self, corrupt: Corrupt) -> bool:
        """Delete a bad entry's objects; False when this identity may not delete them."""
        deleted = [self.store.delete(name) for name in corrupt.names]  # try every one
        return all(deleted)

    def entries(self) -> Iterator[RemoteEntry]:
        """Every complete entry: files, built wheels (by manifest) and documents."""
        root = self._name("")
        payload_sizes: dict[str, int] = {}
        manifests: dict[str, RemoteObject] = {}
        for obj in self.store.list(root):
            parts = obj.name[len(root) :].split("/")
            if parts[0] == "files" and len(parts) == 4:
                yield RemoteEntry(
                    kind="file", key=parts[2], filename=parts[3], size=obj.size,
                    modified=obj.modified,
                )  # fmt: skip
            elif parts[0] == "built" and len(parts) == 4 and parts[3] == MANIFEST:
                manifests[parts[2]] = obj
            elif parts[0] == "built" and len(parts) == 5:
                payload_sizes[parts[2]] = payload_sizes.get(parts[2], 0) + obj.size
            elif parts[0] == "json" and len(parts) == 4 and parts[3].endswith(".json"):
                key = f"{parts[1]}/{parts[3].removesuffix('.json')}"
                yield RemoteEntry(
                    kind="json", key=key, filename=parts[3], size=obj.size, modified=obj.modified
                )
        for key, obj in sorted(manifests.items()):
            yield RemoteEntry(
                kind="built", key=key, filename=MANIFEST,
                size=obj.size + payload_sizes.get(key, 0), modified=obj.modified,
            )  # fmt: skip


def open_remote(url: str, *, endpoint_url: str | None) -> RemoteCache:
    location = RemoteLocation.parse(url)
    try:
        client = make_client(endpoint_url)
    except (BotoCoreError, ValueError) as err:
        msg = f"Cannot set up the S3 client for {location.url}: {redact(str(err))}"
        raise ConfigError(msg, hint="Check cache-endpoint-url and the AWS configuration.") from err
    return RemoteCache(S3Store(location, client=client))
