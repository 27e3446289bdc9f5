"""Lambda's Python runtimes and architectures, as data, and the wheel tags each accepts."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import importlib.resources
import sys
from collections.abc import Iterable, Iterator

from packaging.tags import Tag, compatible_tags, cpython_tags

from nativebuild.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class Architecture(enum.StrEnum):
    X86_64 = "x86_64"
    ARM64 = "arm64"

    @property
    def machine(self) -> str:
        """The name in wheel tags and ``uname -m``."""
        return "x86_64" if self is Architecture.X86_64 else "aarch64"

    @property
    def docker_platform(self) -> str:
        return "linux/amd64" if self is Architecture.X86_64 else "linux/arm64"

    @classmethod
    def parse(cls, value: str) -> Architecture:
        aliases = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
        try:
            return cls(aliases[value.strip().lower()])
        except KeyError:
            msg = f"Unknown architecture {value!r}: Lambda supports x86_64 and arm64."
            raise ConfigError(msg) from None


@dataclasses.dataclass(frozen=True, kw_only=True, order=True)
class GlibcVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, value: str) -> GlibcVersion:
        parts = value.strip().split(".")
        if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
            msg = f"Invalid glibc version {value!r}: expected MAJOR.MINOR, for example 2.34."
            raise ConfigError(msg)
        return cls(major=int(parts[0]), minor=int(parts[1]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Runtime:
    """One row of the runtime table (``resources/runtimes.toml``)."""

    name: str
    python: str
    os: str
    glibc: GlibcVersion
    deprecated: datetime.date
    block_create: datetime.date | None = None  # None: not announced
    block_update: datetime.date | None = None
    build_image: str
    runtime_image: str

    @property
    def python_version(self) -> tuple[int, int]:
        major, minor = self.python.split(".")
        return int(major), int(minor)

    @property
    def abi(self) -> str:
        major, minor = self.python_version
        return f"cp{major}{minor}"

    @property
    def interpreter_path(self) -> str:
        """Where the runtime's Python lives in Lambda's images (and in our stand-ins)."""
        return f"/var/lang/bin/python{self.python}"


@functools.cache
def runtimes() -> dict[str, Runtime]:
    text = importlib.resources.files("nativebuild.resources").joinpath("runtimes.toml").read_text()
    table = tomllib.loads(text)["runtimes"]
    return {
        name: Runtime(
            name=name,
            python=row["python"],
            os=row["os"],
            glibc=GlibcVersion.parse(row["glibc"]),
            deprecated=_date(row["deprecated"]),
            block_create=_date(row["block-create"]) if "block-create" in row else None,
            block_update=_date(row["block-update"]) if "block-update" in row else None,
            build_image=row["build-image"],
            runtime_image=row["runtime-image"],
        )
        for name, row in table.items()
    }


def _date(value: object) -> datetime.date:
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    return datetime.date.fromisoformat(str(value))


# --- where each runtime stands in Lambda's deprecation schedule ----------------------------

# Lambda announces a deprecation 180 days ahead; builds warn from then on as well.
NOTICE_DAYS = 180


class LifecycleStage(enum.StrEnum):
    SUPPORTED = "supported"
    DEPRECATION_SOON = "deprecation-soon"  # within NOTICE_DAYS of its deprecation
    DEPRECATED = "deprecated"
    CREATE_BLOCKED = "create-blocked"  # deprecated, and no new functions
    UPDATE_BLOCKED = "update-blocked"  # deprecated, and existing functions cannot be updated


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuntimeLifecycle:
    """A runtime's deprecation dates and where it stands on ``today``; ``message`` says it."""

    runtime: str
    stage: LifecycleStage
    deprecated: datetime.date
    block_create: datetime.date | None
    block_update: datetime.date | None
    message: str

    @property
    def warns(self) -> bool:
        return self.stage is not LifecycleStage.SUPPORTED

    def to_json(self) -> dict[str, str | None]:
        def iso(day: datetime.date | None) -> str | None:
            return day.isoformat() if day is not None else None

        return {
            "runtime": self.runtime,
            "stage": self.stage.value,
            "deprecated": iso(self.deprecated),
            "block_create": iso(self.block_create),
            "block_update": iso(self.block_update),
            "message": self.message,
        }


def _stage(runtime: Runtime, today: datetime.date) -> LifecycleStage:
    if runtime.block_update is not None and today >= runtime.block_update:
        return LifecycleStage.UPDATE_BLOCKED
    if runtime.block_create is not None and today >= runtime.block_create:
        return LifecycleStage.CREATE_BLOCKED
    if today >= runtime.deprecated:
        return LifecycleStage.DEPRECATED
    if (runtime.deprecated - today).days <= NOTICE_DAYS:
        return LifecycleStage.DEPRECATION_SOON
    return LifecycleStage.SUPPORTED


def _blocks(runtime: Runtime) -> str:
    parts = []
    if runtime.block_create is not None:
        parts.append(f"function creation from {runtime.block_create}")
    if runtime.block_update is not None:
        parts.append(f"function updates from {runtime.block_update}")
    return f"; Lambda blocks {' and '.join(parts)}" if parts else ""


def utc_today() -> datetime.date:
    """The day a build runs on, for comparing with Lambda's dates (UTC, as AWS's are)."""
    return datetime.datetime.now(tz=datetime.UTC).date()


def successor() -> Runtime:
    """The runtime to move to: the newest Python among those supported longest."""
    return max(runtimes().values(), key=lambda r: (r.deprecated, r.python_version))


def lifecycle(runtime: Runtime, today: datetime.date) -> RuntimeLifecycle:
    """Where ``runtime`` stands on ``today`` (pure: the caller says what day it is)."""
    stage = _stage(runtime, today)
    if stage is LifecycleStage.SUPPORTED:
        message = f"{runtime.name} is supported; Lambda deprecates it on {runtime.deprecated}"
    else:
        if stage is LifecycleStage.DEPRECATION_SOON:
            days = (runtime.deprecated - today).days
            message = f"{runtime.name} will be deprecated on {runtime.deprecated} (in {days} days)"
        else:
            message = f"{runtime.name} is deprecated since {runtime.deprecated}"
        message += _blocks(runtime)
        newest = successor()
        if newest.name != runtime.name:
            message += f". Build for {newest.name} (supported until {newest.deprecated})."
    return RuntimeLifecycle(
        runtime=runtime.name,
        stage=stage,
        deprecated=runtime.deprecated,
        block_create=runtime.block_create,
        block_update=runtime.block_update,
        message=message,
    )


@functools.cache
def pinned_digests() -> dict[str, str]:
    text = importlib.resources.files("nativebuild.resources").joinpath("images.toml").read_text()
    digests: dict[str, str] = tomllib.loads(text).get("digests", {})
    return digests


def get_runtime(name: str) -> Runtime:
    table = runtimes()
    key = name.strip().lower()
    if key in table:
        return table[key]
    msg = f"Unknown runtime {name!r}. Lambda's Python runtimes are: {', '.join(table)}."
    raise ConfigError(msg)


def expand_image(template: str, arch: Architecture, runtime: str | None = None) -> str:
    """Fill ``{arch}`` (x86_64, arm64) and ``{runtime}`` (python3.12) in an image reference and
    pin it by digest when one is recorded."""
    if "{runtime}" in template:
        if runtime is None:
            msg = f"The image {template!r} names {{runtime}}, which is not known here."
            raise ConfigError(msg, hint="Give the image in full, without {runtime}.")
        template = template.replace("{runtime}", runtime)
    ref = template.replace("{arch}", arch.value)
    if "@" not in ref and ref in pinned_digests():
        return f"{ref}@{pinned_digests()[ref]}"
    return ref


# Legacy manylinux names (PEP 513/571/599) for the glibc versions PEP 600 maps them to.
_LEGACY_ALIASES = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
# glibc minors of uv's ``--python-platform`` manylinux triples (manylinux2014 is 2_17).
_UV_MANYLINUX_MINORS = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
# The oldest glibc each architecture has manylinux wheels for.
_OLDEST_GLIBC = {Architecture.X86_64: 5, Architecture.ARM64: 17}


def manylinux_platforms(arch: Architecture, glibc: GlibcVersion) -> list[str]:
    """Every manylinux platform tag a glibc ``glibc`` machine loads, newest first.

    pip and uv do not expand PEP 600 tags by themselves, so the list is written out in full,
    legacy aliases included (manylinux2014 = 2.17, manylinux2010 = 2.12, manylinux1 = 2.5).
    """
    if glibc.major != 2:
        msg = f"glibc {glibc} is not a glibc 2.x version."
        raise ConfigError(msg)
    platforms = []
    for minor in range(glibc.minor, _OLDEST_GLIBC[arch] - 1, -1):
        platforms.append(f"manylinux_2_{minor}_{arch.machine}")
        legacy = _LEGACY_ALIASES.get((2, minor))
        if legacy is not None and not (legacy != "manylinux2014" and arch is Architecture.ARM64):
            platforms.append(f"{legacy}_{arch.machine}")
    return platforms


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    """What an archive is built for: a runtime, an architecture, and the images to use."""

    runtime: Runtime
    arch: Architecture
    glibc: GlibcVersion
    build_image: str
    runtime_image: str

    @property
    def platform_tags(self) -> list[str]:
        return manylinux_platforms(self.arch, self.glibc)

    def supported_tags(self) -> Iterator[Tag]:
        """Wheel tags the target loads, most preferred first (as pip orders them)."""
        version = self.runtime.python_version
        platforms = self.platform_tags
        yield from cpython_tags(
            version, abis=[self.runtime.abi, "abi3", "none"], platforms=platforms
        )
        yield from compatible_tags(version, interpreter=self.runtime.abi, platforms=platforms)

    @functools.cached_property
    def tag_priority(self) -> dict[Tag, int]:
        return {tag: rank for rank, tag in enumerate(self.supported_tags())}

    def accepts(self, tags: frozenset[Tag]) -> bool:
        priority = self.tag_priority
        return any(tag in priority for tag in tags)

    def describe(self) -> str:
        return f"{self.runtime.name} {self.arch.value} (glibc {self.glibc})"

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values as Lambda's runtime has them, whatever the host is."""
        major, minor = self.runtime.python_version
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{major}.{minor}.0",
            "os_name": "posix",
            "platform_machine": self.arch.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": f"{major}.{minor}.0",
            "python_version": f"{major}.{minor}",
            "sys_platform": "linux",
        }

    def uv_platform(self) -> str | None:
        """uv's ``--python-platform`` for this target: the newest manylinux it knows that the
        target's glibc loads. uv has no 2_18…2_27 triples, so Amazon Linux 2 (2.26) resolves
        as manylinux_2_17; nativebuild then picks files against the exact tag list."""
        if self.glibc.major != 2:
            return None
        known = [m for m in _UV_MANYLINUX_MINORS if m <= self.glibc.minor]
        if not known:
            return None
        return f"{self.arch.machine}-manylinux_2_{max(known)}"


def deprecation_notices(
    names: Iterable[str], today: datetime.date | None = None
) -> tuple[RuntimeLifecycle, ...]:
    """The notices to warn of for runtimes ``names`` (each once, in order): deprecated, or
    soon to be, on ``today`` (default: the date today)."""
    day = today or utc_today()
    notices = (lifecycle(get_runtime(name), day) for name in dict.fromkeys(names))
    return tuple(notice for notice in notices if notice.warns)
