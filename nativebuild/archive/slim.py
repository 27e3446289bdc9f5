"""Opt-in slimming of an archive plan: pure decisions over paths and owners, no I/O.

Rules (``slim = [...]``, ``--slim RULE``; ``all`` means every one):

- ``tests``, ``docs``, ``examples``: drop directories of that name (``tests``/``test``,
  ``docs``/``doc``, ``examples``/``example``) inside dependencies; never in your own source.
- ``runtime-provided``: drop distributions the runtime already has (``resources/
  runtime_packages.toml``: boto3, botocore, ...), whole, ``.dist-info`` included, so that
  ``importlib.metadata`` reports the runtime's copy, which is the one imported.
- ``strip``: strip debug symbols from the shared objects nativebuild compiled itself
  (:mod:`nativebuild.archive.strip` runs it; third-party wheels' binaries are never touched).

``exclude`` globs drop any file (yours too); ``include`` globs keep a file whatever else says,
and keep a runtime-provided distribution whole when they match any of its files. Path rules
never remove a file of a ``*.dist-info`` directory: ``importlib.metadata`` must keep working.
Globs match paths relative to where packages are installed (the archive root of a function,
``python/`` of a layer): ``botocore/data/ec2/**``, ``*.pyi`` (no ``/``: any file or directory of
that name, at any depth), ``docs/`` (a trailing ``/``: directories only).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from packaging.utils import canonicalize_name

from nativebuild.archive.plan import SOURCE_OWNER, ArchiveEntry, ArchivePlan
from nativebuild.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DIRECTORY_RULES = {
    "tests": frozenset({"tests", "test"}),
    "docs": frozenset({"docs", "doc"}),
    "examples": frozenset({"examples", "example"}),
}
RULES = (*DIRECTORY_RULES, "runtime-provided", "strip")
RUNTIME_PROVIDED = "runtime-provided"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SlimOptions:
    rules: frozenset[str] = frozenset()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.rules - {"strip"} or self.exclude)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Removal:
    path: str
    owner: str  # "name version", or "" for your source
    size: int
    reason: str  # a rule name, or "exclude GLOB"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SlimResult:
    plan: ArchivePlan
    removed: tuple[Removal, ...]


def parse_rules(value: Any, origin: str) -> tuple[str, ...]:
    """Rule names from a list or a comma-separated string; ``all`` expands to every rule."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        msg = f"slim in {origin} must be a list of rules, not {value!r}."
        raise ConfigError(msg, hint=f"Rules: {', '.join(RULES)}, or all.")
    rules: list[str] = []
    for item in (part for entry in items for part in str(entry).split(",")):
        name = item.strip().lower()
        if not name:
            continue
        if name == "all":
            rules.extend(RULES)
        elif name in RULES:
            rules.append(name)
        else:
            msg = f"Unknown slim rule {item!r} in {origin}."
            raise ConfigError(msg, hint=f"Rules: {', '.join(RULES)}, or all.")
    return tuple(dict.fromkeys(rules))


@functools.cache
def runtime_packages(runtime: str) -> frozenset[str]:
    """Canonical names of the distributions ``runtime`` provides (empty when not recorded)."""
    text = (
        importlib.resources.files("nativebuild.resources")
        .joinpath("runtime_packages.toml")
        .read_text(encoding="utf-8")
    )
    row = tomllib.loads(text).get("runtimes", {}).get(runtime, {})
    return frozenset(canonicalize_name(name) for name in row.get("packages", ()))


def _translate(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A predicate over relative paths: does ``pattern`` match the file or a directory above?"""
    text = pattern.strip()
    dirs_only = text.endswith("/")
    text = text.strip("/")
    if not text or text in {".", ".."}:
        msg = f"Empty or meaningless glob {pattern!r}."
        raise ConfigError(msg, hint="Write globs like 'botocore/data/ec2/**' or '*.pyi'.")
    regex = re.compile(_translate(text))
    if "/" in text:
        anchored = re.compile(_translate(text) + ("/.+" if dirs_only else "(?:/.+)?"))
        return lambda path: anchored.fullmatch(path) is not None
    if dirs_only:
        return lambda path: any(regex.fullmatch(part) for part in path.split("/")[:-1])
    return lambda path: any(regex.fullmatch(part) for part in path.split("/"))


def _relative(path: str, prefixes: Sequence[str]) -> str:
    for prefix in prefixes:
        if prefix and path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _in_dist_info(rel: str) -> bool:
    return any(part.endswith(".dist-info") for part in rel.split("/")[:-1])


def _owner_name(owner: str) -> str:
    return canonicalize_name(owner.split(" ", 1)[0]) if owner else ""


def slim_plan(
    plan: ArchivePlan,
    options: SlimOptions,
    *,
    site_prefix: str = "",
    runtime_provided: frozenset[str] = frozenset(),
) -> SlimResult:
    """Apply ``options`` to ``plan``; returns the smaller plan and what was removed, why."""
    if not options.active:
        return SlimResult(plan=plan, removed=())
    includes = [compile_glob(p) for p in options.include]
    excludes = [(p, compile_glob(p)) for p in options.exclude]
    dir_names = {
        name: rule
        for rule in DIRECTORY_RULES
        if rule in options.rules
        for name in DIRECTORY_RULES[rule]
    }
    prefixes = (site_prefix,)
    included = {
        e.path for e in plan.entries if any(m(_relative(e.path, prefixes)) for m in includes)
    }
    drop_dists: set[str] = set()
    if RUNTIME_PROVIDED in options.rules:
        kept_whole = {e.owner for e in plan.entries if e.path in included}
        drop_dists = {
            e.owner
            for e in plan.entries
            if e.owner not in kept_whole and _owner_name(e.owner) in runtime_provided
        }
    kept: list[ArchiveEntry] = []
    removed: list[Removal] = []
    for entry in plan.entries:
        reason = None
        if entry.owner in drop_dists:
            reason = RUNTIME_PROVIDED
        elif entry.path not in included:
            reason = _path_reason(entry, _relative(entry.path, prefixes), excludes, dir_names)
        if reason is None:
            kept.append(entry)
        else:
            removed.append(
                Removal(path=entry.path, owner=entry.owner, size=entry.size, reason=reason)
            )
    return SlimResult(plan=dataclasses.replace(plan, entries=tuple(kept)), removed=tuple(removed))


def _path_reason(
    entry: ArchiveEntry,
    rel: str,
    excludes: Sequence[tuple[str, Callable[[str], bool]]],
    dir_names: dict[str, str],
) -> str | None:
    if _in_dist_info(rel):
        return None
    for pattern, matches in excludes:
        if matches(rel):
            return f"exclude {pattern}"
    if entry.owner != SOURCE_OWNER:
        for part in rel.split("/")[:-1]:
            if part in dir_names:
                return dir_names[part]
    return None


def summarize(removed: Iterable[Removal]) -> list[str]:
    """One line per (distribution, reason), largest first: what the summary shows."""
    groups: dict[tuple[str, str], list[int]] = {}
    for item in removed:
        counts = groups.setdefault((item.owner or "your source", item.reason), [0, 0])
        counts[0] += 1
        counts[1] += item.size
    ordered = sorted(groups.items(), key=lambda kv: (-kv[1][1], kv[0]))
    return [
        f"removed {files} files ({size:,} bytes) of {owner}: {reason}"
        for (owner, reason), (files, size) in ordered
    ]
