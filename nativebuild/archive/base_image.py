"""The runtime image's layers, read from what the engine's ``docker save`` streams.

``docker save`` is streamed to a file first (once per image id: the result is cached), then
read in place. Two layouts come out of it: the classic one (``<id>/layer.tar`` and
``<image id>.json``, Docker up to 24) and the OCI one (``blobs/sha256/...``, Docker 25+), whose
layers may be compressed. Both have a ``manifest.json`` naming the config and the layers in
order, which is all that is read here. Each layer is checked against the config's
``rootfs.diff_ids`` and compressed again the one way nativebuild compresses (see
:mod:`nativebuild.archive.tarwriter`), so its blob is the same wherever the image was saved.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from nativebuild.archive.image import base_diff_ids
from nativebuild.archive.tarwriter import GZIP_LEVEL, GzipWriter, LayerDigests
from nativebuild.errors import ArchiveError

_CHUNK = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def save_to(chunks: Iterable[bytes], dest: Path) -> None:
    """Write what the engine streams (``docker save``) to ``dest``."""
    with dest.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)


def _member(archive: tarfile.TarFile, name: str, ref: str) -> IO[bytes]:
    clean = PurePosixPath(name)
    if clean.is_absolute() or ".." in clean.parts:
        msg = f"The saved image {ref} names an unsafe path {name!r}."
        raise ArchiveError(msg)
    try:
        handle = archive.extractfile(str(clean))  # follows links inside the archive
    except KeyError:
        handle = None
    if handle is None:
        msg = f"The saved image {ref} names {name!r}, which it does not hold as a file."
        raise ArchiveError(msg, hint="Check the image with `docker save IMAGE | tar -t`.")
    return handle


def read_saved(archive: tarfile.TarFile, ref: str) -> tuple[bytes, list[str]]:
    """The config bytes and the layers' member names, in order, of the one image saved."""
    try:
        manifest = json.load(_member(archive, "manifest.json", ref))
        (entry,) = manifest
        layers = [str(layer) for layer in entry["Layers"]]
        config = _member(archive, str(entry["Config"]), ref).read()
    except (ValueError, KeyError, TypeError) as err:
        msg = f"What the engine saved of {ref} is not an image archive: {err!r}."
        hint = "Check the image with `docker save IMAGE | tar -t`."
        raise ArchiveError(msg, hint=hint) from err
    return config, layers


def _plain_chunks(source: IO[bytes], name: str) -> Iterator[bytes]:
    """The layer's tar bytes, whatever the save compressed it with (gzip or nothing)."""
    head = source.read(4)
    if head.startswith(_ZSTD_MAGIC):
        msg = f"The runtime image's layer {name} is zstd-compressed, which nativebuild cannot read."
        hint = "Use a runtime image with gzip or uncompressed layers (every Lambda base image is)."
        raise ArchiveError(msg, hint=hint)
    if not head.startswith(_GZIP_MAGIC):
        yield head
        while chunk := source.read(_CHUNK):
            yield chunk
        return
    inflater = zlib.decompressobj(31)
    data = head
    while True:
        while data:
            yield inflater.decompress(data)
            if inflater.eof:  # a second gzip member may follow
                data, inflater = inflater.unused_data, zlib.decompressobj(31)
            else:
                data = b""
        data = source.read(_CHUNK)
        if not data:
            break
    yield inflater.flush()


def recompress(
    archive: tarfile.TarFile, member: str, out: Path, *, ref: str, level: int = GZIP_LEVEL
) -> LayerDigests:
    """Write the saved layer ``member``'s tar to ``out``, gzip-compressed the nativebuild way."""
    plain = hashlib.sha256()
    size = 0
    with _member(archive, member, ref) as source, out.open("wb") as sink:
        gzip = GzipWriter(sink, level=level)
        for chunk in _plain_chunks(source, member):
            plain.update(chunk)
            size += len(chunk)
            gzip.write(chunk)
        gzip.finish()
    return LayerDigests(
        diff_id=f"sha256:{plain.hexdigest()}",
        digest=f"sha256:{gzip.digest.hexdigest()}",
        size=gzip.size,
        uncompressed_size=size,
    )


def config_diff_ids(config: bytes, *, ref: str) -> list[str]:
    """The layers' diff_ids the saved config lists. Its sha256 is the image id on the classic
    store; a containerd store names images by manifest instead, so it is not compared."""
    try:
        document = json.loads(config)
    except ValueError as err:
        msg = f"The config of {ref} is not JSON: {err}."
        raise ArchiveError(msg) from err
    if not isinstance(document, dict):
        msg = f"The config of {ref} is not a JSON object."
        raise ArchiveError(msg)
    return base_diff_ids(document, ref)
