"""Lock files as inputs: which kind a path is, and its pins as :class:`LockedPackage` records.

A lock file installs exactly its pins and hashes and is never re-resolved. ``pylock.toml`` is
read as it is; ``uv.lock`` is exported to PEP 751 by uv (``--frozen``); ``poetry.lock`` is read
here: its packages are selected by walking the lock's dependency graph from the project's
``pyproject.toml``, and the package index gives its files their URLs (the lock has none).
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from nativebuild.errors import (
    ResolutionError,
)
from nativebuild.index.pip_config import IndexSettings
from nativebuild.index.simple_api import FileLookup
from nativebuild.index.uv import UvRunner, uv_environment
from nativebuild.inputs.locked import LockedPackage, read_pylock
from nativebuild.inputs.poetry_lock import read_lock_text, read_poetry_lock
from nativebuild.redact import redact

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

InputKind = Literal["requirements", "pyproject", "pylock", "uv-lock", "poetry-lock"]

_PYLOCK_RE = re.compile(r"pylock\.([^.]+\.)?toml")  # PEP 751: pylock.toml, pylock.<name>.toml
_CONSTRAINT_RE = re.compile(r"(\^|~=|~|===|==|!=|<=|>=|<|>)?\s*([^\s,|<>=!~^]+)")
_STDERR_LINES = 20
_NOT_SUPPORTED = ("git", "directory", "file", "url")  # poetry source types we cannot fetch yet


def input_kind(path: Path) -> InputKind:
    """What ``path`` is, by its file name."""
    name = path.name
    if name == "pyproject.toml":
        return "pyproject"
    if name == "uv.lock":
        return "uv-lock"
    if name == "poetry.lock":
        return "poetry-lock"
    if _PYLOCK_RE.fullmatch(name):
        return "pylock"
    return "requirements"


def load_locked(
    path: Path,
    *,
    kind: InputKind,
    extras: Sequence[str],
    groups: Sequence[str],
    uv: UvRunner,
    index: IndexSettings,
    env: Mapping[str, str],
    cache_dir: Path,
    lookup: FileLookup | None = None,
) -> tuple[LockedPackage, ...]:
    """The pins of the lock file ``path``, with the markers under which each is needed."""
    if kind == "pylock":
        return read_pylock(read_lock_text(path), origin=str(path))
    if kind == "uv-lock":
        uv_env = uv_environment(env, index, cache_dir)
        return export_uv_lock(path, extras=extras, groups=groups, uv=uv, env=uv_env)
    if kind == "poetry-lock":
        return read_poetry_lock(path, extras=extras, groups=groups, index=index, lookup=lookup)
    msg = f"{path} is a {kind} input, not a lock file"
    raise ValueError(msg)


# --- uv.lock --------------------------------------------------------------------------------


def uv_export_arguments(extras: Sequence[str], groups: Sequence[str], output: Path) -> list[str]:
    """``uv export`` of exactly the locked pins: no project, no groups but those asked for.

    uv exports the ``dev`` group and ``[tool.uv] default-groups`` unless told not to; a Lambda
    archive must carry neither unless they are requested.
    """
    args = ["export", "--format", "pylock.toml", "--frozen", "--no-emit-project", "--no-header"]
    args.append("--no-default-groups")
    if "dev" not in groups:
        args.append("--no-dev")
    for extra in extras:
        args += ["--extra", extra]
    for group in groups:
        args += ["--group", group]
    return [*args, "--output-file", str(output)]


def export_uv_lock(
    path: Path,
    *,
    extras: Sequence[str],
    groups: Sequence[str],
    uv: UvRunner,
    env: Mapping[str, str],
) -> tuple[LockedPackage, ...]:
    """Let uv turn ``uv.lock`` (and the pyproject.toml beside it) into a ``pylock.toml``."""
    read_lock_text(path)  # a missing or unreadable lock is reported as such, not as a uv failure
    if not uv.available():
        msg = f"uv is needed to read {path}, but it is not installed"
        raise ResolutionError(msg, hint="Install uv on this machine: pip install uv")
    with tempfile.TemporaryDirectory(prefix="nativebuild-uv-export-") as scratch:
        output = Path(scratch) / "pylock.toml"  # uv insists on this name
        args = uv_export_arguments(extras, groups, output)
        result = uv.run(args, cwd=path.absolute().parent, env=env)
        text = output.read_text(encoding="utf-8") if output.is_file() else None
    if result.returncode != 0 or text is None:
        tail = "\n".join(result.stderr.strip().splitlines()[-_STDERR_LINES:])
        msg = f"uv could not export {path} (exit code {result.returncode}):\n{redact(tail)}"
        hint = "Check the extras and groups you asked for; run `uv lock` if the lock is stale."
        raise ResolutionError(msg, hint=hint)
    return read_pylock(text, origin=str(path))


# --- poetry.lock ----------------------------------------------------------------------------
