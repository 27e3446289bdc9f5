"""Write an image: each layer of nativebuild's as a reproducible gzip tar, then the tarball that
holds every blob (an OCI layout that is also a docker-archive), and read it back for loading.

The plans come from :mod:`nativebuild.archive.image`; this module only does the I/O. Layer
bytes stream from the wheels (and source files) straight into the compressor, as the zip
writer does; blobs stream from the cache into the tarball, hashed on the way, so a corrupt
cache entry is caught rather than shipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import queue
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from nativebuild.archive.image import (
    LayerPlan,
    blob_path,
    canonical_json,
    layer_members,
)
from nativebuild.archive.plan import SourceFile, remove_abandoned_temps
from nativebuild.archive.tarwriter import (
    GZIP_LEVEL,
    LayerDigests,
    LayerWriter,
    TarFormatError,
    end_of_archive,
    member_header,
    parent_dirs,
)
from nativebuild.archive.wheels import WheelMember, rewrite_shebang, unsafe_reason
from nativebuild.errors import ArchiveError

LAYER_FORMAT = "1"  # bump when the bytes of a layer for the same entries change
_CHUNK = 1024 * 1024
_QUEUED = 16  # chunks written but not yet hashed, at most


def layer_key(
    layer: LayerPlan,
    *,
    interpreter: str,
    wheel_hashes: Mapping[Path, str],
    mtime: int,
    level: int = GZIP_LEVEL,
) -> str:
    """Everything a layer's bytes depend on: the format, time and level, and every entry's
    path, mode and bytes (a wheel member by the wheel's sha256, a file by its content; a zip
    nativebuild made, such as compiled bytecode, by its content too)."""
    digest = hashlib.sha256(f"{LAYER_FORMAT}\0{mtime}\0{level}\0{interpreter}\0".encode())
    hashes = dict(wheel_hashes)
    for entry in layer.entries:
        source = entry.source
        if isinstance(source, WheelMember):
            if source.wheel not in hashes:
                hashes[source.wheel] = hashlib.sha256(source.wheel.read_bytes()).hexdigest()
            what = f"{hashes[source.wheel]}|{source.member}|{source.rewrite_shebang}"
        else:
            what = hashlib.sha256(source.path.read_bytes()).hexdigest()
        digest.update(f"{entry.path}\0{entry.mode:o}\0{what}\n".encode())
    return digest.hexdigest()


def write_layer(
    layer: LayerPlan, dest: Path, *, interpreter: str, mtime: int, level: int = GZIP_LEVEL
) -> tuple[LayerDigests, int]:
    """Write ``layer`` to ``dest`` (gzip tar, files under /var/task); its digests and the
    number of files. Raises ArchiveError when an input cannot be read as planned."""
    current = ""
    try:
        with dest.open("wb") as out, contextlib.ExitStack() as stack:
            writer = LayerWriter(out, mtime=mtime, level=level)
            wheels: dict[Path, zipfile.ZipFile] = {}
            files = 0
            for member in layer_members(layer.entries):
                current = member.path
                entry = member.entry
                if entry is None:
                    writer.add_dir(member.path)
                    continue
                reason = unsafe_reason(entry.path)
                if reason is not None:
                    msg = f"image path {entry.path!r} {reason}"
                    raise TarFormatError(msg)
                files += 1
                source = entry.source
                if isinstance(source, SourceFile):
                    with source.path.open("rb") as handle:
                        size = os.fstat(handle.fileno()).st_size
                        writer.add_stream(member.path, handle, size=size, mode=entry.mode)
                    continue
                wheel = wheels.get(source.wheel)
                if wheel is None:
                    wheel = wheels[source.wheel] = stack.enter_context(
                        zipfile.ZipFile(source.wheel)
                    )
                info = wheel.getinfo(source.member)
                if source.rewrite_shebang:
                    with wheel.open(info) as handle:
                        data = rewrite_shebang(handle.read(), interpreter)
                    writer.add_bytes(member.path, data, mode=entry.mode)
                else:
                    with wheel.open(info) as handle:
                        writer.add_stream(member.path, handle, size=info.file_size, mode=entry.mode)
            return writer.finish(), files
    except (OSError, KeyError, zipfile.BadZipFile, TarFormatError) as err:
        where = f" at {current}" if current else ""
        msg = f"Cannot write the image layer {layer.name}{where}: {err}."
        raise ArchiveError(msg, hint="Check the input files and free disk space.") from err


@dataclasses.dataclass(frozen=True, kw_only=True)
class Blob:
    """A blob of the image: in a file (a cached layer), or bytes (config, manifest)."""

    digest: str
    size: int
    path: Path | None = None
    data: bytes | None = None
    verified: bool = False  # the file was hashed before and has not changed since: copy only


class BlobMismatchError(ArchiveError):
    """A blob's file no longer hashes to its name (a corrupt cache entry)."""

    def __init__(self, message: str, *, digest: str) -> None:
        super().__init__(message, hint="The cache entry is removed: run the build again.")
        self.digest = digest


def blob_of(data: bytes) -> Blob:
    return Blob(digest=f"sha256:{hashlib.sha256(data).hexdigest()}", size=len(data), data=data)


def blob_chunks(blob: Blob) -> Iterator[bytes]:
    """A blob's bytes as they are (the engine a load sends them to checks every layer against
    the config's diff_ids, and the image id against the config's digest)."""
    if blob.data is not None:
        yield blob.data
        return
    if blob.path is None:  # pragma: no cover - a blob is bytes or a file
        msg = f"blob {blob.digest} has no data"
        raise ArchiveError(msg)
    with blob.path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            yield chunk


class _BackgroundHash:
    """A sink that writes at once and hashes on a thread of its own: sha256 of a large
    tarball costs as much as writing it and syncing it to disk, and each of them lets go of
    the interpreter, so the tarball costs the longest of the three, not their sum. At most
    :data:`_QUEUED` chunks wait to be hashed, whatever the image's size."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.size = 0
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)
        self._thread = threading.Thread(target=self._hash, name="nativebuild-hash", daemon=True)

    def __enter__(self) -> _BackgroundHash:  # noqa: PYI034 (typing.Self is 3.11+)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()

    def _hash(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.size += len(data)
        self._queue.put(data)

    def hexdigest(self) -> str:
        """Once the context has closed: every byte written is hashed."""
        return self._digest.hexdigest()


def _copy_blob(out: _BackgroundHash, blob: Blob) -> None:
    if blob.data is not None:
        out.write(blob.data)
        return
    if blob.path is None:  # pragma: no cover - a blob is bytes or a file
        msg = f"blob {blob.digest} has no data"
        raise ArchiveError(msg)
    check = hashlib.sha256()
    copied = 0
    with blob.path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            if not blob.verified:
                check.update(chunk)
            copied += len(chunk)
            out.write(chunk)
    if copied != blob.size or (not blob.verified and f"sha256:{check.hexdigest()}" != blob.digest):
        msg = f"The cached blob {blob.path} is not {blob.digest} ({copied} bytes read)."
        raise BlobMismatchError(msg, digest=blob.digest)


def write_image_archive(
    dest: Path, blobs: Sequence[Blob], files: Mapping[str, bytes], *, mtime: int
) -> tuple[str, int]:
    """Write the tarball atomically: every blob under ``blobs/sha256/``, plus ``files`` (index,
    manifest.json, oci-layout) at the root, all sorted, with the fixed ``mtime``. Returns its
    sha256 and size; on any failure ``dest`` is left as it was."""
    unique = {blob.digest: blob for blob in blobs}
    members: dict[str, Blob | bytes] = {blob_path(d): b for d, b in unique.items()}
    members.update(files)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned_temps(dest)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        fcntl.flock(fd, fcntl.LOCK_EX)  # live until closed: see remove_abandoned_temps
    except OSError as err:
        msg = f"Cannot create {dest}: {err}."
        raise ArchiveError(msg, hint="Choose an output path you can write to.") from err
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, _BackgroundHash(raw) as out:
            directories = parent_dirs(list(members))
            for name in sorted([*members, *(f"{d}/" for d in directories)]):
                if name.endswith("/"):
                    out.write(member_header(name, mode=0o755, size=0, mtime=mtime, directory=True))
                    continue
                item = members[name]
                size = item.size if isinstance(item, Blob) else len(item)
                out.write(member_header(name, mode=0o644, size=size, mtime=mtime, directory=False))
                if isinstance(item, Blob):
                    _copy_blob(out, item)
                else:
                    out.write(item)
                out.write(b"\0" * (-size % 512))
            out.write(end_of_archive())
            raw.flush()
            os.fsync(raw.fileno())  # while the hash catches up
        tmp.chmod(0o644)
        tmp.replace(dest)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            msg = f"Cannot write {dest}: {err}."
            raise ArchiveError(msg, hint="Check free disk space.") from err
        raise
    return out.hexdigest(), out.size


# --- reading the tarball back, for loading into an engine and pushing to a registry -----------


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageArchive:
    """What a tarball holds: the docker manifest's entry and where each member's data is."""

    path: Path
    config: str  # digest
    layers: tuple[str, ...]  # digests, in order
    repo_tags: tuple[str, ...]
    offsets: Mapping[str, tuple[int, int]]  # member name -> (data offset, size)

    def blob(self, digest: str) -> tuple[int, int]:
        return self.offsets[blob_path(digest)]

    def read(self, digest: str) -> bytes:
        offset, size = self.blob(digest)
        with self.path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    def sized(self, digest: str) -> tuple[int, Iterator[bytes]]:
        """A :data:`BlobReader` over the tarball."""
        return self.blob(digest)[1], self.stream(digest)

    def stream(self, digest: str) -> Iterator[bytes]:
        offset, size = self.blob(digest)
        with self.path.open("rb") as handle:
            handle.seek(offset)
            while size > 0:
                chunk = handle.read(min(_CHUNK, size))
                if not chunk:
                    msg = f"{self.path} ends inside {digest}."
                    raise ArchiveError(msg, hint="Build the image again.")
                size -= len(chunk)
                yield chunk


def open_image_archive(path: Path) -> ImageArchive:
    """Read the members' places and the docker manifest of an image tarball nativebuild wrote."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            offsets = {m.name: (m.offset_data, m.size) for m in archive.getmembers() if m.isfile()}
            handle = archive.extractfile("manifest.json")
            manifest: Any = json.load(handle) if handle is not None else []
        (entry,) = manifest
        config = str(entry["Config"]).removeprefix("blobs/sha256/")
        layers = tuple(f"sha256:{str(p).removeprefix('blobs/sha256/')}" for p in entry["Layers"])
    except (OSError, tarfile.TarError, KeyError, ValueError, TypeError) as err:
        msg = f"{path} is not an image tarball nativebuild wrote: {err!r}."
        raise ArchiveError(msg, hint="Build it again with --kind image.") from err
    return ImageArchive(
        path=path, config=f"sha256:{config}", layers=layers,
        repo_tags=tuple(str(t) for t in entry.get("RepoTags") or ()), offsets=offsets,
    )  # fmt: skip


BlobReader = Callable[[str], tuple[int, Iterable[bytes]]]  # digest -> (size, its bytes)


def docker_archive_stream(
    config: str,
    layers: Sequence[str],
    read: BlobReader,
    *,
    repo_tags: Sequence[str],
    skip_layers: int,
) -> Iterator[bytes]:
    """A docker-archive tar stream of the image (``config`` and ``layers`` by digest, their
    bytes from ``read``) for ``docker load``, leaving out the data of its first ``skip_layers``
    layers: an engine that already holds those layers (as the chain of another image) never
    opens their files, so only what it lacks crosses the socket."""
    manifest = canonical_json(
        [
            {
                "Config": blob_path(config),
                "RepoTags": list(repo_tags),
                "Layers": [blob_path(d) for d in layers],
            }
        ]
    )
    sent = {config, *layers[skip_layers:]}
    yield member_header("manifest.json", mode=0o644, size=len(manifest), mtime=0, directory=False)
    yield manifest + b"\0" * (-len(manifest) % 512)
    for digest in sorted(sent):
        size, chunks = read(digest)
        yield member_header(blob_path(digest), mode=0o644, size=size, mtime=0, directory=False)
        yield from chunks
        yield b"\0" * (-size % 512)
    yield end_of_archive()
