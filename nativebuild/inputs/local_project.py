"""Local path dependencies (``./libs/mypkg``): packed into a reproducible source archive.

The archive's sha256 is the package's identity: it goes into the resolution and compile cache
keys, so editing the package's code rebuilds it, and nothing else does. The build container
then treats it like any sdist: unpacked at a fixed path and built with ``pip wheel``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import stat
import sys
import tarfile
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from nativebuild.errors import ArchiveError, RequirementSyntaxError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Build outputs and tool caches never belong in a source archive.
SKIPPED = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".tox", ".nox", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", "build", "dist", ".DS_Store"}
)  # fmt: skip
UNKNOWN_VERSION = "0+local"


@dataclasses.dataclass(frozen=True, kw_only=True)
class LocalProject:
    name: str  # canonical
    version: str
    path: Path

    @property
    def archive_name(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}.tar.gz"


def read_local_project(path: Path, *, origin: str, name: str | None = None) -> LocalProject:
    """Name and version of a local project, from its ``pyproject.toml`` (static metadata).

    ``name`` is the name the requirement gives (``NAME @ git+...``): it stands in for a
    project that declares none statically (a ``setup.py`` project), and must match one that does.
    """
    if not path.is_dir():
        msg = f"{origin}: local path {path} is not a directory"
        raise RequirementSyntaxError(
            msg, hint="Point at the directory holding the package's pyproject.toml."
        )
    pyproject = path / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        project = {}
    declared = project.get("name")
    if isinstance(declared, str) and declared:
        if name is not None and canonicalize_name(declared) != canonicalize_name(name):
            msg = f"{origin}: the requirement names {name}, but the project there is {declared}"
            raise RequirementSyntaxError(msg, hint=f"Write '{declared} @ ...' in the requirement.")
        name = declared
    if name is None:
        msg = f"{origin}: the local package at {path} has no [project] name in pyproject.toml"
        hint = (
            "nativebuild reads local packages' names statically: add a [project] table, or "
            "name it in the requirement ('NAME @ file:///path')."
        )
        raise RequirementSyntaxError(msg, hint=hint)
    version = project.get("version")
    if not isinstance(version, str) or "version" in project.get("dynamic", []):
        version = UNKNOWN_VERSION
    try:
        Version(version)
    except InvalidVersion as err:
        msg = f"{origin}: the local package {name} has an invalid version {version!r}"
        raise RequirementSyntaxError(msg) from err
    return LocalProject(name=canonicalize_name(name), version=version, path=path.resolve())


def _members(root: Path, within: Path | None) -> list[Path]:
    found: list[Path] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED and not d.endswith(".egg-info"))
        found.extend(
            Path(directory) / f
            for f in sorted(files)
            if f not in SKIPPED and not f.endswith(".pyc")
        )
    if within is not None:
        for path in found:
            _check_inside(path, root, within)
    return found


def _check_inside(path: Path, root: Path, within: Path) -> None:
    """A tree we did not write (a git checkout) may not pack files from outside it through a
    symbolic link: ``link -> ~/.netrc`` would otherwise put a secret into the cache."""
    if path.resolve().is_relative_to(within.resolve()):
        return
    shown = path.relative_to(root).as_posix()
    msg = f"{shown} in the tree of {root.name} is a symbolic link leaving it ({path.readlink()})"
    raise ArchiveError(msg, hint="Only files inside the repository are packed: replace the link.")


def pack(project: LocalProject, dest: Path, *, within: Path | None = None) -> str:
    """Write a byte-reproducible ``.tar.gz`` of ``project`` to ``dest``; return its sha256.

    Fixed order, timestamps, owners and modes: the same tree gives the same bytes anywhere.
    With ``within``, every file must lie inside that folder (links are followed).
    """
    top = project.archive_name.removesuffix(".tar.gz")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in _members(project.path, within):
            rel = path.relative_to(project.path).as_posix()
            info = tarfile.TarInfo(f"{top}/{rel}")
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    with dest.open("wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack an archive :func:`pack` wrote into ``dest`` (new); return its top folder."""
    dest.mkdir(parents=True)
    with tarfile.open(archive) as packed:
        if hasattr(tarfile, "data_filter"):
            packed.extractall(dest, filter="data")
        else:  # pragma: no cover - our own archive: plain files under one top folder
            packed.extractall(dest)  # noqa: S202
    [top] = [path for path in dest.iterdir() if path.is_dir()]
    return top
