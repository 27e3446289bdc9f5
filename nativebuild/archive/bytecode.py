"""``--compile``: ship ``.pyc`` files, compiled by the target's own Python, valid at cold start.

Why hash-based pycs (PEP 552): a timestamp pyc records the source's mtime and size, and Lambda
extracts every file with the archive's fixed timestamp, so whether it matches is luck; a stale
pyc is recompiled at each cold start and cannot be rewritten (``/var/task`` and ``/opt`` are
read-only). Why *checked* hashes rather than unchecked: Lambda merges layers and the function by
path, so a ``mod.py`` from a later layer can sit beside a ``.pyc`` of another layer's
``mod.py``; a checked pyc is then ignored, an unchecked one would run the wrong code. Checking
costs one read and a SipHash of the source per module; compiling, which it avoids, costs far
more.

Compiling happens in the target's build image (bytecode is per Python minor: 3.12's cannot come
from the host's 3.11), as one container job for everything not cached. Results are cached per
group (one wheel, or your source), keyed by the files' identities, where they land (their
path in Lambda is in tracebacks), the image and this recipe; so the archive stays
byte-reproducible and a warm rebuild starts no container.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from nativebuild.archive.jobs import IN_DIR, OUT_DIR, host_path, run_jobs
from nativebuild.archive.plan import (
    ArchiveEntry,
    ArchivePlan,
    SourceFile,
    WheelMember,
    with_entries,
)
from nativebuild.cache.keys import build_key
from nativebuild.cache.local import CachedFile, LocalCache
from nativebuild.engine.runner import ContainerRunner
from nativebuild.reporting import Reporter
from nativebuild.targets import Target

INVALIDATION = "checked-hash"
RECIPE = "1"
_SKIPPED_TOPS = frozenset({"bin", "include"})  # scripts and headers are never imported


def pyc_path(path: str, python: str) -> str:
    """``pkg/mod.py`` → ``pkg/__pycache__/mod.cpython-312.pyc`` (what CPython 3.X looks for)."""
    head, _, name = path.rpartition("/")
    tag = f"cpython-{python.replace('.', '')}"
    return f"{head + '/' if head else ''}__pycache__/{name.removesuffix('.py')}.{tag}.pyc"


def compilable(entry: ArchiveEntry, *, importable_prefix: str) -> bool:
    """A ``.py`` file where Python imports from: under ``importable_prefix`` ("python/" of a
    layer; "" for a function, minus ``bin/``, ``include/`` and metadata)."""
    path = entry.path
    if not path.endswith(".py") or not path.startswith(importable_prefix):
        return False
    parts = path[len(importable_prefix) :].split("/")
    if not importable_prefix and parts[0] in _SKIPPED_TOPS:
        return False
    return not any(part.endswith((".dist-info", ".data")) for part in parts[:-1])


@dataclasses.dataclass(frozen=True, kw_only=True)
class Group:
    """Sources compiled and cached together: one wheel's, or the source tree's."""

    key: str
    label: str
    sources: tuple[ArchiveEntry, ...]
    mount: str  # where the archive is extracted: dfile = f"{mount}/{path}"


def _identity(entry: ArchiveEntry, wheel_hashes: Mapping[Path, str]) -> str:
    source = entry.source
    if isinstance(source, SourceFile):
        return hashlib.sha256(source.path.read_bytes()).hexdigest()
    return f"{wheel_hashes[source.wheel]}:{source.member}"


def plan_groups(
    plan: ArchivePlan,
    *,
    mount: str,
    importable_prefix: str,
    python: str,
    image_id: str,
    wheel_hashes: Mapping[Path, str],
) -> list[Group]:
    """The compile groups of ``plan``, each with its cache key (reads source files to hash)."""
    by_origin: dict[str, list[ArchiveEntry]] = {}
    for entry in plan.entries:
        if compilable(entry, importable_prefix=importable_prefix):
            origin = (
                entry.source.wheel.name if isinstance(entry.source, WheelMember) else "your source"
            )
            by_origin.setdefault(origin, []).append(entry)
    groups = []
    for label, entries in sorted(by_origin.items()):
        files = [[entry.path, _identity(entry, wheel_hashes)] for entry in entries]
        listing = hashlib.sha256(json.dumps(files, separators=(",", ":")).encode()).hexdigest()
        key = build_key(
            {
                "kind": "bytecode", "python": python, "build_image_id": image_id,
                "invalidation": INVALIDATION, "recipe": RECIPE, "mount": mount, "files": listing,
            }
        )  # fmt: skip
        groups.append(Group(key=key, label=label, sources=tuple(entries), mount=mount))
    return groups


@dataclasses.dataclass(frozen=True, kw_only=True)
class Compiled:
    bundle: CachedFile  # a zip of the group's .pyc files, named by their archive paths
    failed: tuple[str, ...]  # Lambda paths of sources this Python could not compile


def _cached(cache: LocalCache, key: str) -> Compiled | None:
    document = cache.get_json("bytecode", key)
    if document is None:
        return None
    bundle = cache.get_file(str(document["sha256"]), str(document["filename"]))
    if bundle is None:
        return None
    return Compiled(bundle=bundle, failed=tuple(map(str, document.get("failed", ()))))


def _read(entry: ArchiveEntry, opened: dict[Path, zipfile.ZipFile]) -> bytes:
    source = entry.source
    if isinstance(source, SourceFile):
        return source.path.read_bytes()
    if source.wheel not in opened:
        opened[source.wheel] = zipfile.ZipFile(source.wheel)
    return opened[source.wheel].read(source.member)


def compile_groups(
    groups: Sequence[Group],
    target: Target,
    *,
    runner: ContainerRunner,
    cache: LocalCache,
    reporter: Reporter,
    verbose: bool,
    job_target: Callable[[], Target] | None = None,
) -> dict[str, Compiled]:
    """Every group's compiled bundle by key: from the cache, else from one container job
    (in ``job_target()``'s build image: asked for only when something must be compiled)."""
    done: dict[str, Compiled] = {}
    missing: dict[str, Group] = {}
    for group in groups:
        hit = _cached(cache, group.key)
        if hit is not None:
            done[group.key] = hit
        else:
            missing.setdefault(group.key, group)
    if not missing:
        return done
    count = sum(len(g.sources) for g in missing.values())
    target = job_target() if job_target is not None else target
    reporter.step(f"Compiling {count} modules to bytecode ({INVALIDATION}) in {target.build_image}")
    with cache.scratch_dir() as work:
        jobs, where = [], {}
        opened: dict[Path, zipfile.ZipFile] = {}
        try:
            for gi, group in enumerate(missing.values()):
                for fi, entry in enumerate(group.sources):
                    name = f"{gi}/{fi}"
                    src = work / "in" / f"{name}.py"
                    src.parent.mkdir(parents=True, exist_ok=True)
                    src.write_bytes(_read(entry, opened))
                    out = f"{OUT_DIR}/{name}.pyc"
                    jobs.append(
                        {
                            "src": f"{IN_DIR}/{name}.py",
                            "out": out,
                            "dfile": f"{group.mount}/{entry.path}",
                        }
                    )
                    where[out] = (group.key, entry.path)
        finally:
            for archive in opened.values():
                archive.close()
        results = run_jobs(
            {"compile": jobs}, target, runner=runner, reporter=reporter, verbose=verbose,
            workdir=work, description="compile bytecode",
        )  # fmt: skip
        compiled = {str(out) for out in results.get("compiled", [])}
        failed = {str(item["src"]) for item in results.get("compile_failed", [])}
        for group in missing.values():
            done[group.key] = _store(group, compiled, failed, where, work, cache, target)
    if failed:
        shown = ", ".join(sorted(failed)[:5]) + (" ..." if len(failed) > 5 else "")
        reporter.detail(
            f"{len(failed)} files are not valid Python {target.runtime.python} and keep no "
            f".pyc: {shown}"
        )
    return done


def _store(
    group: Group,
    compiled: set[str],
    failed: set[str],
    where: Mapping[str, tuple[str, str]],
    work: Path,
    cache: LocalCache,
    target: Target,
) -> Compiled:
    bundle = work / f"bytecode-{group.key[:24]}.zip"
    python = target.runtime.python
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as out:
        for container_path, (key, path) in sorted(where.items(), key=lambda kv: kv[1]):
            if key == group.key and container_path in compiled:
                data = host_path(container_path, work).read_bytes()
                out.writestr(zipfile.ZipInfo(pyc_path(path, python)), data)
    sha256 = hashlib.sha256(bundle.read_bytes()).hexdigest()
    stored = cache.put_file(bundle, sha256=sha256, filename=bundle.name, move=True)
    group_failed = sorted(failed & {f"{group.mount}/{e.path}" for e in group.sources})
    cache.put_json(
        "bytecode",
        group.key,
        {"sha256": sha256, "filename": bundle.name, "failed": group_failed, "label": group.label},
    )
    return Compiled(bundle=stored, failed=tuple(group_failed))


def with_bytecode(
    plan: ArchivePlan, groups: Sequence[Group], compiled: Mapping[str, Compiled], python: str
) -> tuple[ArchivePlan, int]:
    """``plan`` plus the .pyc of every compiled source (replacing any a wheel shipped), and how
    many were added."""
    added = []
    for group in groups:
        result = compiled[group.key]
        with zipfile.ZipFile(result.bundle.path) as bundle:
            sizes = {info.filename: info.file_size for info in bundle.infolist()}
        for entry in group.sources:
            target = pyc_path(entry.path, python)
            if target in sizes:
                member = WheelMember(wheel=result.bundle.path, member=target, rewrite_shebang=False)
                added.append(
                    ArchiveEntry(
                        path=target,
                        mode=0o644,
                        source=member,
                        owner=entry.owner,
                        size=sizes[target],
                    )
                )
    return with_entries(plan, added, replace=True), len(added)
