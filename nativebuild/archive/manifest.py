"""``manifest.json`` in the output directory: every archive of the build, for deployment tools.

Schema ``nativebuild-manifest/1`` (the README shows it with SAM, CDK, Terraform and Serverless)::

    {"schema": "nativebuild-manifest/1", "nativebuild": "0.1.0",
     "archives": [{
        "name": "orders", "kind": "function" | "layer" | "image",
        "file": "orders-python3.12-x86_64.zip",      # relative to the manifest's directory
        "runtime": "python3.12", "architecture": "x86_64",
        "sha256": "<hex>", "code_sha256": "<base64 of the digest: Lambda's CodeSha256>",
        "size": 123, "unzipped_size": 456, "files": 7, "direct_upload": true,
        "mount": "/var/task" | "/opt",
        "layers": ["orders-layer-python3.12-x86_64.zip"],   # a function's layers of this build
        "layer": {"layout": "python", "compatible_runtimes": [...],
                  "compatible_architectures": [...]} | null,
        "bytecode": "checked-hash" | null,
        "images": {"build": {"ref": ..., "id": ... | null}, "runtime": {"ref": ..., "digest": ... | null}},
        "wheels": [{"name", "version", "filename", "sha256", "source", "url", "sdist": {...} | null}],
        "slim": {"rules": [...], "removed_files": 0, "removed_bytes": 0, "stripped_files": 0},
        # kind "image" only: the image id and ImageFacts.to_json() (layers, base image)
        "image_id": "sha256:...", "image": {...}}]}

No timestamps and no absolute paths: the same build gives the same manifest. It is written
atomically, after every archive is in place.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nativebuild import __version__
from nativebuild.archive.budget import DIRECT_UPLOAD_LIMIT, PackageSize
from nativebuild.archive.image import ImageFacts
from nativebuild.archive.plan import remove_abandoned_temps
from nativebuild.archive.slim import Removal
from nativebuild.archive.strip import Stripped
from nativebuild.errors import ArchiveError

MANIFEST_NAME = "manifest.json"
SCHEMA = "nativebuild-manifest/1"


@dataclasses.dataclass(frozen=True, kw_only=True)
class WheelEntry:
    """A wheel inside an archive, and where it came from."""

    name: str
    version: str
    filename: str
    sha256: str
    source: str  # cache | download | compiled (how this build obtained it)
    url: str  # where the wheel, or the sdist it was built from, was found (no credentials)
    sdist: str | None = None  # the sdist's file name, when nativebuild compiled it
    sdist_sha256: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchiveRecord:
    path: Path
    sha256: str
    size: int
    runtime: str
    arch: str
    kind: str  # function | layer | image
    name: str = ""
    code_sha256: str = ""
    unzipped_size: int = 0
    files: int = 0
    mount: str = "/var/task"
    layers: tuple[str, ...] = ()
    layer_layout: str | None = None
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    bytecode: str | None = None
    build_image: str = ""
    build_image_id: str | None = None
    runtime_image: str = ""
    wheels: tuple[WheelEntry, ...] = ()
    packages: tuple[PackageSize, ...] = ()
    slim_rules: tuple[str, ...] = ()
    removed: tuple[Removal, ...] = ()
    stripped: tuple[Stripped, ...] = ()
    image_id: str | None = None  # an image's: the sha256 of its config
    image: ImageFacts | None = None


def _digest(ref: str) -> str | None:
    return ref.rsplit("@", 1)[1] if "@sha256:" in ref else None


def archive_document(record: ArchiveRecord, base: Path) -> dict[str, Any]:
    try:
        file = record.path.relative_to(base).as_posix()
    except ValueError:
        file = record.path.as_posix()
    layer = None
    if record.kind == "layer":
        layer = {
            "layout": record.layer_layout,
            "compatible_runtimes": list(record.compatible_runtimes),
            "compatible_architectures": list(record.compatible_architectures),
        }
    document: dict[str, Any] = {
        "name": record.name,
        "kind": record.kind,
        "file": file,
        "runtime": record.runtime,
        "architecture": record.arch,
        "sha256": record.sha256,
        "code_sha256": record.code_sha256,
        "size": record.size,
        "unzipped_size": record.unzipped_size,
        "files": record.files,
        "direct_upload": record.size <= DIRECT_UPLOAD_LIMIT,
        "mount": record.mount,
        "layers": list(record.layers),
        "layer": layer,
        "bytecode": record.bytecode,
        "images": {
            "build": {"ref": record.build_image, "id": record.build_image_id},
            "runtime": {"ref": record.runtime_image, "digest": _digest(record.runtime_image)},
        },
        "wheels": [dataclasses.asdict(wheel) for wheel in record.wheels],
        "slim": {
            "rules": list(record.slim_rules),
            "removed_files": len(record.removed),
            "removed_bytes": sum(item.size for item in record.removed),
            "stripped_files": sum(item.files for item in record.stripped),
        },
    }
    if record.image is not None:  # what the build wrote, not what it then did (--load)
        facts = record.image.to_json()
        document["image_id"] = record.image_id
        document["image"] = facts
        document["direct_upload"] = False  # a container image goes through a registry
        document["images"]["runtime"]["digest"] = facts["base"]["digest"]
    return document


def manifest_document(records: Sequence[ArchiveRecord], base: Path) -> dict[str, Any]:
    """The manifest of ``records``, archives in file-name order; paths relative to ``base``."""
    ordered = sorted(records, key=lambda r: (r.path.name, r.runtime, r.arch))
    return {
        "schema": SCHEMA,
        "nativebuild": __version__,
        "archives": [archive_document(record, base) for record in ordered],
    }


def write_manifest(records: Sequence[ArchiveRecord], output: Path) -> Path:
    """Write ``output/manifest.json`` atomically; returns its path."""
    dest = output / MANIFEST_NAME
    data = json.dumps(manifest_document(records, output), indent=2, sort_keys=True) + "\n"
    try:
        output.mkdir(parents=True, exist_ok=True)
        remove_abandoned_temps(dest)
        fd, tmp = tempfile.mkstemp(dir=output, prefix=f".{MANIFEST_NAME}.", suffix=".tmp")
        fcntl.flock(fd, fcntl.LOCK_EX)  # live until closed: not abandoned
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).chmod(0o644)
            Path(tmp).replace(dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        msg = f"Cannot write {dest}: {err}."
        raise ArchiveError(msg, hint="Choose an output directory you can write to.") from err
    return dest
