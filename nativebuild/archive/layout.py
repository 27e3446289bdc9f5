"""What archives a build writes, and where files go in each: pure decisions, no I/O.

Kinds:

- ``function``: one archive, dependencies at the root beside the source (``/var/task``).
- ``layer``: one layer archive. Importable files go under ``python/`` (or
  ``python/lib/python3.X/site-packages/``), which Lambda puts on ``sys.path`` from ``/opt``;
  scripts, data and headers stay at the layer root, so a package's native libraries in
  ``lib/`` land in ``/opt/lib``, on ``LD_LIBRARY_PATH``. ``--src`` goes beside the packages.
- ``split``: both in one run, from one resolution: a layer with the dependencies and a
  code-only function archive. With ``[[tool.nativebuild.functions]]``, several functions share
  that one layer, built from the union of their requirements.
- ``image``: a container image on top of the runtime image, the function's files at
  ``/var/task`` as in a function archive, in layers (:mod:`nativebuild.archive.image`).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from nativebuild.errors import ConfigError, ResolutionError
from nativebuild.inputs.requirement_line import RequirementLine
from nativebuild.inputs.requirements import RequirementSet

FUNCTION_ROOT = "/var/task"  # where Lambda extracts a function archive
LAYER_ROOT = "/opt"  # where Lambda extracts every layer
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Kind(enum.StrEnum):
    FUNCTION = "function"
    LAYER = "layer"
    SPLIT = "split"
    IMAGE = "image"

    @classmethod
    def parse(cls, value: str, origin: str) -> Kind:
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = ", ".join(k.value for k in cls)
            msg = f"kind in {origin} must be one of {choices}, not {value!r}."
            raise ConfigError(msg) from None


class LayerLayout(enum.StrEnum):
    PYTHON = "python"  # python/: found by every Python runtime
    SITE_PACKAGES = "site-packages"  # python/lib/python3.X/site-packages/: only by 3.X

    @classmethod
    def parse(cls, value: str, origin: str) -> LayerLayout:
        try:
            return cls(value.strip().lower())
        except ValueError:
            msg = f"layer-layout in {origin} must be python or site-packages, not {value!r}."
            raise ConfigError(msg) from None

    def site_prefix(self, python: str) -> str:
        if self is LayerLayout.PYTHON:
            return "python/"
        return f"python/lib/python{python}/site-packages/"


@dataclasses.dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """One ``[[tool.nativebuild.functions]]`` table."""

    name: str
    requirements: Path
    src: Path | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchiveSpec:
    """One archive a target's build writes."""

    kind: str  # "function" | "layer" | "image": what Lambda takes it as
    name: str  # the function's (or layer's) name
    filename: str
    src: Path | None
    dependencies: bool  # whether the resolved wheels go in
    site_prefix: str  # where importable wheel files go
    src_prefix: str  # where the source tree goes
    mount: str  # where Lambda extracts it: /var/task or /opt
    layers: tuple[str, ...] = ()  # a function's layers from the same build, by filename
    src_excludes: tuple[str, ...] = ()  # name patterns left out of src (SAM's, for sam build)
    src_skip_dirs: tuple[Path, ...] = ()  # folders left out of src (a build dir inside it)

    @property
    def is_layer(self) -> bool:
        return self.kind == "layer"


def layer_name(name: str) -> str:
    return f"{name}-layer"


def archive_specs(
    *,
    kind: Kind,
    name: str,
    src: Path | None,
    functions: Sequence[FunctionSpec],
    layer_layout: LayerLayout,
    runtime: str,
    python: str,
    arch: str,
) -> tuple[ArchiveSpec, ...]:
    """The archives one target's build writes, layers first."""
    suffix = f"-{runtime}-{arch}.zip"
    site = layer_layout.site_prefix(python)
    layer = ArchiveSpec(
        kind="layer", name=layer_name(name), filename=f"{layer_name(name)}{suffix}",
        src=src if kind is Kind.LAYER and not functions else None, dependencies=True,
        site_prefix=site, src_prefix=site, mount=LAYER_ROOT,
    )  # fmt: skip
    if kind in (Kind.FUNCTION, Kind.IMAGE):
        if functions:
            msg = f'Several functions share one dependencies layer: set kind = "split", not {kind}.'
            hint = "For self-contained archives or images, run nativebuild once per function."
            raise ConfigError(msg, hint=hint)
        # An image holds the same files as the function archive, at the same place.
        function = ArchiveSpec(
            kind=kind.value, name=name, src=src,
            filename=f"{name}{suffix}" if kind is Kind.FUNCTION else f"{name}-{runtime}-{arch}.tar",
            dependencies=True, site_prefix="", src_prefix="", mount=FUNCTION_ROOT,
        )  # fmt: skip
        return (function,)
    if kind is Kind.LAYER:
        return (layer,)
    code = functions or [FunctionSpec(name=name, requirements=Path(), src=src)]
    return (
        layer,
        *(
            ArchiveSpec(
                kind="function",
                name=fn.name,
                filename=f"{fn.name}{suffix}",
                src=fn.src,
                dependencies=False,
                site_prefix="",
                src_prefix="",
                mount=FUNCTION_ROOT,
                layers=(layer.filename,),
            )
            for fn in code
        ),
    )


def budget_groups(specs: Sequence[ArchiveSpec]) -> list[tuple[ArchiveSpec, ...]]:
    """Archives that are deployed together, so whose unzipped sizes add up: each function
    with this build's layers; a lone layer by itself."""
    layers = tuple(spec for spec in specs if spec.is_layer)
    functions = [spec for spec in specs if not spec.is_layer]
    if not functions:
        return [layers]
    return [(function, *layers) for function in functions]


def check_functions(functions: Sequence[FunctionSpec], *, src: Path | None) -> None:
    """Names must be distinct and usable in file names; ``src`` belongs to each function."""
    seen: set[str] = set()
    for fn in functions:
        if not NAME_RE.fullmatch(fn.name):
            msg = f"Function name {fn.name!r} must be letters, digits, '.', '_' or '-' (1-64)."
            raise ConfigError(msg)
        if fn.name in seen:
            msg = f"Two functions are called {fn.name!r}."
            raise ConfigError(msg, hint="Give every [[tool.nativebuild.functions]] its own name.")
        seen.add(fn.name)
    if functions and src is not None:
        msg = "src is set both at the top level and per function."
        hint = "With [[tool.nativebuild.functions]], give each function its own src."
        raise ConfigError(msg, hint=hint)


def union_requirements_text(functions: Sequence[FunctionSpec]) -> str:
    """A requirements file that includes every function's, for the shared layer."""
    for fn in functions:
        if fn.requirements.suffix in {".toml", ".lock"}:
            msg = (
                f"Function {fn.name}: a shared layer is built from requirements files, "
                f"not {fn.requirements.name}."
            )
            hint = "Export it (`uv export`, `poetry export`) to a requirements.txt."
            raise ConfigError(msg, hint=hint)
    return "".join(f"-r {fn.requirements.resolve()}\n" for fn in functions)


def _exact_pin(line: RequirementLine) -> tuple[Requirement, str | None] | None:
    try:
        req = Requirement(line.specifier)
    except InvalidRequirement:
        return None
    if req.marker is not None or req.url is not None:
        return None  # the resolver judges markers and direct references
    pins = [
        s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version
    ]
    return req, (pins[0] if pins else None)


def pin_conflicts(sets: Mapping[str, RequirementSet]) -> list[str]:
    """Requirements of different functions that no single version can meet: one pins a
    version another excludes. Returns one line per conflict (empty when consistent)."""
    by_name: dict[str, list[tuple[str, RequirementLine, Requirement, str | None]]] = {}
    for function, requirement_set in sets.items():
        for line in requirement_set.requirements:
            parsed = _exact_pin(line)
            if parsed is not None:
                by_name.setdefault(line.name, []).append((function, line, *parsed))
    problems = []
    for name, uses in sorted(by_name.items()):
        for function, line, _, version in uses:
            if version is None:
                continue
            for other, other_line, other_req, _ in uses:
                if other != function and not other_req.specifier.contains(
                    version, prereleases=True
                ):
                    problems.append(
                        f"{name}: {function} needs {line.specifier} ({line.origin}), "
                        f"{other} needs {other_req} ({other_line.origin})"
                    )
                    break
            else:
                continue
            break
    return problems


def conflict_error(problems: Sequence[str]) -> ResolutionError:
    listing = "\n".join(f"  - {problem}" for problem in problems)
    msg = f"The functions' requirements conflict, so they cannot share one layer:\n{listing}"
    hint = "Align those pins across the functions, or build the functions separately."
    return ResolutionError(msg, hint=hint)
