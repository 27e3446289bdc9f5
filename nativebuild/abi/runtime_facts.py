"""What a runtime image gives a binary: its shared libraries and symbol-version ceilings.

Two sources: :func:`known_facts`, data for Lambda's real images (``resources/runtime_libs.toml``),
and :func:`probe_facts`, which runs ``drivers/runtime_probe.py`` inside an image and caches the answer
by image id, so custom and stand-in images are checked against what they really hold.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nativebuild.abi.elf import parse_version
from nativebuild.cache.keys import build_key
from nativebuild.drivers import script
from nativebuild.engine.runner import ContainerSpec, Mount
from nativebuild.errors import ConfigError, ContainerError
from nativebuild.reporting import TaskKind, track
from nativebuild.targets import GlibcVersion, Target, expand_image

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from nativebuild.cache.local import LocalCache
    from nativebuild.engine.runner import ContainerRunner
    from nativebuild.reporting import Reporter

__all__ = [
    "CHECKED_PREFIXES",
    "RuntimeFacts",
    "facts_for_target",
    "facts_from_probe",
    "is_custom_runtime",
    "known_facts",
    "library_hints",
    "probe_facts",
]

PROBE_SCRIPT = script("runtime_probe")
PROBE_IN_CONTAINER = "/nativebuild/probe.py"
OUT_DIR = "/nativebuild/out"
FACTS_KIND = "runtime-facts"
# Bump when the probe or the document changes, so cached answers are recomputed.
PROBE_VERSION = 1
# Version families whose ceiling the check enforces (lambda-facts §6).
CHECKED_PREFIXES = ("GLIBC", "GLIBCXX", "CXXABI", "GCC")
# The library that defines each family, for messages and for the probe's ceilings.
PREFIX_LIBRARY = {
    "GLIBC": "libc.so.6",
    "GLIBCXX": "libstdc++.so.6",
    "CXXABI": "libstdc++.so.6",
    "GCC": "libgcc_s.so.1",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuntimeFacts:
    """A runtime image as the loader sees it."""

    description: str  # "Amazon Linux 2023 for python3.12 (nativebuild's data)", "image X (...)"
    source: Literal["data", "probe"]
    machine: str  # x86_64 | aarch64
    glibc: GlibcVersion
    ceilings: Mapping[str, tuple[int, ...]]  # "GLIBC" -> (2, 34): the newest version defined
    libraries: Mapping[str, tuple[str, ...]]  # file name -> the directories that hold it
    # File name -> every version it defines. Probed images only: data has ceilings alone.
    versions: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    ld_library_path: tuple[str, ...] = ()
    default_dirs: tuple[str, ...] = ("/lib64", "/usr/lib64")

    def ceiling_text(self, prefix: str) -> str:
        ceiling = self.ceilings.get(prefix)
        if ceiling is None:
            return f"no {prefix} versions at all"
        return f"{prefix}_{'.'.join(map(str, ceiling))}"

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "source": self.source,
            "machine": self.machine,
            "glibc": str(self.glibc),
            "ceilings": {k: ".".join(map(str, v)) for k, v in sorted(self.ceilings.items())},
            "libraries": {k: list(v) for k, v in sorted(self.libraries.items())},
            "versions": {k: sorted(v) for k, v in sorted(self.versions.items())},
            "ld_library_path": list(self.ld_library_path),
            "default_dirs": list(self.default_dirs),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> RuntimeFacts:
        source = document["source"]
        if source not in ("data", "probe"):
            msg = f"Unknown runtime facts source {source!r}."
            raise ValueError(msg)
        return cls(
            description=str(document["description"]),
            source=source,
            machine=str(document["machine"]),
            glibc=GlibcVersion.parse(document["glibc"]),
            ceilings={k: _numbers(v) for k, v in document["ceilings"].items()},
            libraries={k: tuple(v) for k, v in document["libraries"].items()},
            versions={k: frozenset(v) for k, v in document["versions"].items()},
            ld_library_path=tuple(document["ld_library_path"]),
            default_dirs=tuple(document["default_dirs"]),
        )


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@functools.cache
def _data() -> dict[str, Any]:
    resource = importlib.resources.files("nativebuild.resources").joinpath("runtime_libs.toml")
    return tomllib.loads(resource.read_text(encoding="utf-8"))


def library_hints() -> dict[str, str]:
    """Advice per missing library name (libGL.so.1 → use the headless variant)."""
    hints: dict[str, str] = _data().get("hints", {})
    return hints


def known_facts(target: Target) -> RuntimeFacts:
    """Lambda's real runtime image for ``target``, from the data file (no container)."""
    table = _data()["os"].get(target.runtime.os)
    if table is None:
        msg = f"No runtime library data for {target.runtime.os!r} ({target.runtime.name})."
        raise ConfigError(msg, hint="Probe the runtime image instead (nativebuild verify).")
    machine = target.arch.machine
    lib_dirs = tuple(table["default-dirs"])
    libraries: dict[str, tuple[str, ...]] = dict.fromkeys(
        [*table["libraries"], *table[f"{machine}-libraries"]], lib_dirs
    )
    for name in [*table["var-lang-lib"], f"libpython{target.runtime.python}.so.1.0"]:
        libraries[name] = ("/var/lang/lib", *libraries.get(name, ()))
    ceilings = {k: _numbers(v) for k, v in table["ceilings"].items()}
    # A --glibc given for the target (a custom image's ceiling) wins over the data.
    ceilings["GLIBC"] = (target.glibc.major, target.glibc.minor)
    return RuntimeFacts(
        description=f"{target.runtime.os} for {target.runtime.name} (nativebuild's data)",
        source="data",
        machine=machine,
        glibc=target.glibc,
        ceilings=ceilings,
        libraries=libraries,
        ld_library_path=tuple(table["ld-library-path"]),
        default_dirs=lib_dirs,
    )


def facts_from_probe(document: Mapping[str, Any], *, image: str) -> RuntimeFacts:
    """Facts from what ``drivers/runtime_probe.py`` wrote; ceilings are the newest versions defined."""
    versions = {name: frozenset(found) for name, found in document["versions"].items()}
    ceilings: dict[str, tuple[int, ...]] = {}
    for prefix in CHECKED_PREFIXES:
        numbers = [
            parsed[1]
            for name in versions.get(PREFIX_LIBRARY[prefix], ())
            if (parsed := parse_version(name)) is not None and parsed[0] == prefix
        ]
        if numbers:
            ceilings[prefix] = max(numbers)
    glibc_text = document.get("glibc") or ""
    if glibc_text:
        glibc = GlibcVersion.parse(glibc_text)
    elif "GLIBC" in ceilings:
        glibc = GlibcVersion(major=ceilings["GLIBC"][0], minor=ceilings["GLIBC"][1])
    else:
        msg = f"Image {image} has no glibc (is it musl-based?): Lambda's runtimes all use glibc."
        raise ContainerError(
            msg, hint="Use an image based on Amazon Linux or another glibc distro."
        )
    os_name = document.get("os") or "unknown OS"
    return RuntimeFacts(
        description=f"image {image} ({os_name}, glibc {glibc}, probed)",
        source="probe",
        machine=str(document["machine"]),
        glibc=glibc,
        ceilings=ceilings,
        libraries={name: tuple(dirs) for name, dirs in document["libraries"].items()},
        versions=versions,
        ld_library_path=tuple(document["ld_library_path"]),
        default_dirs=("/lib64", "/usr/lib64", "/lib", "/usr/lib"),
    )


def probe_spec(image: str, *, platform: str, interpreter: str, out_dir: Path) -> ContainerSpec:
    return ContainerSpec(
        image=image,
        command=(interpreter, PROBE_IN_CONTAINER, f"{OUT_DIR}/facts.json"),
        description=f"probe the libraries of {image}",
        platform=platform,
        mounts=(
            Mount(source=PROBE_SCRIPT, target=PROBE_IN_CONTAINER),
            Mount(source=out_dir, target=OUT_DIR, read_only=False),
        ),
        network_mode="none",
    )


def probe_facts(
    image: str,
    *,
    platform: str,
    interpreter: str,
    runner: ContainerRunner,
    cache: LocalCache,
    reporter: Reporter,
    verbose: bool = False,
    before_container: Callable[[], object] | None = None,
    arch: str | None = None,
    emulated: Callable[[], bool] | None = None,
) -> RuntimeFacts:
    """Run the probe in ``image`` (once per image id: the answer is cached).
    ``before_container`` runs only when a container is about to start (the emulation check);
    ``arch`` and ``emulated`` (asked after it) only describe the probe's progress task."""
    image_id = runner.image_id(image, platform=platform)
    key = build_key(
        {"kind": FACTS_KIND, "image": image_id, "platform": platform, "probe": str(PROBE_VERSION)}
    )
    cached = cache.get_json(FACTS_KIND, key)
    if cached is not None:
        try:
            return RuntimeFacts.from_json(cached)
        except (KeyError, TypeError, ValueError, ConfigError):
            reporter.warning(f"Ignoring unreadable cached runtime facts of {image}.")
    if before_container is not None:
        before_container()
    reporter.step(f"Probing the libraries of {image}")
    with cache.scratch_dir() as work:
        spec = probe_spec(image, platform=platform, interpreter=interpreter, out_dir=work)
        label = f"the libraries of {image}"
        under_emulation = emulated() if emulated is not None else False
        with track(reporter, TaskKind.PROBE, label, arch=arch, emulated=under_emulation):
            result = runner.run(spec, reporter=reporter, verbose=verbose)
        out = work / "facts.json"
        if result.exit_code != 0 or not out.is_file():
            tail = "\n".join(result.log_tail[-20:])
            msg = (
                f"Cannot probe the libraries of {image}: {interpreter} exited with "
                f"{result.exit_code}.\n{tail}"
            )
            hint = f"The image must have the runtime's Python at {interpreter}."
            raise ContainerError(msg, hint=hint)
        document = json.loads(out.read_text(encoding="utf-8"))
    facts = facts_from_probe(document, image=image)
    cache.put_json(FACTS_KIND, key, facts.to_json())
    return facts


def is_custom_runtime(target: Target) -> bool:
    """Whether ``target``'s runtime image is another than Lambda's own (which data describes)."""
    default = expand_image(target.runtime.runtime_image, target.arch, target.runtime.name)
    return target.runtime_image != default


def facts_for_target(
    target: Target,
    *,
    runner: ContainerRunner | None,
    cache: LocalCache | None,
    reporter: Reporter,
    probe: bool | None = None,
    verbose: bool = False,
    before_container: Callable[[], object] | None = None,
    emulated: Callable[[], bool] | None = None,
) -> RuntimeFacts:
    """The facts to check ``target``'s archive against.

    ``probe=None`` probes only a custom runtime image (the real ones are described by data,
    and need no container); True always probes; False never does.
    """
    if probe is None:
        probe = is_custom_runtime(target)
    if not probe:
        return known_facts(target)
    if runner is None or cache is None:
        msg = f"Probing {target.runtime_image} needs a container engine and a cache."
        raise ConfigError(msg)
    return probe_facts(
        target.runtime_image,
        platform=target.arch.docker_platform,
        interpreter=target.runtime.interpreter_path,
        runner=runner,
        cache=cache,
        reporter=reporter,
        verbose=verbose,
        before_container=before_container,
        arch=target.arch.value,
        emulated=emulated,
    )
