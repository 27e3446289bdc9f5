"""Exact pins with their files, as a lock file or a resolver states them (PEP 751 shaped).

Every input that fixes versions ends up here: a ``pylock.toml``, ``uv.lock`` (exported to
pylock by uv), ``poetry.lock``, or the resolution uv makes on the host. Choosing the one file to
install per package for a target is :func:`choose_file`, a pure function.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from nativebuild.errors import RequirementSyntaxError, ResolutionError
from nativebuild.pins import FileRef, LocalPin, Pin, filename_of
from nativebuild.redact import redact, strip_credentials
from nativebuild.targets import Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclasses.dataclass(frozen=True, kw_only=True)
class LockedGit:
    """A locked git source: the commit is the pin."""

    url: str  # what git clones (no "git+"), as locked
    commit: str
    requested: str | None = None  # the branch or tag the lock was made from, for messages
    subdirectory: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class LockedPackage:
    name: str  # canonical
    version: str
    marker: str | None
    wheels: tuple[FileRef, ...]
    sdist: FileRef | None
    origin: str  # where the pin comes from, for messages
    directory: str | None = None  # a local project (absolute), packed by nativebuild
    git: LockedGit | None = None  # a git tree, cloned and packed by nativebuild

    @property
    def is_local(self) -> bool:
        return self.directory is not None or self.git is not None


def _location(entry: Mapping[str, Any], base_dir: Path | None) -> str | None:
    """An entry's ``url``, or its ``path`` (relative to the lock file) as a ``file://`` URL."""
    url = entry.get("url")
    if isinstance(url, str):
        return url
    path = entry.get("path")
    if not isinstance(path, str):
        return None
    where = Path(path)
    if not where.is_absolute() and base_dir is not None:
        where = base_dir / where
    return Path(os.path.normpath(where)).as_uri()


def _file_ref(
    entry: Mapping[str, Any], *, package: str, origin: str, base_dir: Path | None
) -> FileRef:
    url = _location(entry, base_dir)
    hashes = entry.get("hashes") or {}
    sha256 = hashes.get("sha256") if isinstance(hashes, Mapping) else None
    if not isinstance(url, str) or not isinstance(sha256, str):
        msg = f"{origin}: a file of {package} has no url (or path) or no sha256 hash."
        raise RequirementSyntaxError(msg, hint="Lock with URLs and sha256 hashes (uv and pip do).")
    name = entry.get("name") or filename_of(url)
    return FileRef(url=strip_credentials(url), filename=str(name), sha256=sha256.lower())


def _locked_git(
    entry: Mapping[str, Any], *, package: str, origin: str, base_dir: Path | None
) -> LockedGit:
    kind = entry.get("type")
    url = _location(entry, base_dir)
    commit = entry.get("commit-id")
    if kind != "git":
        msg = f"{origin}: {package} comes from a {kind} repository; nativebuild clones git ones."
        hint = "Lock it from a git repository, a package index, a file or a folder."
        raise ResolutionError(msg, hint=hint)
    if not isinstance(url, str) or not isinstance(commit, str):
        msg = f"{origin}: the git source of {package} has no url (or path) or no commit-id."
        raise RequirementSyntaxError(msg, hint="Lock it again: PEP 751 locks git by commit.")
    requested = entry.get("requested-revision")
    subdirectory = entry.get("subdirectory")
    return LockedGit(
        url=url, commit=commit.lower(), requested=str(requested) if requested else None,
        subdirectory=str(subdirectory) if subdirectory else None,
    )  # fmt: skip


def read_pylock(
    text: str, *, origin: str, base_dir: Path | None = None
) -> tuple[LockedPackage, ...]:
    """The packages of a PEP 751 ``pylock.toml``: index files (wheels, sdists), files by path or
    URL (``archive``), local folders (``directory``) and git commits (``vcs``). Relative paths
    are relative to ``base_dir``, the lock file's folder."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = f"{origin} is not valid TOML: {err}"
        raise RequirementSyntaxError(msg) from err
    packages = []
    for index, entry in enumerate(data.get("packages", [])):
        name = entry.get("name")
        version = entry.get("version")
        if not isinstance(name, str):
            msg = f"{origin}: package #{index + 1} has no name."
            raise RequirementSyntaxError(msg)
        marker = str(entry["marker"]) if entry.get("marker") else None
        package = functools.partial(
            LockedPackage, name=canonicalize_name(name), marker=marker, origin=origin
        )
        if isinstance(entry.get("directory"), Mapping):
            directory = _location(entry["directory"], base_dir)
            path = str(Path(unquote(urlsplit(directory).path))) if directory else ""
            packages.append(
                package(version=str(version or ""), wheels=(), sdist=None, directory=path)
            )
            continue
        if isinstance(entry.get("vcs"), Mapping):
            git = _locked_git(entry["vcs"], package=name, origin=origin, base_dir=base_dir)
            packages.append(package(version=str(version or ""), wheels=(), sdist=None, git=git))
            continue
        if not isinstance(version, str):
            msg = f"{origin}: {name} has no version."
            raise RequirementSyntaxError(msg)
        ref = functools.partial(_file_ref, package=name, origin=origin, base_dir=base_dir)
        wheels = tuple(ref(w) for w in entry.get("wheels", []))
        sdist = ref(entry["sdist"]) if entry.get("sdist") else None
        if isinstance(entry.get("archive"), Mapping):
            archive = ref(entry["archive"])
            if archive.filename.endswith(".whl"):
                wheels = (*wheels, archive)
            else:
                sdist = archive
        packages.append(package(version=version, wheels=wheels, sdist=sdist))
    return tuple(packages)


def pylock_default_groups(text: str) -> tuple[str, ...]:
    """The groups PEP 751 says to install when the user names none."""
    try:
        groups = tomllib.loads(text).get("default-groups", [])
    except tomllib.TOMLDecodeError:
        return ()
    return tuple(str(g) for g in groups) if isinstance(groups, list) else ()


def applies(
    package: LockedPackage,
    environment: Mapping[str, str],
    *,
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
) -> bool:
    """Whether ``package``'s marker holds for the target (PEP 751 lock-file context)."""
    if package.marker is None:
        return True
    try:
        marker = Marker(package.marker)
    except InvalidMarker as err:
        msg = f"{package.origin}: {package.name} has an invalid marker {package.marker!r}."
        raise RequirementSyntaxError(msg) from err
    env: dict[str, Any] = dict(environment)
    env["extras"] = frozenset(canonicalize_name(e) for e in extras)
    env["dependency_groups"] = frozenset(canonicalize_name(g) for g in groups)
    env.setdefault("extra", "")
    return bool(marker.evaluate(env, "lock_file"))


def choose_file(
    package: LockedPackage,
    target: Target,
    *,
    no_binary: bool = False,
    only_binary: bool = False,
) -> Pin:
    """The one file to install: the wheel the target prefers most, else the sdist to compile."""
    priority = target.tag_priority
    best: tuple[int, FileRef] | None = None
    if not no_binary:
        for wheel in package.wheels:
            try:
                _, _, _, tags = parse_wheel_filename(wheel.filename)
            except InvalidWheelFilename:
                continue
            ranks = [priority[tag] for tag in tags if tag in priority]
            if ranks and (best is None or min(ranks) < best[0]):
                best = (min(ranks), wheel)
    chosen = best[1] if best is not None else None
    if chosen is None and not only_binary and package.sdist is not None:
        try:
            parse_sdist_filename(package.sdist.filename)
        except InvalidSdistFilename as err:
            msg = f"{package.name}: {package.sdist.filename!r} is not an sdist name."
            raise ResolutionError(msg) from err
        chosen = package.sdist
    if chosen is None:
        raise _no_file(package, target, no_binary=no_binary, only_binary=only_binary)
    return Pin(
        name=package.name,
        version=package.version,
        filename=chosen.filename,
        url=chosen.url,
        sha256=chosen.sha256,
    )


def _local_pin(package: LockedPackage, local: Sequence[LocalPin], target: Target) -> Pin | None:
    """The local pin for ``package`` on ``target`` (its marker decides between several of one
    name); None for an index package no local requirement provides."""
    pin = local_pin_for(package.name, local, target)
    if pin is None and package.is_local:
        source = package.directory or (package.git.url if package.git else "")
        msg = f"{package.origin}: {package.name} comes from {redact(source)}, which nativebuild did not pack."
        hint = "Name it in the requirements (./libs/pkg or NAME @ git+URL@REV) or in the lock file."
        raise ResolutionError(msg, hint=hint)
    return pin


def local_pin_for(name: str, local: Sequence[LocalPin], target: Target) -> Pin | None:
    """What this machine provides for ``name`` on ``target``, if anything."""
    environment = target.marker_environment()
    mine = [lp for lp in local if lp.pin.name == name]
    chosen = [lp for lp in mine if lp.marker is None or _holds(lp.marker, environment)]
    if len(chosen) > 1:
        where = ", ".join(lp.origin for lp in chosen)
        msg = f"{name}: {len(chosen)} local requirements apply to {target.describe()} ({where})."
        hint = "Give each a marker that picks one per target (platform_machine == 'x86_64')."
        raise ResolutionError(msg, hint=hint)
    if not chosen:
        return None
    if chosen[0].pin.is_wheel:
        _check_local_wheel(chosen[0].pin, chosen[0].origin, target)
    return chosen[0].pin


def replace_local(
    pins: Iterable[Pin], local: Sequence[LocalPin], target: Target
) -> tuple[Pin, ...]:
    """A resolver's pins with what this machine provides in place of their namesakes."""
    return tuple(local_pin_for(pin.name, local, target) or pin for pin in pins)


def _holds(marker: str, environment: Mapping[str, str]) -> bool:
    try:
        return bool(Marker(marker).evaluate({**environment, "extra": ""}))
    except InvalidMarker:
        return True  # checked when the requirement was read


def _check_local_wheel(pin: Pin, origin: str, target: Target) -> None:
    try:
        _, _, _, tags = parse_wheel_filename(pin.filename)
    except InvalidWheelFilename as err:
        msg = f"{origin}: {pin.filename!r} is not a valid wheel file name."
        raise ResolutionError(msg) from err
    if target.accepts(tags):
        return
    shown = ", ".join(sorted(str(tag) for tag in tags))
    msg = f"{origin}: {pin.filename} ({shown}) cannot load on {target.describe()}."
    hint = (
        "Name a wheel built for the target (one per architecture, each with a marker such as "
        "; platform_machine == 'aarch64'), or its sdist, which nativebuild compiles."
    )
    raise ResolutionError(msg, hint=hint)


def _no_file(
    package: LockedPackage, target: Target, *, no_binary: bool, only_binary: bool
) -> ResolutionError:
    wheels = ", ".join(w.filename for w in package.wheels) or "none"
    tags = target.platform_tags
    tried = f"{tags[0]} … {tags[-1]}" if len(tags) > 1 else ", ".join(tags)
    msg = (
        f"No file of {package.name} {package.version} ({package.origin}) fits {target.describe()}: "
        f"wheels: {wheels}; sdist: {package.sdist.filename if package.sdist else 'none'}. "
        f"Tags tried: {target.runtime.abi}/abi3/none on {tried}, and any."
    )
    if only_binary:
        hint = (
            "Allow building it from source (remove it from --only-binary), or pin another version."
        )
    elif no_binary:
        hint = "It is marked --no-binary but has no sdist: allow its wheels or pin another version."
    else:
        hint = "Pin a version that has a wheel for this runtime, or an sdist to compile."
    return ResolutionError(msg, hint=hint)


def choose_files(
    packages: Sequence[LockedPackage],
    target: Target,
    *,
    no_binary: Iterable[str] = (),
    only_binary: Iterable[str] = (),
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
    local: Sequence[LocalPin] = (),
) -> tuple[Pin, ...]:
    """One pin per package that applies to ``target``, sorted by name. ``local`` holds what
    this machine provides (folders, files, git trees): it stands for the package of its name."""
    nb, ob = set(no_binary), set(only_binary)
    environment = target.marker_environment()
    pins = []
    for package in packages:
        if not applies(package, environment, extras=extras, groups=groups):
            continue
        if (pin := _local_pin(package, local, target)) is not None:
            pins.append(pin)
            continue
        no_bin = ":all:" in nb or package.name in nb
        only_bin = (":all:" in ob or package.name in ob) and package.name not in nb
        pins.append(choose_file(package, target, no_binary=no_bin, only_binary=only_bin))
    seen: dict[str, Pin] = {}
    for pin in pins:
        other = seen.setdefault(pin.name, pin)
        if other.version != pin.version:
            msg = f"{pin.name} is pinned twice for {target.describe()}: {other.version} and {pin.version}."
            raise ResolutionError(msg, hint="Fix the lock file so one version applies per target.")
    return tuple(sorted(seen.values(), key=lambda p: p.name))
