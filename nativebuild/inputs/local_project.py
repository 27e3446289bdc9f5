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

from nativebuild.errors import RequirementSyntaxError

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


def read_local_project(path: Path, *, origin: str) -> LocalProject:
    """Name and version of a local project, from its ``pyproject.toml`` (static metadata)."""
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
    name = project.get("name")
    if not isinstance(name, str) or not name:
        msg = f"{origin}: the local package at {path} has no [project] name in pyproject.toml"
        hint = "nativebuild reads local packages' names statically; add a [project] table."
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


def _members(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED and not d.endswith(".egg-info"))
        found.extend(
            Path(directory) / f
            for f in sorted(files)
            if f not in SKIPPED and not f.endswith(".pyc")
        )
    return found


def pack(project: LocalProject, dest: Path) -> str:
    """Write a byte-reproducible ``.tar.gz`` of ``project`` to ``dest``; return its sha256.

    Fixed order, timestamps, owners and modes: the same tree gives the same bytes anywhere.
    """
    top = project.archive_name.removesuffix(".tar.gz")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in _members(project.path):
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
