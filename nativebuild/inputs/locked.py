"""Exact pins with their files, as a lock file or a resolver states them (PEP 751 shaped).

Every input that fixes versions ends up here: a ``pylock.toml``, ``uv.lock`` (exported to
pylock by uv), ``poetry.lock``, or the resolution uv makes on the host. Choosing the one file to
install per package for a target is :func:`choose_file`, a pure function.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from nativebuild.errors import RequirementSyntaxError, ResolutionError
from nativebuild.pins import FileRef, Pin, filename_of
from nativebuild.redact import strip_credentials
from nativebuild.targets import Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclasses.dataclass(frozen=True, kw_only=True)
class LockedPackage:
    name: str  # canonical
    version: str
    marker: str | None
    wheels: tuple[FileRef, ...]
    sdist: FileRef | None
    origin: str  # where the pin comes from, for messages
    directory: str | None = None  # a local project, packed by nativebuild (localpkg.py)


def _file_ref(entry: Mapping[str, Any], *, package: str, origin: str) -> FileRef:
    url = entry.get("url")
    hashes = entry.get("hashes") or {}
    sha256 = hashes.get("sha256") if isinstance(hashes, Mapping) else None
    if not isinstance(url, str) or not isinstance(sha256, str):
        msg = f"{origin}: a file of {package} has no url or no sha256 hash."
        raise RequirementSyntaxError(msg, hint="Lock with URLs and sha256 hashes (uv and pip do).")
    name = entry.get("name") or filename_of(url)
    return FileRef(url=strip_credentials(url), filename=str(name), sha256=sha256.lower())


def read_pylock(text: str, *, origin: str) -> tuple[LockedPackage, ...]:
    """The packages of a PEP 751 ``pylock.toml``; only index files (wheels, sdists) are taken."""
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
        for unsupported in ("vcs", "archive"):
            if unsupported in entry:
                msg = f"{origin}: {name} comes from a {unsupported}, which is not supported yet."
                raise ResolutionError(msg, hint="Lock a released version from a package index.")
        if isinstance(entry.get("directory"), Mapping):
            packages.append(
                LockedPackage(
                    name=canonicalize_name(name), version=str(version or ""), marker=entry.get("marker"),
                    wheels=(), sdist=None, origin=origin, directory=str(entry["directory"].get("path", "")),
                )
            )  # fmt: skip
            continue
        if not isinstance(version, str):
            msg = f"{origin}: {name} has no version."
            raise RequirementSyntaxError(msg)
        wheels = tuple(_file_ref(w, package=name, origin=origin) for w in entry.get("wheels", []))
        sdist_entry = entry.get("sdist")
        sdist = _file_ref(sdist_entry, package=name, origin=origin) if sdist_entry else None
        marker = entry.get("marker")
        packages.append(
            LockedPackage(
                name=canonicalize_name(name),
                version=version,
                marker=str(marker) if marker else None,
                wheels=wheels,
                sdist=sdist,
                origin=origin,
            )
        )
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


def _local_pin(package: LockedPackage, local: Mapping[str, Pin]) -> Pin:
    pin = local.get(package.name)
    if pin is None:
        msg = f"{package.origin}: {package.name} comes from the directory {package.directory}, which nativebuild did not pack."
        hint = "Name local projects in a requirements file (./libs/pkg); lock files cannot point at them yet."
        raise ResolutionError(msg, hint=hint)
    return pin


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
    local: Mapping[str, Pin] | None = None,
) -> tuple[Pin, ...]:
    """One pin per package that applies to ``target``, sorted by name. ``local`` holds the
    packed local projects by name, for the lock's directory entries."""
    nb, ob = set(no_binary), set(only_binary)
    environment = target.marker_environment()
    pins = []
    for package in packages:
        if not applies(package, environment, extras=extras, groups=groups):
            continue
        if package.directory is not None:
            pins.append(_local_pin(package, local or {}))
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
