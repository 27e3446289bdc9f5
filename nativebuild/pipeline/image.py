"""``--kind image``: one target's container image, from the same plan as its function archive.

The runtime image is read from the engine once per image id (``docker save``), each of its
layers compressed the nativebuild way and kept in the cache; each dependencies layer is kept
there too, by the identity of its files, so a code change writes only the code layer. The
tarball is then assembled from those blobs (:mod:`nativebuild.archive.image_archive`) and,
with ``--load``, handed to the engine without the layers it already holds.
"""

from __future__ import annotations

import dataclasses
import tarfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nativebuild.archive.base_image import config_diff_ids, read_saved, recompress, save_to
from nativebuild.archive.budget import LISTED, human
from nativebuild.archive.image import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    OCI_LAYOUT,
    BaseImage,
    BaseLayer,
    BuiltLayer,
    Descriptor,
    ImageFacts,
    LayerPlan,
    check_image_size,
    created_time,
    docker_manifest,
    image_config,
    image_index,
    image_manifest,
    image_tag,
    layer_descriptor,
    package_rows,
    split_layers,
)
from nativebuild.archive.image_archive import (
    LAYER_FORMAT,
    Blob,
    BlobMismatchError,
    BlobReader,
    blob_chunks,
    blob_of,
    docker_archive_stream,
    layer_key,
    open_image_archive,
    write_image_archive,
    write_layer,
)
from nativebuild.archive.plan import ArchivePlan
from nativebuild.archive.tarwriter import GZIP_LEVEL
from nativebuild.cache.keys import build_key, file_identity
from nativebuild.cache.local import LocalCache
from nativebuild.engine.image_store import ImageStore
from nativebuild.errors import ArchiveError, ContainerError
from nativebuild.pipeline.context import BuildContext
from nativebuild.reporting import Reporter
from nativebuild.targets import Target

BASE_KIND = "image-base"
LAYER_KIND = "image-layer"
BLOB_NAME = "blob.tar.gz"
VERIFIED_KIND = "image-blob-verified"  # a cached blob hashed once, by its file's identity


@dataclasses.dataclass(frozen=True, kw_only=True)
class WrittenImage:
    path: Path
    sha256: str
    size: int
    facts: ImageFacts


def image_store(context: BuildContext) -> ImageStore:
    """The engine images are read from and loaded into: the default one (builders only
    compile), which must be able to save and load images."""
    runner = context.runner
    if not isinstance(runner, ImageStore):
        msg = "This container engine cannot save or load images, which --kind image needs."
        raise ContainerError(msg, hint="Use a Docker (or Podman) engine for image builds.")
    return runner


def base_image(context: BuildContext, target: Target) -> BaseImage:
    """``target``'s runtime image as blobs in the cache: read from the engine (pulled if
    missing) the first time its id is seen, from the cache after."""
    store = image_store(context)
    ref = target.runtime_image
    image_id = store.image_id(ref, platform=target.arch.docker_platform)
    local = context.cache.machine_local
    fields = {
        "kind": BASE_KIND,
        "format": LAYER_FORMAT,
        "level": str(GZIP_LEVEL),
        "image": image_id,
    }
    key = build_key(fields)
    with local.lock(key):
        document = local.get_json(BASE_KIND, key)
        if document is None or not _blobs_present(local, document["layers"]):
            document = _save_base(context, store, ref, image_id)
            local.replace_json(BASE_KIND, key, document)
    found = store.local_image(ref)
    digests = found.repo_digests if found is not None else ()
    matching = [d for d in digests if d.split("@", 1)[0] == _repository(ref)] or list(digests)
    layers: list[dict[str, Any]] = document["layers"]
    return BaseImage(
        ref=ref,
        id=image_id,
        repo_digest=matching[0] if matching else None,
        config=str(document["config"]).encode(),
        layers=tuple(BaseLayer(**layer) for layer in layers),
    )


def _repository(ref: str) -> str:
    """``host:5000/name:tag@sha256:...`` → ``host:5000/name``."""
    name = ref.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def _blobs_present(cache: LocalCache, layers: Sequence[Mapping[str, object]]) -> bool:
    return all(cache.stored_file(_hex(str(layer["digest"])), BLOB_NAME) for layer in layers)


def _verified_key(path: Path, digest: str) -> str:
    return build_key({"kind": VERIFIED_KIND, "file": file_identity(path), "digest": digest})


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _save_base(context: BuildContext, store: ImageStore, ref: str, image_id: str) -> dict[str, Any]:
    context.reporter.step(f"Reading the runtime image {ref} from the engine (once per image id)")
    local = context.cache.machine_local
    with context.cache.scratch_dir() as work:
        saved = work / "saved.tar"
        save_to(store.save_image(ref), saved)
        try:
            with tarfile.open(saved, mode="r:") as archive:
                config, members = read_saved(archive, ref)
                diff_ids = config_diff_ids(config, ref=ref)
                if len(members) != len(diff_ids):
                    msg = f"The saved {ref} has {len(members)} layers, its config {len(diff_ids)}."
                    raise ArchiveError(msg)
                layers = []
                for number, (member, diff_id) in enumerate(zip(members, diff_ids, strict=True)):
                    blob = work / f"layer-{number}.tar.gz"
                    digests = recompress(archive, member, blob, ref=ref)
                    if digests.diff_id != diff_id:
                        msg = f"Layer {number} of {ref} is {digests.diff_id}, not {diff_id}."
                        raise ArchiveError(msg, hint="The image changed while read: try again.")
                    local.put_file(blob, sha256=_hex(digests.digest), filename=BLOB_NAME, move=True)
                    layers.append(dataclasses.asdict(BaseLayer(
                        diff_id=diff_id, digest=digests.digest, size=digests.size,
                        uncompressed_size=digests.uncompressed_size,
                    )))  # fmt: skip
        except tarfile.TarError as err:
            msg = f"What the engine saved of {ref} is not a tar archive: {err}."
            raise ArchiveError(msg) from err
    context.reporter.detail(f"{ref}: {len(layers)} layers kept in the cache")
    return {"ref": ref, "id": image_id, "config": config.decode(), "layers": layers}


def _layer(
    context: BuildContext,
    layer: LayerPlan,
    *,
    interpreter: str,
    wheel_hashes: Mapping[Path, str],
    mtime: int,
    scratch: Path,
) -> tuple[BuiltLayer, Path]:
    """A layer's blob: from the cache for dependencies written before, else written now
    (the code layer always: it is the part that changes)."""
    local = context.cache.machine_local
    key = None
    if layer.role == "dependencies":
        key = layer_key(layer, interpreter=interpreter, wheel_hashes=wheel_hashes, mtime=mtime)
        kept = local.get_json(LAYER_KIND, key)
        path = local.stored_file(_hex(str(kept["digest"])), BLOB_NAME) if kept else None
        if kept is not None and path is not None:
            return _built(layer, kept), path
    path = scratch
    digests, files = write_layer(layer, path, interpreter=interpreter, mtime=mtime)
    document = {**dataclasses.asdict(digests), "files": files}
    if key is not None:
        stored = local.put_file(path, sha256=_hex(digests.digest), filename=BLOB_NAME, move=True)
        local.replace_json(LAYER_KIND, key, document)
        path = stored.path
    return _built(layer, document), path


def _built(layer: LayerPlan, document: Mapping[str, object]) -> BuiltLayer:
    return BuiltLayer(
        name=layer.name,
        role=layer.role,
        diff_id=str(document["diff_id"]),
        blob=layer_descriptor(str(document["digest"]), int(str(document["size"]))),
        uncompressed_size=int(str(document["uncompressed_size"])),
        files=int(str(document["files"])),
        packages=layer.packages,
    )


def write_image(
    context: BuildContext,
    target: Target,
    plan: ArchivePlan,
    *,
    name: str,
    dest: Path,
    wheel_hashes: Mapping[Path, str],
    load: bool = False,
) -> WrittenImage:
    """Write ``target``'s image tarball to ``dest``: checked against Lambda's size limit
    before any layer is written. With ``load``, the image goes into the engine meanwhile,
    from the same blobs (the engine works while the tarball is written: neither waits for
    the other); the facts then say ``loaded``."""
    reporter = context.reporter
    base = base_image(context, target)
    layers = split_layers(plan)
    for warning in check_image_size(dest.name, base, layers):
        reporter.warning(warning)
    mtime, created = created_time(context.epoch)
    repository, tag = image_tag(name, target.runtime.name, target.arch.value)
    with context.cache.scratch_dir() as work:
        built: list[tuple[BuiltLayer, Path]] = [
            _layer(context, layer, interpreter=plan.interpreter, wheel_hashes=wheel_hashes,
                   mtime=mtime, scratch=work / f"layer-{number}.tar.gz")
            for number, layer in enumerate(layers)
        ]  # fmt: skip
        ours = [layer for layer, _ in built]
        config = blob_of(
            image_config(base, ours, handler=context.settings.handler, created=created)
        )
        descriptors = [
            *(layer_descriptor(layer.digest, layer.size) for layer in base.layers),
            *(layer.blob for layer in ours),
        ]
        config_descriptor = Descriptor(
            media_type=CONFIG_MEDIA_TYPE, digest=config.digest, size=config.size
        )
        manifest = blob_of(image_manifest(config_descriptor, descriptors))
        manifest_descriptor = Descriptor(
            media_type=MANIFEST_MEDIA_TYPE, digest=manifest.digest, size=manifest.size
        )
        facts = ImageFacts(
            id=config.digest, manifest_digest=manifest.digest, repository=repository, tag=tag,
            handler=context.settings.handler, base=base, layers=tuple(ours),
        )  # fmt: skip
        local = context.cache.machine_local
        files = [
            *((layer.digest, layer.size, local.stored_file(_hex(layer.digest), BLOB_NAME))
              for layer in base.layers),
            *((layer.blob.digest, layer.blob.size, path) for layer, path in built),
        ]  # fmt: skip
        blobs = [config, manifest]
        unverified: list[str] = []
        for digest, size, path in files:
            key = _verified_key(path, digest) if path is not None else None
            verified = key is not None and local.get_json(VERIFIED_KIND, key) is not None
            if key is not None and not verified:
                unverified.append(key)
            blobs.append(Blob(digest=digest, size=size, path=path, verified=verified))
        members = {
            "oci-layout": OCI_LAYOUT,
            "index.json": image_index(manifest_descriptor, tag=tag, repository=repository),
            "manifest.json": docker_manifest(
                config_descriptor, descriptors, [f"{repository}:{tag}"]
            ),
        }
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nativebuild-load") as pool:
            loading = None
            if load:
                by_digest = {blob.digest: blob for blob in blobs}
                read = lambda digest: (by_digest[digest].size, blob_chunks(by_digest[digest]))
                loading = pool.submit(
                    _start_load(image_store(context), facts, read, reporter=reporter)
                )
            try:
                sha256, size = write_image_archive(dest, blobs, members, mtime=mtime)
            except BlobMismatchError as err:
                local.get_file(_hex(err.digest), BLOB_NAME)  # evicts it
                raise
            if loading is not None:
                loading.result()
                facts = dataclasses.replace(facts, loaded=True)
        for key in unverified:  # hashed while written: the next build only copies them
            local.put_json(VERIFIED_KIND, key, {"ok": True})
    _report(reporter, dest.name, facts, layers)
    return WrittenImage(path=dest, sha256=sha256, size=size, facts=facts)


def _report(reporter: Reporter, name: str, facts: ImageFacts, layers: Sequence[LayerPlan]) -> None:
    base = facts.base
    total = base.uncompressed_size + sum(layer.uncompressed_size for layer in facts.layers)
    reporter.detail(f"{name}: image {facts.id[:19]}, {human(total)} uncompressed")
    reporter.detail(f"  {'layer':<40} {'files':>6} {'uncompressed':>13} {'compressed':>11}  digest")
    plural = "" if len(base.layers) == 1 else "s"
    runtime = f"runtime image ({len(base.layers)} layer{plural})"
    reporter.detail(
        f"  {runtime:<40} {'':>6} "
        f"{human(base.uncompressed_size):>13} {human(sum(l.size for l in base.layers)):>11}"
    )
    for layer in facts.layers:
        reporter.detail(
            f"  {layer.role + ': ' + layer.name:<40} {layer.files:>6} "
            f"{human(layer.uncompressed_size):>13} {human(layer.blob.size):>11}  "
            f"{layer.blob.digest[7:19]}"
        )
    rows = package_rows(layers)
    reporter.detail(f"  {'package':<40} {'files':>6} {'uncompressed':>13}  layer")
    for package, layer_name, files, size in rows[:LISTED]:
        reporter.detail(f"  {package:<40} {files:>6} {human(size):>13}  {layer_name}")
    if len(rows) > LISTED:
        reporter.detail(f"  ... and {len(rows) - LISTED} more")


def load_image(
    store: ImageStore,
    path: Path,
    facts: ImageFacts,
    *,
    reporter: Reporter,
    repo_tag: str | None = None,
) -> str:
    """Load the tarball into the engine as ``repo_tag`` (default ``NAME:RUNTIME-ARCH``),
    sending only the layers the engine lacks; returns the tag. The loaded image's id must
    be the one built."""
    archive = open_image_archive(path)
    return _start_load(store, facts, archive.sized, reporter=reporter, repo_tag=repo_tag)()


def _start_load(
    store: ImageStore,
    facts: ImageFacts,
    read: BlobReader,
    *,
    reporter: Reporter,
    repo_tag: str | None = None,
) -> Callable[[], str]:
    """Ask the engine which layers it holds (and say what will be sent); the load itself is
    the call returned, which any thread may make."""
    tag = repo_tag or f"{facts.repository}:{facts.tag}"
    ours = [layer.diff_id for layer in facts.base.layers] + [l.diff_id for l in facts.layers]
    digests = [layer.digest for layer in facts.base.layers] + [l.blob.digest for l in facts.layers]
    held = 0
    for candidate in (facts.base.ref, tag):
        found = store.local_image(candidate)
        if found is not None:
            held = max(held, _common_prefix(ours, found.layers))
    reporter.step(
        f"Loading {tag} into the engine ({len(ours) - held} of {len(ours)} layers to send)"
    )

    def send(skip: int) -> None:
        store.load_image(
            docker_archive_stream(facts.id, digests, read, repo_tags=[tag], skip_layers=skip)
        )

    def run() -> str:
        try:
            send(held)
        except ContainerError:
            if not held:
                raise
            send(0)  # the engine dropped a layer since it was inspected: send everything
        loaded = store.local_image(tag)
        if loaded is None or loaded.id != facts.id:
            got = loaded.id if loaded else "nothing"
            msg = f"The engine loaded {tag} as {got}, not {facts.id}."
            raise ContainerError(msg, hint="Check `docker image inspect` and the engine's log.")
        return tag

    return run


def _common_prefix(ours: Sequence[str], theirs: Sequence[str]) -> int:
    count = 0
    for mine, other in zip(ours, theirs, strict=False):
        if mine != other:
            break
        count += 1
    return count
