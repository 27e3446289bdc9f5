"""Container images for Lambda from an archive plan: pure decisions, no I/O.

An image is the runtime image's layers, then nativebuild's: the dependencies, then the
function's code, each installed at ``/var/task`` (``LAMBDA_TASK_ROOT``), with ``CMD`` set to
the handler. Everything here is a function of its inputs, so the same inputs give the same
config bytes, hence the same image id, on any machine.

**Layers.** Files are grouped by what changes them at its own pace:

- every distribution of at least :data:`LARGE_PACKAGE` bytes unzipped gets a layer of its own
  (at most :data:`MAX_OWN_LAYERS` of them, the largest; ties by name), ordered by name;
- the other distributions share one ``dependencies`` layer, after those;
- the function's own source is the last layer, ``code``.

Bumping a small package changes only the shared layer (small, by definition); bumping numpy
changes only numpy's; editing the code changes only the code layer. The big, stable layers
come first because an engine keys its layers by their whole chain: a change re-registers
every layer after it, however unchanged.

**Format.** The tarball written (:mod:`nativebuild.pipeline.image`) is at once an OCI image
layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) and a docker-archive
(``manifest.json`` naming the same blobs), which ``docker load`` reads on every engine since
1.10. Layers are gzip-compressed: AWS Lambda refuses uncompressed layers
(``UnsupportedImageLayerDetected``), and registries store what is pushed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from nativebuild.archive.plan import ArchiveEntry, ArchivePlan
from nativebuild.archive.tarwriter import parent_dirs
from nativebuild.errors import ArchiveError, ConfigError

# Lambda's limit: "10 GB (maximum uncompressed image size, including all layers)".
IMAGE_LIMIT = 10 * 1024**3
NEAR = 0.9
LARGE_PACKAGE = 32 * 1024 * 1024  # a distribution this big gets a layer of its own
MAX_OWN_LAYERS = 8
TASK_ROOT = "var/task"  # LAMBDA_TASK_ROOT, without the leading slash of tar member names
DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z: the zips' default timestamp, for both

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
# Config fields kept from the runtime image; the rest (container, docker_version, ...) is how
# that image was built, not what this one is.
_KEPT_FIELDS = ("architecture", "os", "os.version", "os.features", "variant")
_HANDLER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\.[A-Za-z_][A-Za-z0-9_]*")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")

Role = Literal["dependencies", "code"]


def parse_handler(value: str, origin: str) -> str:
    """``module.function`` (``package.module.function``, ``dir/module.function``)."""
    handler = value.strip()
    if not _HANDLER_RE.fullmatch(handler) or ".." in handler:
        msg = (
            f"handler in {origin} must look like module.function (e.g. app.handler), not {value!r}."
        )
        raise ConfigError(msg)
    return handler


def canonical_json(document: Any) -> bytes:
    """One byte form per document: sorted keys, no spaces, ASCII."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def created_time(epoch: int | None) -> tuple[int, str]:
    """The one timestamp of an image (file mtimes, ``created``): SOURCE_DATE_EPOCH, else
    1980-01-01 like the zips; as seconds and as RFC 3339."""
    seconds = DEFAULT_EPOCH if epoch is None else max(epoch, 0)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return seconds, moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def blob_path(digest: str) -> str:
    if not _DIGEST_RE.fullmatch(digest):
        msg = f"not a sha256 digest: {digest!r}"
        raise ArchiveError(msg)
    return f"blobs/sha256/{digest.removeprefix('sha256:')}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Descriptor:
    """A blob as manifests point at it."""

    media_type: str
    digest: str  # sha256:<hex>
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


# --- layers ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerPlan:
    """One layer of nativebuild's: its files, placed under /var/task when written."""

    name: str  # "dependencies", "numpy 2.0.1" (a layer of its own), "code"
    role: Role
    entries: tuple[ArchiveEntry, ...]

    @property
    def unzipped_size(self) -> int:
        return sum(entry.size for entry in self.entries)

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(sorted({entry.owner for entry in self.entries if entry.owner}))


def split_layers(
    plan: ArchivePlan, *, large: int = LARGE_PACKAGE, max_own: int = MAX_OWN_LAYERS
) -> tuple[LayerPlan, ...]:
    """The layers of ``plan`` (see the module's docstring); empty groups make no layer."""
    sizes: dict[str, int] = {}
    for entry in plan.entries:
        if entry.owner:
            sizes[entry.owner] = sizes.get(entry.owner, 0) + entry.size
    biggest = sorted(
        (owner for owner, size in sizes.items() if size >= large),
        key=lambda owner: (-sizes[owner], owner),
    )
    own = sorted(biggest[:max_own])
    layers = [
        LayerPlan(
            name=owner,
            role="dependencies",
            entries=tuple(e for e in plan.entries if e.owner == owner),
        )
        for owner in own
    ]
    shared = tuple(e for e in plan.entries if e.owner and e.owner not in own)
    if shared:
        layers.append(LayerPlan(name="dependencies", role="dependencies", entries=shared))
    code = tuple(e for e in plan.entries if not e.owner)
    if code:
        layers.append(LayerPlan(name="code", role="code", entries=code))
    return tuple(layers)


def package_rows(layers: Sequence[LayerPlan]) -> list[tuple[str, str, int, int]]:
    """(package, layer, files, unzipped bytes) per distribution (and your source), largest
    first: the per-package part of the build's report."""
    rows: dict[tuple[str, str], list[int]] = {}
    for layer in layers:
        for entry in layer.entries:
            row = rows.setdefault((entry.owner or "your source", layer.name), [0, 0])
            row[0] += 1
            row[1] += entry.size
    ordered = sorted(rows.items(), key=lambda item: (-item[1][1], item[0]))
    return [(owner, layer, files, size) for (owner, layer), (files, size) in ordered]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerMember:
    """One tar member of a layer: a directory, or a file with the entry its bytes come from."""

    path: str
    entry: ArchiveEntry | None  # None: a directory


def layer_members(entries: Sequence[ArchiveEntry], root: str = TASK_ROOT) -> list[LayerMember]:
    """The layer's tar members, sorted: every directory on the way to a file is written too
    (mode 0755), ``var`` and ``var/task`` included, so no engine has to invent one (Docker
    would make a missing parent 0600, which Lambda's non-root user cannot read)."""
    files = {f"{root}/{entry.path}": entry for entry in entries}
    members = [LayerMember(path=path, entry=None) for path in parent_dirs(list(files))]
    members += [LayerMember(path=path, entry=entry) for path, entry in files.items()]
    return sorted(members, key=lambda member: member.path)


# --- the runtime image -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseLayer:
    diff_id: str  # sha256 of the layer's tar, as the runtime image's config lists it
    digest: str  # sha256 of the gzip blob nativebuild made of it
    size: int  # compressed
    uncompressed_size: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseImage:
    """The runtime image an image is built on: its config and its layers as blobs."""

    ref: str
    id: str  # sha256 of its config: what `docker image inspect` shows as Id
    repo_digest: str | None  # its registry digest, when the engine knows one
    config: bytes
    layers: tuple[BaseLayer, ...]

    @property
    def document(self) -> dict[str, Any]:
        parsed = json.loads(self.config)
        if not isinstance(parsed, dict):
            msg = f"The config of {self.ref} is not a JSON object."
            raise ArchiveError(msg)
        return parsed

    @property
    def uncompressed_size(self) -> int:
        return sum(layer.uncompressed_size for layer in self.layers)


def base_diff_ids(config: Mapping[str, Any], ref: str) -> list[str]:
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and _DIGEST_RE.fullmatch(d) for d in diff_ids
    ):
        msg = f"The runtime image {ref} has no usable rootfs.diff_ids in its config."
        raise ArchiveError(
            msg, hint="Use a runtime image saved by Docker (docker save works on it)."
        )
    return diff_ids


# --- config, manifest, index -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuiltLayer:
    """A layer of nativebuild's once written (or found in the cache)."""

    name: str
    role: Role
    diff_id: str
    blob: Descriptor
    uncompressed_size: int
    files: int
    packages: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageFacts:
    """What the manifest and ``--json`` say of a built image."""

    id: str  # sha256 of the config: the image id `docker image inspect` shows once loaded
    manifest_digest: str  # the OCI manifest's: the digest a registry serves it under
    repository: str
    tag: str
    handler: str | None
    base: BaseImage
    layers: tuple[BuiltLayer, ...]  # nativebuild's, after the runtime image's
    loaded: bool = False  # loaded into the engine by this build (--load)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "manifest_digest": self.manifest_digest,
            "repository": self.repository,
            "tag": self.tag,
            "handler": self.handler,
            "base": {
                "ref": self.base.ref,
                "id": self.base.id,
                "digest": self.base.repo_digest,
                "layers": [dataclasses.asdict(layer) for layer in self.base.layers],
            },
            "layers": [
                {
                    "name": layer.name,
                    "role": layer.role,
                    "digest": layer.blob.digest,
                    "diff_id": layer.diff_id,
                    "size": layer.blob.size,
                    "uncompressed_size": layer.uncompressed_size,
                    "files": layer.files,
                    "packages": list(layer.packages),
                }
                for layer in self.layers
            ],
        }


def image_config(
    base: BaseImage, layers: Sequence[BuiltLayer], *, handler: str | None, created: str
) -> bytes:
    """The image's config: the runtime image's settings (environment, entrypoint, working
    directory), ``CMD`` the handler, its layers after the runtime image's. One history entry per
    layer of ours, with the fixed time and no command: there is no build to describe."""
    document = base.document
    kept = {field: document[field] for field in _KEPT_FIELDS if field in document}
    settings = dict(document.get("config") or {})
    if handler is not None:
        settings["Cmd"] = [handler]
    history = list(document.get("history") or [])
    history += [
        {"created": created, "created_by": f"nativebuild: {layer.role} ({layer.name})"}
        for layer in layers
    ]
    return canonical_json(
        {
            **kept,
            "created": created,
            "config": settings,
            "rootfs": {
                "type": "layers",
                "diff_ids": [*base_diff_ids(document, base.ref), *(l.diff_id for l in layers)],
            },
            "history": history,
        }
    )


def image_manifest(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
    )


def image_index(manifest: Descriptor, *, tag: str, repository: str) -> bytes:
    """``index.json`` of the layout: the one manifest, named as OCI tools and containerd
    (``ctr import``, Docker 25+) look for it."""
    entry = manifest.to_json()
    entry["annotations"] = {
        "io.containerd.image.name": f"{repository}:{tag}",
        "org.opencontainers.image.ref.name": tag,
    }
    return canonical_json({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [entry]})


def docker_manifest(
    config: Descriptor, layers: Sequence[Descriptor], repo_tags: Sequence[str]
) -> bytes:
    """``manifest.json`` of a docker-archive: what ``docker load`` reads (every version)."""
    return canonical_json(
        [
            {
                "Config": blob_path(config.digest),
                "RepoTags": list(repo_tags),
                "Layers": [blob_path(layer.digest) for layer in layers],
            }
        ]
    )


def layer_descriptor(digest: str, size: int) -> Descriptor:
    return Descriptor(media_type=LAYER_MEDIA_TYPE, digest=digest, size=size)


def image_tag(name: str, runtime: str, arch: str) -> tuple[str, str]:
    """(repository, tag) the image is loaded as: ``NAME:RUNTIME-ARCH``."""
    return name.lower(), f"{runtime}-{arch}"


# --- size --------------------------------------------------------------------------------------


def check_image_size(name: str, base: BaseImage, layers: Sequence[LayerPlan]) -> list[str]:
    """Lambda's 10 GB for all layers, uncompressed. Raises ArchiveError over it (largest
    packages listed); warns from 90%."""
    ours = sum(layer.unzipped_size for layer in layers)
    total = base.uncompressed_size + ours
    if total > IMAGE_LIMIT:
        sizes: dict[str, int] = {}
        for layer in layers:
            for entry in layer.entries:
                owner = entry.owner or "your source"
                sizes[owner] = sizes.get(owner, 0) + entry.size
        largest = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:15]
        listing = "\n".join(f"  {owner:<40} {size:>15,} bytes" for owner, size in largest)
        msg = (
            f"{name} would be {total:,} bytes uncompressed ({base.uncompressed_size:,} of them "
            f"the runtime image's): over Lambda's {IMAGE_LIMIT:,}-byte limit for an image, by "
            f"{total - IMAGE_LIMIT:,}.\nLargest packages:\n{listing}"
        )
        hint = "Make it smaller: --slim tests,docs,examples, --exclude GLOB, or fewer packages."
        raise ArchiveError(msg, hint=hint)
    if total >= NEAR * IMAGE_LIMIT:
        share = 100 * total / IMAGE_LIMIT
        return [
            f"{name} is {total:,} bytes uncompressed, {share:.0f}% of Lambda's {IMAGE_LIMIT:,}."
        ]
    return []
