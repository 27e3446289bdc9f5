"""Sdists known before resolving: what pip in the build image must take, whatever else it
resolves, read from the index on the host.

A requirement pinned to one version (``NAME==V``) whose only file of that version on the index
is one sdist leaves pip no other choice. Such an sdist can be compiled first, in the container
that then resolves, and handed to pip as a wheel (``--find-links``): pip reads the built wheel's
metadata instead of preparing the sdist's in a build environment of its own, which is most of
what a resolution in the image costs (see :mod:`nativebuild.pipeline.resolve_then_compile`).
Anything less certain is left to pip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from nativebuild.index.simple_api import IndexFile
from nativebuild.inputs.requirement_line import RequirementLine
from nativebuild.inputs.requirements import RequirementSet
from nativebuild.pins import Pin
from nativebuild.targets import Target


def pinned_version(line: RequirementLine) -> SpecifierSet | None:
    """The specifier of ``NAME==V`` (one exact version, no wildcard), else None."""
    if line.is_local:
        return None
    try:
        requirement = Requirement(line.specifier)
    except InvalidRequirement:
        return None
    specifiers = list(requirement.specifier)
    if requirement.url or len(specifiers) != 1:
        return None
    only = specifiers[0]
    if only.operator != "==" or only.version.endswith(".*"):
        return None
    return requirement.specifier


def candidates(requirements: RequirementSet, target: Target) -> list[RequirementLine]:
    """The requirements that may name a known sdist: pinned, for this target (markers), named
    once, allowed a wheel (pip takes the compiled one instead of the sdist), and no hashes (pip
    would refuse a wheel that no ``--hash`` names)."""
    if requirements.require_hashes or ":all:" in requirements.only_binary:
        return []
    names = [line.name for line in requirements.requirements]
    environment = {**target.marker_environment(), "extra": ""}
    chosen = []
    for line in requirements.requirements:
        if names.count(line.name) != 1 or line.name in requirements.only_binary:
            continue
        if pinned_version(line) is None:
            continue
        marker = Requirement(line.specifier).marker
        if marker is not None and not marker.evaluate(environment):
            continue
        chosen.append(line)
    return chosen


# What pip reads as an archive it may install; any other file (.egg, .exe, .msi) it ignores.
PIP_ARCHIVES = (
    ".whl", ".tar.gz", ".zip", ".tgz", ".tar", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz",
    ".tar.lz", ".tar.lzma",
)  # fmt: skip


def _version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def could_load(filename: str, target: Target) -> bool:
    """Whether pip in the build image might take the wheel ``filename``: one of its tags is
    for the target's Python and machine, whatever glibc it asks for (the image's may be newer
    than the target's ceiling). Conservative: another libc's wheel counts too."""
    try:
        tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return True
    pythons = {(tag.interpreter, tag.abi) for tag in target.tag_priority}
    suffix = f"_{target.arch.machine}"
    return any(
        (tag.interpreter, tag.abi) in pythons
        and (tag.platform == "any" or tag.platform.endswith(suffix))
        for tag in tags
    )


def known_sdist(line: RequirementLine, files: Sequence[IndexFile], target: Target) -> Pin | None:
    """The one sdist of ``line``'s pinned version on the index, with its sha256, when no wheel
    of that version is for the target and the sdist allows the target's Python
    (``requires-python``); else None."""
    specifier = pinned_version(line)
    if specifier is None:
        return None
    matching = []
    for file in files:
        if not file.filename.lower().endswith(PIP_ARCHIVES):
            continue  # pip ignores it
        version = _version(file.filename)
        if version is None:
            return None  # a file of unknown version might be the one pip takes
        if not specifier.contains(version, prereleases=True):
            continue
        if file.filename.endswith(".whl"):
            if could_load(file.filename, target):
                return None  # pip might take it
            continue  # another Python's or machine's wheel
        matching.append((file, version))
    if len(matching) != 1:
        return None
    file, version = matching[0]
    if file.yanked or file.sha256 is None:
        return None
    if file.requires_python:
        major, minor = target.runtime.python_version
        try:
            allowed = SpecifierSet(file.requires_python)
        except InvalidSpecifier:
            return None
        # Any micro release of the runtime's Python: the image's own is not known here.
        if not all(allowed.contains(f"{major}.{minor}.{m}", prereleases=True) for m in (0, 99)):
            return None
    return Pin(
        name=line.name, version=str(version), filename=file.filename, url=file.url,
        sha256=file.sha256,
    )  # fmt: skip


def known_sdists(
    lines: Sequence[RequirementLine], files: Mapping[str, Sequence[IndexFile]], target: Target
) -> list[Pin]:
    """:func:`known_sdist` of each line whose index files ``files`` holds (by name)."""
    pins = []
    for line in lines:
        if line.name in files and (pin := known_sdist(line, files[line.name], target)):
            pins.append(pin)
    return pins
