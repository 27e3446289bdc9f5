"""The user's source tree as archive entries: a sorted walk that materialises symlinks.

A symlink to a file is stored as the file's bytes (nothing in an archive can point anywhere);
a symlink to a directory is followed only when the directory lies inside the tree and does not
contain the link (a loop). Caches, VCS state and compiled files are left out.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import stat
from pathlib import Path

from nativebuild.errors import ArchiveError

# Names skipped anywhere in the source tree: caches, VCS and tool state, build leftovers.
EXCLUDED_NAMES = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".DS_Store",
        ".venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".egg-info")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceFile:
    """A file of the user's source tree (a symlink's target when the tree had a link)."""

    path: Path


@dataclasses.dataclass(frozen=True, kw_only=True)
class TreeFile:
    path: str  # relative to the tree, with / separators
    mode: int  # 0o644 or 0o755
    size: int
    source: SourceFile


def is_excluded(name: str) -> bool:
    """Whether a file or directory called ``name`` is left out of the source tree."""
    return name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES)


def source_files(
    src: Path, skip_dirs: frozenset[Path] = frozenset(), excludes: tuple[str, ...] = ()
) -> list[TreeFile]:
    """Every regular file under ``src``, following symlinks that stay sensible. ``excludes``
    are name patterns (fnmatch) left out besides the usual ones, files and folders alike."""
    if not src.is_dir():
        what = "does not exist" if not src.exists() else "is not a directory"
        msg = f"Source directory {src} {what}."
        raise ArchiveError(msg, hint="Point the source option at your function's code directory.")
    root = src.resolve()
    found: list[TreeFile] = []
    # (real directory, its path in the archive, the real directories above it)
    stack: list[tuple[Path, str, frozenset[Path]]] = [(root, "", frozenset({root}))]
    while stack:
        directory, prefix, above = stack.pop()
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as err:
            msg = f"Cannot list {directory}: {err.strerror}."
            raise ArchiveError(msg) from err
        for child in children:
            if is_excluded(child.name) or any(fnmatch.fnmatchcase(child.name, p) for p in excludes):
                continue
            rel = f"{prefix}{child.name}"
            _check_encodable(rel, src)
            path = Path(child.path)
            try:
                if child.is_symlink():
                    path = _resolve_link(path, rel, src)
                info = path.stat()
            except OSError as err:
                msg = f"Cannot read {src / rel}: {err.strerror}."
                raise ArchiveError(msg) from err
            if stat.S_ISDIR(info.st_mode):
                if path.resolve() in skip_dirs:
                    continue
                if not path.is_relative_to(root):
                    msg = f"{src / rel} is a symlink to {path}, a directory outside {src}."
                    hint = "Copy the directory into your source tree, or install it as a package."
                    raise ArchiveError(msg, hint=hint)
                if path in above:
                    msg = f"{src / rel} is a symlink to {path}, which contains it (a loop)."
                    raise ArchiveError(msg, hint="Remove the symlink.")
                stack.append((path, f"{rel}/", above | {path}))
            elif stat.S_ISREG(info.st_mode):
                mode = 0o755 if info.st_mode & stat.S_IXUSR else 0o644
                found.append(
                    TreeFile(path=rel, mode=mode, size=info.st_size, source=SourceFile(path=path))
                )
            else:
                msg = f"{src / rel} is not a regular file, directory or symlink to one."
                raise ArchiveError(msg, hint="Move it out of your source directory.")
    return found


def _resolve_link(link: Path, rel: str, src: Path) -> Path:
    try:
        return link.resolve(strict=True)
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop before Python 3.13
        msg = f"{src / rel} is a broken or looping symlink (to {link.readlink()})."
        raise ArchiveError(msg, hint="Fix or remove the symlink.") from err


def _check_encodable(rel: str, src: Path) -> None:
    # Names a zip cannot store (undecodable bytes on disk surface as surrogates).
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError as err:
        msg = f"{src / rel!r} has a name that is not valid UTF-8."
        raise ArchiveError(msg, hint="Rename the file.") from err
