"""What one ``nativebuild sam build`` builds: an archive per resource, grouped into dependency
sets that are resolved and built once.

SAM builds every function from its own folder, even when two of them need the same packages.
Here resources whose requirements are the same (same content, per runtime and architecture)
share one dependency set: one resolution, one download or compile of each package, then one
archive per resource (its own code, the set's packages). Sets of both architectures are built in
the same run, against one cache.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from nativebuild.archive.layout import FUNCTION_ROOT, LAYER_ROOT, ArchiveSpec, LayerLayout
from nativebuild.sam.resources import Buildable
from nativebuild.targets import Architecture, get_runtime

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# What a code folder's dependencies are read from, first found wins: SAM's requirements.txt,
# then a lock file (exact pins, never re-resolved), then pyproject.toml's [project].
REQUIREMENTS_FILES = ("requirements.txt", "pylock.toml", "uv.lock", "poetry.lock")
PYPROJECT = "pyproject.toml"
NO_REQUIREMENTS = ""  # the fingerprint of a resource built from its code alone

# Names SAM leaves out when it copies a Python code folder (aws-lambda-builders, PythonPipWorkflow
# EXCLUDED_FILES), matched against every file and folder name: the same files go in.
SAM_SOURCE_EXCLUDES = (
    ".aws-sam", ".chalice", ".git", ".gitignore", "*.pyc", "__pycache__", "*.so", ".Python",
    "*.egg-info", "*.egg", "pip-log.txt", "pip-delete-this-directory.txt", "htmlcov", ".tox",
    ".nox", ".coverage", ".cache", ".pytest_cache", ".python-version", ".mypy_cache",
    ".dmypy.json", ".pyre", ".env", ".venv", "venv", "venv.bak", "env.bak", "ENV", "env",
    ".vscode", ".idea",
)  # fmt: skip


def find_requirements(code_dir: Path) -> Path | None:
    """The file a code folder's dependencies come from; None when it has none."""
    for name in REQUIREMENTS_FILES:
        if (code_dir / name).is_file():
            return code_dir / name
    pyproject = code_dir / PYPROJECT
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return pyproject  # reading it for the build says what is wrong
        if isinstance(data.get("project"), dict):
            return pyproject
    return None


def archive_name(resource: Buildable) -> str:
    """Where a resource's archive goes, relative to the build directory: its own folder, as
    SAM's ``.aws-sam/build/<LogicalId>/``."""
    return (
        f"{resource.logical_id}/{resource.logical_id}-{resource.runtime}-{resource.arch.value}.zip"
    )


def archive_spec(
    resource: Buildable,
    *,
    layers: Sequence[Buildable] = (),
    layer_layout: LayerLayout = LayerLayout.PYTHON,
    skip_dirs: Sequence[Path] = (),
) -> ArchiveSpec:
    """The archive of one resource, laid out as ``sam build`` lays it out: a function's code
    and dependencies at the root (/var/task); a layer's folder and dependencies under
    ``python/`` (/opt/python). Its code folder is copied as SAM copies it (SAM_SOURCE_EXCLUDES
    left out); ``skip_dirs`` (the build directory, when it is inside) too."""
    site = ""
    if resource.is_layer:
        site = layer_layout.site_prefix(get_runtime(resource.runtime).python)
    return ArchiveSpec(
        kind=resource.kind, name=resource.logical_id, filename=archive_name(resource),
        src=resource.code_dir, dependencies=True, site_prefix=site, src_prefix=site,
        mount=LAYER_ROOT if resource.is_layer else FUNCTION_ROOT,
        layers=tuple(archive_name(layer) for layer in layers),
        src_excludes=SAM_SOURCE_EXCLUDES, src_skip_dirs=tuple(skip_dirs),
    )  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class DependencySet:
    """Resources of one runtime and architecture whose requirements are the same."""

    runtime: str
    arch: Architecture
    requirements: Path | None  # the first resource's file (None: code alone)
    fingerprint: str
    resources: tuple[Buildable, ...]

    def describe(self) -> str:
        names = ", ".join(r.logical_id for r in self.resources)
        return f"{self.runtime} {self.arch.value}: {names}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamPlan:
    sets: tuple[DependencySet, ...]

    @property
    def resources(self) -> tuple[Buildable, ...]:
        return tuple(r for s in self.sets for r in s.resources)

    def layers_of(self, function: Buildable) -> tuple[Buildable, ...]:
        """The layers of this build a function uses, in its order."""
        by_id = {r.logical_id: r for r in self.resources if r.is_layer}
        return tuple(by_id[name] for name in function.layers if name in by_id)


def plan_sets(
    resources: Sequence[Buildable],
    requirements: Mapping[str, Path | None],
    fingerprints: Mapping[Path, str],
) -> SamPlan:
    """Group ``resources`` into dependency sets. ``requirements`` gives each resource's file
    (by logical id); ``fingerprints`` what each file asks for (the same content, the same
    fingerprint). Sets keep the template's order of their first resource."""
    groups: dict[tuple[str, Architecture, str], list[Buildable]] = {}
    files: dict[tuple[str, Architecture, str], Path | None] = {}
    for resource in resources:
        path = requirements[resource.logical_id]
        fingerprint = NO_REQUIREMENTS if path is None else fingerprints[path]
        key = (resource.runtime, resource.arch, fingerprint)
        groups.setdefault(key, []).append(resource)
        files.setdefault(key, path)
    return SamPlan(
        sets=tuple(
            DependencySet(
                runtime=runtime,
                arch=arch,
                requirements=files[(runtime, arch, fingerprint)],
                fingerprint=fingerprint,
                resources=tuple(members),
            )
            for (runtime, arch, fingerprint), members in groups.items()
        )
    )
