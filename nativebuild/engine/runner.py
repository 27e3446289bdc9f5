"""What a container engine is asked to do, and the Protocol every engine implements.

The pipeline depends on :class:`ContainerRunner` and these records only; the Docker-API
implementation is :class:`nativebuild.engine.docker.DockerRunner` (Docker, Podman, remote
engines), and the tests' fakes implement the same Protocol.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nativebuild.reporting import Reporter
    from nativebuild.targets import Architecture

LOG_TAIL_LINES = 60
# Image "Architecture" values that mean the same machine.
_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mount:
    source: Path
    target: str
    read_only: bool = True
    optional: bool = False  # only a speed-up (a download cache): left out on remote engines


def read_only_mounts(files: Iterable[tuple[Path, str]]) -> tuple[Mount, ...]:
    """Host files mounted read-only at the given paths inside the container."""
    return tuple(Mount(source=source, target=target) for source, target in files)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    image: str
    command: tuple[str, ...]  # exec form, never through a shell
    description: str  # "compile markupsafe 2.1.5", for messages
    platform: str | None = None  # "linux/amd64" | "linux/arm64"
    # () clears the image's entrypoint: Lambda images have /lambda-entrypoint.sh.
    entrypoint: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()  # may hold credentials: never log values
    working_dir: str | None = None
    user: str | None = None  # None: the invoking uid:gid, so bind-mounted outputs are not root's
    network_mode: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContainerResult:
    exit_code: int
    log_tail: tuple[str, ...]  # last LOG_TAIL_LINES lines of stdout and stderr together
    duration_s: float


class ContainerRunner(Protocol):
    containers_started: int

    def check_engine(self) -> None: ...

    def image_id(self, image: str, *, platform: str | None) -> str: ...

    def engine_architecture(self) -> str: ...

    def cancel(self) -> None: ...

    def run(
        self, spec: ContainerSpec, *, reporter: Reporter, verbose: bool = False
    ) -> ContainerResult: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """A local image, as ``docker image inspect`` describes it."""

    id: str
    tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    labels: Mapping[str, str]
    architecture: str
    created: str
    size: int
    layers: tuple[str, ...] = ()  # RootFS.Layers: the diff_ids of its layers, in order

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, object]) -> ImageInfo:
        config = attrs.get("Config")
        labels = config.get("Labels") if isinstance(config, dict) else None
        tags, digests, size = attrs.get("RepoTags"), attrs.get("RepoDigests"), attrs.get("Size")
        rootfs = attrs.get("RootFS")
        layers = rootfs.get("Layers") if isinstance(rootfs, dict) else None
        return cls(
            id=str(attrs.get("Id", "")),
            tags=tuple(map(str, tags)) if isinstance(tags, list) else (),
            repo_digests=tuple(map(str, digests)) if isinstance(digests, list) else (),
            labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            architecture=str(attrs.get("Architecture", "")),
            created=str(attrs.get("Created", "")),
            size=size if isinstance(size, int) else 0,
            layers=tuple(map(str, layers)) if isinstance(layers, list) else (),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class EngineInfo:
    version: str
    api_version: str
    architecture: str  # the engine's machine: x86_64 | aarch64
    root_dir: str  # DockerRootDir, a path on the engine's machine
    product: str = "Docker"  # what serves the Docker API: Docker, or Podman

    @classmethod
    def from_api(
        cls, version: Mapping[str, object], info: Mapping[str, object], *, api_version: str
    ) -> EngineInfo:
        """From the engine's ``/version`` and ``/info`` answers."""
        machine = str(info.get("Architecture", ""))
        return cls(
            version=str(version.get("Version", "")),
            api_version=api_version,
            architecture={"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine),
            root_dir=str(info.get("DockerRootDir", "")),
            product=engine_product(version),
        )


def engine_product(version: Mapping[str, object]) -> str:
    """``Podman`` when Podman's Docker-compatible service answers (it names itself among the
    ``/version`` components, "Podman Engine"), else ``Docker``."""
    components = version.get("Components")
    names = [
        str(item.get("Name", ""))
        for item in (components if isinstance(components, list) else [])
        if isinstance(item, dict)
    ]
    platform = version.get("Platform")
    names.append(str(platform.get("Name", "")) if isinstance(platform, dict) else "")
    return "Podman" if any("podman" in name.lower() for name in names) else "Docker"


def host_user() -> str | None:
    """The invoking ``uid:gid``, or None where the OS has no such thing (Windows)."""
    if not hasattr(os, "getuid"):
        return None
    return f"{os.getuid()}:{os.getgid()}"


def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines of a byte stream whose chunks split lines (and UTF-8 sequences) anywhere."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    partial: list[str] = []
    for chunk in chunks:
        pieces = decoder.decode(chunk).split("\n")
        if len(pieces) > 1:
            yield ("".join(partial) + pieces[0]).removesuffix("\r")
            for piece in pieces[1:-1]:
                yield piece.removesuffix("\r")
            partial = []
        partial.append(pieces[-1])
    rest = "".join(partial) + decoder.decode(b"", final=True)
    if rest:
        yield rest.removesuffix("\r")


def architecture_mismatch(image: str, architecture: str, platform: str | None) -> str | None:
    """Why a local image cannot serve ``platform``, or None when it can."""
    if platform is None or "/" not in platform:
        return None
    wanted = platform.split("/")[1]
    actual = _ARCH_ALIASES.get(architecture, architecture)
    if not actual or _ARCH_ALIASES.get(wanted, wanted) == actual:
        return None
    return (
        f"Image {image!r} exists locally only for linux/{actual}, but {platform} is needed: "
        "the classic image store keeps one architecture per name:tag."
    )


# A builder that names this is the engine of DOCKER_HOST (the one every other container uses),
# as the docker CLI calls it: ``--builder x86_64=default --builder x86_64=ssh://host``.
DEFAULT_ENGINE = "default"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Builder:
    """An engine that compiles one architecture (``--builder arm64=ssh://host``); several for
    one architecture form a pool."""

    arch: Architecture
    # A Docker host URL (ssh://, tcp://, unix://), a docker context name, or DEFAULT_ENGINE
    host: str
    network: str | None = None  # network mode for its containers ("host" on some setups)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Engine:
    """One engine of an architecture's pool: its name (in messages and ``--json``) and runner."""

    name: str
    runner: ContainerRunner = dataclasses.field(compare=False)
