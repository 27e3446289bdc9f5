"""``poetry.lock``: a universal lock, narrowed to what a target needs.

Poetry locks carry no file URLs, so each file is found on the index by name and hash.
The dependency graph is walked from the project's own dependencies; each package gets the
marker under which some path reaches it (an OR of ANDs), extras decided during the walk.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from packaging._parser import Variable  # the parsed marker tree: no public API walks it
from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
from packaging.version import InvalidVersion, Version

from nativebuild.errors import (
    RequirementsFileNotFoundError,
    RequirementSyntaxError,
    ResolutionError,
)
from nativebuild.index.pip_config import IndexSettings
from nativebuild.index.simple_api import FileLookup, SimpleIndex
from nativebuild.inputs.locked import LockedPackage
from nativebuild.inputs.pyproject import (
    dependency_group_requirements,
    project_requirements,
    read_pyproject,
)
from nativebuild.pins import FileRef

_CONSTRAINT_RE = re.compile(r"(\^|~=|~|===|==|!=|<=|>=|<|>)?\s*([^\s,|<>=!~^]+)")
_NOT_SUPPORTED = ("git", "directory", "file", "url")  # poetry source types we cannot fetch yet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_lock_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        msg = f"lock file {path} not found"
        raise RequirementsFileNotFoundError(msg, hint="Pass the path of the lock file.") from err
    except (OSError, UnicodeDecodeError) as err:
        msg = f"cannot read lock file {path}: {err}"
        raise RequirementsFileNotFoundError(msg) from err


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Edge:
    name: str  # canonical
    constraint: str  # poetry or PEP 440 syntax; "" for any version
    extras: frozenset[str]
    marker: str | None  # may still compare `extra`
    optional: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Locked:
    name: str
    version: str
    files: tuple[tuple[str, str], ...]  # (filename, "sha256:<hex>")
    source_type: str | None
    source_url: str | None
    dependencies: tuple[_Edge, ...]
    extras: tuple[tuple[str, frozenset[str]], ...]  # extra -> the names it adds


Term = frozenset[str]  # markers that must all hold: one path through the graph


def read_poetry_lock(
    path: Path,
    *,
    extras: Sequence[str],
    groups: Sequence[str],
    index: IndexSettings,
    lookup: FileLookup | None = None,
) -> tuple[LockedPackage, ...]:
    """The packages the project needs, each with the marker under which it is needed.

    The marker of a package is the OR, over the paths that reach it from the project's
    dependencies (main group, requested ``groups`` and ``extras``), of the AND of the markers
    along the path. ``extra`` comparisons are decided on the way; what remains is a marker on
    the target environment only, or None when the package is needed everywhere.
    """
    origin = str(path)
    try:
        data = tomllib.loads(read_lock_text(path))
    except tomllib.TOMLDecodeError as err:
        msg = f"{origin} is not valid TOML: {err}"
        raise RequirementSyntaxError(msg) from err
    pyproject_path = path.parent / "pyproject.toml"
    if not pyproject_path.is_file():
        msg = f"{origin} needs the project's pyproject.toml beside it: {pyproject_path} is missing"
        raise RequirementsFileNotFoundError(msg, hint="Pass the poetry.lock of a Poetry project.")
    roots = _roots(read_pyproject(pyproject_path), extras, groups, str(pyproject_path))
    by_name: dict[str, list[_Locked]] = {}
    for package in _poetry_packages(data, origin):
        by_name.setdefault(package.name, []).append(package)
    conditions = _walk(roots, frozenset(canonicalize_name(e) for e in extras), by_name, origin)
    indexes: dict[tuple[str, ...], SimpleIndex] = {}
    result = []
    for (name, version, extra), terms in sorted(conditions.items()):
        if extra:
            continue
        package = next(p for p in by_name[name] if p.version == version)
        if package.source_type in _NOT_SUPPORTED:
            source = package.source_type
            msg = f"{origin}: {name} comes from a {source} source, which is not supported yet."
            raise ResolutionError(msg, hint="Lock a released version from a package index.")
        find = lookup
        if find is None:
            urls = (*([package.source_url] if package.source_url else []), *index.index_urls)
            if urls not in indexes:
                indexes[urls] = SimpleIndex(urls, settings=index)
            find = indexes[urls]
        result.append(_to_locked(package, _marker_of(terms), find, origin))
    return tuple(result)


def _poetry_packages(data: Mapping[str, Any], origin: str) -> list[_Locked]:
    legacy_files = data.get("metadata", {}).get("files", {})  # lock-version 1.x kept them here
    packages = []
    for entry in data.get("package", []):
        name, version = entry.get("name"), entry.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            msg = f"{origin}: a [[package]] has no name or version."
            raise RequirementSyntaxError(msg, hint="Regenerate it with `poetry lock`.")
        where = f"{origin}: {name}"
        dependencies = [
            edge
            for dep_name, spec in entry.get("dependencies", {}).items()
            for edge in _edges(dep_name, spec, where)
        ]
        extras = {
            canonicalize_name(extra): frozenset(_leading_name(item) for item in items)
            for extra, items in entry.get("extras", {}).items()
        }
        files = entry.get("files", legacy_files.get(name, []))
        source = entry.get("source", {})
        packages.append(
            _Locked(
                name=canonicalize_name(name),
                version=version,
                files=tuple((str(f.get("file")), str(f.get("hash", ""))) for f in files),
                source_type=source.get("type"),
                source_url=source.get("url"),
                dependencies=tuple(dependencies),
                extras=tuple(sorted(extras.items())),
            )
        )
    return packages


def _leading_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)  # "PySocks (>=1.5.6)"
    return canonicalize_name(match[1]) if match else ""


def _edges(name: str, spec: object, where: str) -> list[_Edge]:
    """A poetry dependency entry (constraint string, table, or list of tables) as edges."""
    edges = []
    for entry in spec if isinstance(spec, list) else [spec]:
        item = {"version": entry} if isinstance(entry, str) else entry
        if not isinstance(item, Mapping):
            msg = f"{where}: dependency {name} is neither a version nor a table."
            raise RequirementSyntaxError(msg)
        markers = [
            item.get("markers"),
            _python_marker(str(item["python"]), where) if "python" in item else None,
            f'sys_platform == "{item["platform"]}"' if "platform" in item else None,
        ]
        marker = " and ".join(f"({m})" for m in markers if m) or None
        if marker is not None:
            _check_marker(marker, where)
        edges.append(
            _Edge(
                name=canonicalize_name(name),
                constraint=str(item.get("version", "")),
                extras=frozenset(canonicalize_name(e) for e in item.get("extras", [])),
                marker=marker,
                optional=bool(item.get("optional", False)),
            )
        )
    return edges


def _check_marker(marker: str, where: str) -> None:
    try:
        Marker(marker)
    except InvalidMarker as err:
        msg = f"{where}: invalid marker {marker!r}: {err}"
        raise RequirementSyntaxError(msg) from err


def _requirement_edge(text: str, where: str) -> _Edge:
    try:
        req = Requirement(text)
    except InvalidRequirement as err:
        msg = f"{where}: cannot parse {text!r}: {err}"
        raise RequirementSyntaxError(msg) from err
    return _Edge(
        name=canonicalize_name(req.name),
        constraint=str(req.specifier),
        extras=frozenset(canonicalize_name(e) for e in req.extras),
        marker=str(req.marker) if req.marker else None,
    )


def _roots(
    pyproject: Mapping[str, Any], extras: Sequence[str], groups: Sequence[str], origin: str
) -> list[_Edge]:
    """The project's own dependencies: main group, requested extras, requested groups."""
    project = pyproject.get("project", {})
    poetry = pyproject.get("tool", {}).get("poetry", {})
    if "dependencies" in project and "dependencies" not in project.get("dynamic", []):
        entries = project_requirements(pyproject, extras=extras, origin=origin)
        roots = [_requirement_edge(text, where) for text, where in entries]
    else:  # Poetry 1 style: [tool.poetry.dependencies] and [tool.poetry.extras]
        declared = {canonicalize_name(k): v for k, v in poetry.get("extras", {}).items()}
        wanted: set[str] = set()
        for extra in extras:
            if canonicalize_name(extra) not in declared:
                names = ", ".join(sorted(declared)) or "none"
                msg = f"{origin}: no extra {extra!r} (declared: {names})"
                raise RequirementSyntaxError(msg)
            wanted |= {canonicalize_name(n) for n in declared[canonicalize_name(extra)]}
        roots = [
            dataclasses.replace(edge, optional=False)
            for name, spec in poetry.get("dependencies", {}).items()
            if name != "python"
            for edge in _edges(name, spec, f"{origin}:tool.poetry.dependencies")
            if not edge.optional or edge.name in wanted
        ]
    poetry_groups = {canonicalize_name(g): g for g in poetry.get("group", {})}
    standard = {canonicalize_name(g) for g in pyproject.get("dependency-groups", {})}
    for group in dict.fromkeys(canonicalize_name(g) for g in groups):
        tables = []
        if group in poetry_groups:
            tables.append(poetry["group"][poetry_groups[group]].get("dependencies", {}))
        if group == "dev" and "dev-dependencies" in poetry:
            tables.append(poetry["dev-dependencies"])
        for table in tables:
            for name, spec in table.items():
                roots += _edges(name, spec, f"{origin}:tool.poetry.group.{group}")
        if group in standard:
            entries = dependency_group_requirements(pyproject, [group], origin=origin)
            roots += [_requirement_edge(text, where) for text, where in entries]
        if not tables and group not in standard and group != "main":
            known = {
                "main",
                *poetry_groups,
                *standard,
                *(["dev"] if "dev-dependencies" in poetry else []),
            }
            msg = f"{origin}: no dependency group {group!r} (declared: {', '.join(sorted(known))})"
            raise RequirementSyntaxError(msg)
    return roots


def _walk(
    roots: Sequence[_Edge],
    extras: frozenset[str],
    by_name: Mapping[str, list[_Locked]],
    origin: str,
) -> dict[tuple[str, str, str], set[Term]]:
    """(name, version, active extra or "") → the paths (as marker terms) that reach it."""
    conditions: dict[tuple[str, str, str], set[Term]] = {}
    queue: list[tuple[_Locked, str]] = []

    def reach(edge: _Edge, terms: Iterable[Term], active: AbstractSet[str], needed_by: str) -> None:
        residual = _decide_extras(edge.marker, active)
        if residual is False:
            return
        new = [term | {residual} if isinstance(residual, str) else term for term in terms]
        targets = _candidates(edge, by_name.get(edge.name, []))
        if not targets and residual is True:
            msg = f"{origin}: {needed_by} needs {edge.name}, which the lock file does not lock."
            raise ResolutionError(msg, hint="The lock is out of date: run `poetry lock`.")
        for package in targets:
            for extra in ("", *sorted(edge.extras)):
                key = (package.name, package.version, extra)
                if _merge(conditions.setdefault(key, set()), new):
                    queue.append((package, extra))

    for edge in roots:
        reach(edge, [frozenset()], extras, "the project")
    while queue:
        package, extra = queue.pop()
        terms = list(conditions[(package.name, package.version, extra)])
        for dep in package.dependencies:
            if extra and not dep.optional and "extra" not in (dep.marker or ""):
                continue  # already followed from the package without extras
            if dep.optional and not _optional_wanted(package, dep, extra):
                continue
            active = {extra} if extra else set()
            reach(dep, terms, active, f"{package.name} {package.version}")
    return conditions


def _optional_wanted(package: _Locked, dep: _Edge, extra: str) -> bool:
    listed = [name for name, names in package.extras if dep.name in names]
    return extra in listed if listed else bool(extra)  # unlisted: its marker decides


def _candidates(edge: _Edge, found: list[_Locked]) -> list[_Locked]:
    """The locked versions an edge can mean: a lock may hold one name at several versions."""
    if len(found) < 2 or not edge.constraint:
        return found
    try:
        alternatives = _specifiers(edge.constraint)
    except (InvalidSpecifier, InvalidVersion):
        return found
    if alternatives is None:
        return found
    matching = [
        p for p in found if any(s.contains(p.version, prereleases=True) for s in alternatives)
    ]
    return matching or found


def _merge(terms: set[Term], new: Iterable[Term]) -> bool:
    """Add ``new`` paths to ``terms``, keeping only the weakest (a subset absorbs a superset)."""
    changed = False
    for term in new:
        if any(old <= term for old in terms):
            continue
        terms -= {old for old in terms if term <= old}
        terms.add(term)
        changed = True
    return changed


def _marker_of(terms: set[Term]) -> str | None:
    if frozenset() in terms:
        return None
    alternatives = sorted(" and ".join(f"({m})" for m in sorted(term)) for term in terms)
    return str(Marker(" or ".join(f"({a})" for a in alternatives)))


def _decide_extras(marker: str | None, active: AbstractSet[str]) -> str | bool:
    """``marker`` with its ``extra`` comparisons decided by ``active``: True, False or the rest."""
    if marker is None:
        return True
    return _reduce(Marker(marker)._markers, active)


def _reduce(items: Sequence[Any], active: AbstractSet[str]) -> str | bool:
    alternatives: list[list[str | bool]] = [[]]
    for item in items:
        if item == "or":
            alternatives.append([])
        elif isinstance(item, list):
            reduced = _reduce(item, active)
            alternatives[-1].append(f"({reduced})" if isinstance(reduced, str) else reduced)
        elif isinstance(item, tuple):
            lhs, op, rhs = item
            variable, value = (lhs, rhs) if isinstance(lhs, Variable) else (rhs, lhs)
            if variable.value == "extra":
                hit = canonicalize_name(value.value) in active
                alternatives[-1].append(hit if op.value != "!=" else not hit)
            else:
                alternatives[-1].append(f"{lhs.serialize()} {op.serialize()} {rhs.serialize()}")
    kept: list[str] = []
    for terms in alternatives:
        if False in terms:
            continue
        rest = [t for t in terms if isinstance(t, str)]
        if not rest:
            return True
        kept.append(" and ".join(rest))
    if not kept:
        return False
    return " or ".join(kept) if len(kept) == 1 else " or ".join(f"({k})" for k in kept)


def _specifiers(constraint: str) -> list[SpecifierSet] | None:
    """Poetry's constraint syntax (``^1.2``, ``~1.2``, ``1.2.*``, ``a || b``) as PEP 440 sets
    to OR; None means any version."""
    alternatives = []
    for part in constraint.split("||"):
        specs: list[str] = []
        for op, version in _CONSTRAINT_RE.findall(part):
            if version == "*":
                continue
            if op in ("^", "~"):
                release = list(Version(version).release)
                first_nonzero = next((i for i, v in enumerate(release) if v), len(release) - 1)
                bump = first_nonzero if op == "^" else min(1, len(release) - 1)
                upper = [*release[:bump], release[bump] + 1]
                specs += [f">={version}", f"<{'.'.join(map(str, upper))}"]
            else:
                specs.append(f"{op or '=='}{version}")
        if not specs:
            return None
        alternatives.append(SpecifierSet(",".join(specs)))
    return alternatives


def _python_marker(constraint: str, where: str) -> str | None:
    """A dependency's ``python = "^3.8"`` as a marker."""
    try:
        alternatives = _specifiers(constraint)
    except (InvalidSpecifier, InvalidVersion) as err:
        msg = f"{where}: cannot read the Python constraint {constraint!r}: {err}"
        raise RequirementSyntaxError(msg) from err
    if alternatives is None:
        return None
    ors = []
    for specifiers in alternatives:
        ands = []
        for spec in sorted(specifiers, key=str):
            short = spec.operator in ("==", "!=") and spec.version.count(".") <= 1
            variable = "python_version" if short else "python_full_version"  # "3.8" is 3.8.*
            ands.append(f'{variable} {spec.operator} "{spec.version}"')
        ors.append(" and ".join(ands))
    return " or ".join(f"({o})" for o in ors)


def _to_locked(
    package: _Locked, marker: str | None, find: FileLookup, origin: str
) -> LockedPackage:
    wheels: list[FileRef] = []
    sdists: list[FileRef] = []
    for filename, digest in package.files:
        algorithm, _, sha256 = digest.partition(":")
        if algorithm != "sha256" or not sha256:
            msg = f"{origin}: {filename} of {package.name} has no sha256 hash ({digest!r})."
            raise RequirementSyntaxError(msg, hint="Regenerate the lock with a current Poetry.")
        if filename.endswith(".whl"):
            wheels.append(find(package.name, filename, sha256))
            continue
        try:
            parse_sdist_filename(filename)
        except InvalidSdistFilename:
            continue  # eggs and installers: nothing pip would install
        sdists.append(find(package.name, filename, sha256))
    sdists.sort(key=lambda f: not f.filename.endswith(".tar.gz"))  # the standard form first
    return LockedPackage(
        name=package.name,
        version=package.version,
        marker=marker,
        wheels=tuple(wheels),
        sdist=sdists[0] if sdists else None,
        origin=origin,
    )
