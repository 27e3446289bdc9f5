"""``pyproject.toml`` as an input: ``[project.dependencies]``, extras (PEP 621) and dependency
groups (PEP 735), each entry checked like a requirements file line, with the TOML key as origin.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from nativebuild.errors import RequirementsFileNotFoundError, RequirementSyntaxError
from nativebuild.inputs.requirement_line import FORM_HINT, requirement_line, requirement_text
from nativebuild.inputs.requirements import RequirementSet, read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def read_pyproject(path: Path) -> dict[str, Any]:
    """The TOML of ``path``; a missing or invalid file is the user's to fix."""
    try:
        return tomllib.loads(read_text(path))
    except FileNotFoundError as err:
        msg = f"{path} not found"
        raise RequirementsFileNotFoundError(msg, hint="Pass the path of an existing file.") from err
    except (OSError, UnicodeDecodeError) as err:
        msg = f"cannot read {path}: {err}"
        raise RequirementsFileNotFoundError(msg) from err
    except tomllib.TOMLDecodeError as err:
        msg = f"{path} is not valid TOML: {err}"
        raise RequirementSyntaxError(msg) from err


def _string_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        msg = f"{where} must be an array of requirement strings"
        raise RequirementSyntaxError(msg, hint=FORM_HINT)
    return value


def _unknown(kind: str, name: str, known: Iterable[str], where: str) -> RequirementSyntaxError:
    valid = ", ".join(sorted(known)) or "none"
    return RequirementSyntaxError(f"{where}: no {kind} {name!r} (declared: {valid})")


def project_requirements(
    data: Mapping[str, Any], *, extras: Sequence[str], origin: str
) -> list[tuple[str, str]]:
    """(requirement, origin) of ``[project.dependencies]`` and each requested extra.

    An extra that names the project itself (``all = ["me[a,b]"]``) is expanded in place, with
    its marker kept, so the resolver never looks for the project on the index.
    """
    project = data.get("project", {})
    optional = project.get("optional-dependencies", {}) if isinstance(project, Mapping) else None
    if not isinstance(optional, Mapping):
        msg = f"{origin}: [project] and [project.optional-dependencies] must be tables"
        raise RequirementSyntaxError(msg)
    dynamic = project.get("dynamic", [])
    if "dependencies" in dynamic or (extras and "optional-dependencies" in dynamic):
        msg = f"{origin}: the dependencies are dynamic (computed by the build backend)"
        hint = "Pass a requirements file or a lock file of the project instead."
        raise RequirementSyntaxError(msg, hint=hint)
    self_name = canonicalize_name(str(project.get("name", "")))
    where = f"{origin}:project.dependencies"
    entries = [
        (text, f"{where}[{i}]")
        for i, text in enumerate(_string_list(project.get("dependencies", []), where))
    ]
    tables: dict[str, tuple[str, object]] = {
        canonicalize_name(name): (name, texts) for name, texts in optional.items()
    }
    pending: list[tuple[str, str | None]] = [(canonicalize_name(e), None) for e in extras]
    seen: set[str] = set()
    while pending:
        extra, outer_marker = pending.pop(0)
        if extra not in tables:
            error = _unknown("extra", extra, tables, f"{origin}: [project.optional-dependencies]")
            raise error
        if extra in seen:
            continue  # requested twice, or a self-reference cycle
        seen.add(extra)
        name, texts = tables[extra]
        where = f"{origin}:project.optional-dependencies.{name}"
        for i, text in enumerate(_string_list(texts, where)):
            try:
                req = Requirement(text)
            except InvalidRequirement:
                entries.append((text, f"{where}[{i}]"))  # reported with its origin later
                continue
            if outer_marker is not None:
                both = f"({req.marker}) and ({outer_marker})" if req.marker else outer_marker
                req.marker = Marker(both)
            if canonicalize_name(req.name) == self_name and not req.url:
                marker = str(req.marker) if req.marker else None
                pending += [(canonicalize_name(e), marker) for e in sorted(req.extras)]
            else:
                entries.append((requirement_text(req) if outer_marker else text, f"{where}[{i}]"))
    return entries


def dependency_group_requirements(
    data: Mapping[str, Any], groups: Sequence[str], *, origin: str
) -> list[tuple[str, str]]:
    """(requirement, origin) of each requested PEP 735 group, ``include-group`` followed."""
    table = data.get("dependency-groups", {})
    if not isinstance(table, Mapping):
        msg = f"{origin}: [dependency-groups] must be a table"
        raise RequirementSyntaxError(msg)
    names: dict[str, str] = {}
    for name in table:
        other = names.setdefault(canonicalize_name(name), name)
        if other != name:
            msg = f"{origin}: dependency groups {other!r} and {name!r} have the same name"
            raise RequirementSyntaxError(msg, hint="Names are compared normalized (PEP 735).")
    entries: list[tuple[str, str]] = []

    def expand(group: str, chain: tuple[str, ...]) -> None:
        key = canonicalize_name(group)
        if key not in names:
            where = f"{origin}: [dependency-groups]{' ' + chain[-1] if chain else ''}"
            error = _unknown("dependency group", group, table, where)
            raise error
        name = names[key]
        if name in chain:
            cycle = " -> ".join((*chain, name))
            msg = f"{origin}: dependency groups include each other: {cycle}"
            raise RequirementSyntaxError(msg, hint="Remove one of the include-group entries.")
        items = table[name]
        if not isinstance(items, list):
            msg = f"{origin}: dependency-groups.{name} must be an array"
            raise RequirementSyntaxError(msg)
        for i, item in enumerate(items):
            where = f"{origin}:dependency-groups.{name}[{i}]"
            if isinstance(item, str):
                entries.append((item, where))
            elif isinstance(item, Mapping) and set(item) == {"include-group"}:
                expand(str(item["include-group"]), (*chain, name))
            else:
                msg = f'{where}: expected a requirement string or {{include-group = "..."}}'
                raise RequirementSyntaxError(msg)

    for group in dict.fromkeys(groups):
        expand(group, ())
    return entries


def requirements_from_pyproject(
    path: Path,
    *,
    extras: Sequence[str],
    groups: Sequence[str],
    env: Mapping[str, str],  # noqa: ARG001 - pip does not expand ${VARS} in pyproject.toml
) -> RequirementSet:
    """``[project.dependencies]``, the requested extras and dependency groups of ``path``.

    Each entry is checked like a requirements file line; its origin names the TOML key, as in
    ``pyproject.toml:project.dependencies[3]`` (indexes count from 0). No index options.
    """
    data = read_pyproject(path)
    origin = str(path)
    if "project" not in data and not groups:
        msg = f"{origin} declares no dependencies: it has no [project] table"
        hint = (
            "Add [project] dependencies, request a [dependency-groups] group, "
            "or pass the project's lock file (poetry.lock, uv.lock) instead."
        )
        raise RequirementSyntaxError(msg, hint=hint)
    entries = project_requirements(data, extras=extras, origin=origin)
    entries += dependency_group_requirements(data, groups, origin=origin)
    lines = tuple(
        requirement_line(text, [], origin=where, constraint=False) for text, where in entries
    )
    return RequirementSet(
        requirements=lines,
        constraints=(),
        index_url=None,
        extra_index_urls=(),
        trusted_hosts=(),
        find_links=(),
        no_binary=(),
        only_binary=(),
        prefer_binary=False,
        pre=False,
    )
