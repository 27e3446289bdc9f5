"""nativebuild's own build images: a runtime image plus a toolchain, keyed by recipe and base.

The recipe is the content of ``build-images/`` (Dockerfile, install script, tool pins). An
image's tag is ``nativebuild/build-python3.X:<hash>-<arch>``, where the hash covers the recipe,
the base image's digest, the runtime and the architecture: change any of them and the tag
changes, so an image is built once and reused until its inputs move. Decisions are pure
functions over records; :func:`build_image` and :func:`ensure_build_image` are the executors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from nativebuild.errors import ConfigError, NativebuildError
from nativebuild.index.pip_config import IndexSettings
from nativebuild.targets import Architecture, Runtime, Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from nativebuild.engine.runner import ImageInfo
    from nativebuild.reporting import Reporter

RECIPE_FILES = ("Dockerfile", "install-toolchain.sh", "tools-requirements.txt")
REPOSITORY_PREFIX = "nativebuild/build-python"
LABEL_RECIPE = "org.nativebuild.recipe"
LABEL_BASE = "org.nativebuild.base"
LABEL_BASE_DIGEST = "org.nativebuild.base-digest"
LABEL_RUNTIME = "org.nativebuild.runtime"
LABEL_ARCH = "org.nativebuild.arch"
HASH_LENGTH = 12
CA_BUNDLE_NAME = "ca-bundle.crt"
DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
# Build arguments that only reach the throw-away tools stage; proxies are Docker's predefined
# build arguments, which never enter an image's history.
_NETWORK_ARGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")


@runtime_checkable
class ImageRunner(Protocol):
    """What image work needs from a container engine (:class:`DockerRunner` has it all)."""

    def image_id(self, image: str, *, platform: str | None) -> str: ...

    def local_image(self, image: str) -> ImageInfo | None: ...

    def list_images(self, prefix: str) -> list[ImageInfo]: ...

    def registry_digest(self, image: str) -> str: ...

    def build_image(
        self,
        *,
        context_dir: Path,
        tag: str,
        buildargs: Mapping[str, str],
        platform: str | None,
        reporter: Reporter,
        secrets: Iterable[str] = (),
    ) -> str: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """The files an image is built from, as bytes (name, content), in a fixed order."""

    files: tuple[tuple[str, bytes], ...]

    @classmethod
    def load(cls, directory: Path | None = None) -> Recipe:
        directory = directory if directory is not None else recipe_dir()
        try:
            return cls(
                files=tuple((name, (directory / name).read_bytes()) for name in RECIPE_FILES)
            )
        except OSError as err:
            msg = f"Cannot read the build image recipe in {directory}: {err}"
            raise ConfigError(
                msg, hint="Reinstall nativebuild: its build-images/ are incomplete."
            ) from err

    def digest(self) -> str:
        hasher = hashlib.sha256()
        for name, content in self.files:
            hasher.update(f"{name}\0{len(content)}\0".encode())
            hasher.update(content)
        return hasher.hexdigest()


def recipe_dir() -> Path:
    """``build-images/``: beside the resources in an installed wheel (setup.py copies the
    checkout's there, byte for byte, so the recipe hashes the same), else at the top of the
    source checkout (a checkout, or an editable install of one)."""
    packaged = Path(str(importlib.resources.files("nativebuild.resources"))) / "build-images"
    checkout = Path(__file__).resolve().parents[2] / "build-images"
    for candidate in (packaged, checkout):
        if (candidate / RECIPE_FILES[0]).is_file():
            return candidate
    msg = f"nativebuild's build image recipe is missing (looked in {packaged} and {checkout})."
    raise ConfigError(
        msg, hint="Reinstall nativebuild, or pass --build-image to use another image."
    )


def recipe_hash(recipe: Recipe, *, base_digest: str, runtime: str, arch: Architecture) -> str:
    fields = {
        "recipe": recipe.digest(),
        "base": base_digest,
        "runtime": runtime,
        "arch": arch.value,
    }
    encoded = json.dumps(fields, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:HASH_LENGTH]


def image_tag(runtime: Runtime, arch: Architecture, recipe: str) -> str:
    return f"{REPOSITORY_PREFIX}{runtime.python}:{recipe}-{arch.value}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageBuild:
    """One image to build: from which base, for which runtime and architecture, under which tag."""

    runtime: Runtime
    arch: Architecture
    base: str
    base_digest: str
    recipe: str
    tag: str

    @property
    def platform(self) -> str:
        return self.arch.docker_platform

    def buildargs(self) -> dict[str, str]:
        return {
            "BASE": self.base,
            "BASE_DIGEST": self.base_digest,
            "PYTHON": self.runtime.interpreter_path,
            "RECIPE": self.recipe,
            "RUNTIME": self.runtime.name,
            "ARCH": self.arch.value,
        }

    def describe(self) -> str:
        return f"{self.tag} (FROM {self.base}, {self.platform})"


def plan_build(
    recipe: Recipe, *, runtime: Runtime, arch: Architecture, base: str, base_digest: str
) -> ImageBuild:
    digest = recipe_hash(recipe, base_digest=base_digest, runtime=runtime.name, arch=arch)
    return ImageBuild(
        runtime=runtime,
        arch=arch,
        base=base,
        base_digest=base_digest,
        recipe=digest,
        tag=image_tag(runtime, arch, digest),
    )


def network_buildargs(index: IndexSettings) -> dict[str, str]:
    """Index and proxy settings for the tools stage (the CA bundle travels as a file)."""
    forwarded = index.container_environment()
    args = {name: forwarded[name] for name in _NETWORK_ARGS if name in forwarded}
    args.update(dict(index.proxies))
    return args


def write_context(recipe: Recipe, dest: Path, *, ca_bundle: Path | None) -> None:
    """The build context: the recipe, and the CA bundle (empty when there is none)."""
    for name, content in recipe.files:
        (dest / name).write_bytes(content)
    (dest / "install-toolchain.sh").chmod(0o755)
    write_ca_bundle(dest, ca_bundle)


def write_ca_bundle(dest: Path, ca_bundle: Path | None) -> None:
    """``ca-bundle.crt`` of a build context: the host's CA bundle, or empty when there is none
    (the Dockerfiles COPY it either way)."""
    bundle = dest / CA_BUNDLE_NAME
    if ca_bundle is not None:
        shutil.copyfile(ca_bundle, bundle)
    else:
        bundle.write_bytes(b"")


def base_digest(base: str, runner: ImageRunner, *, platform: str) -> str:
    """A pinned reference's digest, else the id of the local (or pulled) image."""
    if "@sha256:" in base:
        return base.rsplit("@", 1)[1]
    return runner.image_id(base, platform=platform)


def build_image(
    plan: ImageBuild,
    *,
    runner: ImageRunner,
    reporter: Reporter,
    recipe: Recipe,
    index: IndexSettings | None = None,
) -> str:
    """Build and tag ``plan``; returns the image id. The log streams through ``reporter``."""
    index = index if index is not None else IndexSettings()
    network = network_buildargs(index)
    reporter.step(f"Building {plan.describe()}")
    with tempfile.TemporaryDirectory(prefix="nativebuild-image-") as tmp:
        context_dir = Path(tmp)
        write_context(recipe, context_dir, ca_bundle=index.ca_bundle)
        return runner.build_image(
            context_dir=context_dir,
            tag=plan.tag,
            buildargs={**plan.buildargs(), **network},
            platform=plan.platform,
            reporter=reporter,
            secrets=[value for value in network.values() if "@" in value],  # user:pass@host
        )


def ensure_build_image(
    target: Target,
    runner: ImageRunner,
    reporter: Reporter,
    *,
    index: IndexSettings | None = None,
    recipe: Recipe | None = None,
    force: bool = False,
) -> str:
    """nativebuild's build image for ``target`` (FROM its runtime image): the tag of the local
    one when it exists, else built now (minutes, once per recipe and base; ``force``: always)."""
    recipe = recipe if recipe is not None else Recipe.load()
    platform = target.arch.docker_platform
    digest = base_digest(target.runtime_image, runner, platform=platform)
    plan = plan_build(
        recipe,
        runtime=target.runtime,
        arch=target.arch,
        base=target.runtime_image,
        base_digest=digest,
    )
    if not force and runner.local_image(plan.tag) is not None:
        return plan.tag
    reporter.detail(f"First use of the build image for {target.describe()}: building {plan.tag}")
    build_image(plan, runner=runner, reporter=reporter, recipe=recipe, index=index)
    return plan.tag


@dataclasses.dataclass(frozen=True, kw_only=True)
class ListedImage:
    info: ImageInfo
    runtime: str
    arch: str
    base: str
    base_digest: str
    recipe: str
    current: bool  # built from today's recipe (else a leftover: `docker image rm` it)

    def to_json(self) -> dict[str, object]:
        return {
            "tags": list(self.info.tags),
            "id": self.info.id,
            "repo_digests": list(self.info.repo_digests),
            "runtime": self.runtime,
            "arch": self.arch,
            "base": self.base,
            "base_digest": self.base_digest,
            "recipe": self.recipe,
            "current": self.current,
            "created": self.info.created,
            "size": self.info.size,
        }


def describe_images(infos: Sequence[ImageInfo], recipe: Recipe) -> list[ListedImage]:
    """nativebuild's images among ``infos``, each marked current or stale, sorted by tag."""
    listed = []
    for info in infos:
        labels = info.labels
        if LABEL_RECIPE not in labels:
            continue
        runtime, arch = labels.get(LABEL_RUNTIME, ""), labels.get(LABEL_ARCH, "")
        digest = labels.get(LABEL_BASE_DIGEST, "")
        try:
            expected = recipe_hash(
                recipe, base_digest=digest, runtime=runtime, arch=Architecture.parse(arch)
            )
        except ConfigError:
            expected = ""
        listed.append(
            ListedImage(
                info=info,
                runtime=runtime,
                arch=arch,
                base=labels.get(LABEL_BASE, ""),
                base_digest=digest,
                recipe=labels[LABEL_RECIPE],
                current=expected == labels[LABEL_RECIPE],
            )
        )
    return sorted(listed, key=lambda item: (item.info.tags or ("",))[0])


# --- pinning -------------------------------------------------------------------------------


def images_toml_path() -> Path:
    return Path(str(importlib.resources.files("nativebuild.resources"))) / "images.toml"


def pin_references(runtimes: Iterable[Runtime], archs: Iterable[Architecture]) -> list[str]:
    """The default image references to pin: each runtime's runtime and build image, per arch."""
    refs: dict[str, None] = {}
    arch_list = list(archs)
    for runtime in runtimes:
        for arch in arch_list:
            for template in (runtime.runtime_image, runtime.build_image):
                refs[template.replace("{arch}", arch.value)] = None
    return list(refs)


def read_digests(text: str) -> dict[str, str]:
    try:
        table = tomllib.loads(text).get("digests", {})
    except tomllib.TOMLDecodeError as err:
        msg = f"images.toml is not valid TOML: {err}"
        raise ConfigError(msg) from err
    return {str(k): str(v) for k, v in table.items()}


def render_digests(text: str, digests: Mapping[str, str]) -> str:
    """``text`` with its ``[digests]`` table replaced by ``digests`` (sorted); the comments
    above the table are kept. Refuses a file with anything but the table after it."""
    lines = text.splitlines()
    if "[digests]" in (line.strip() for line in lines):
        at = [line.strip() for line in lines].index("[digests]")
        head, tail = lines[: at + 1], lines[at + 1 :]
    else:
        head, tail = [*lines, "[digests]"], []
    for line in tail:
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", '"')):
            msg = f"images.toml has content after [digests] that `images pin` cannot keep: {line!r}"
            raise ConfigError(msg, hint="Move it above the [digests] table.")
    for ref, digest in digests.items():
        if not DIGEST_PATTERN.match(digest):
            msg = f"Refusing to pin {ref} to {digest!r}: not a sha256 digest."
            raise ConfigError(msg)
    body = [f"{json.dumps(ref)} = {json.dumps(digests[ref])}" for ref in sorted(digests)]
    return "\n".join([*head, *body]) + "\n"


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclasses.dataclass(frozen=True, kw_only=True)
class PinResult:
    digests: dict[str, str]  # every reference resolved now
    changed: tuple[str, ...]
    failed: dict[str, str]  # reference -> why it could not be resolved (its old pin stays)


def pin(refs: Sequence[str], *, runner: ImageRunner, path: Path, reporter: Reporter) -> PinResult:
    """Ask the registry for each reference's digest and record them in ``path`` (atomically)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    current = read_digests(text)
    found: dict[str, str] = {}
    failed: dict[str, str] = {}
    for ref in refs:
        reporter.detail(f"Resolving {ref}")
        try:
            found[ref] = runner.registry_digest(ref)
        except NativebuildError as err:
            failed[ref] = str(err)
    changed = tuple(ref for ref, digest in found.items() if current.get(ref) != digest)
    if changed:
        write_atomic(path, render_digests(text, {**current, **found}))
    return PinResult(digests=found, changed=changed, failed=failed)
