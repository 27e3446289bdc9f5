"""The build: inputs → resolution → plan → downloads and compiles → archive.

The only orchestrator. Decisions come from pure functions (``plan/``, ``inputs/locked``,
``sdists/``, ``archive/``); this module does the I/O in order and reports through a Reporter.
Each target's way to its wheels is :mod:`nativebuild.pipeline.stage`; compiling over a pool of
engines is :mod:`nativebuild.pipeline.compiling`. A shard (``--shard K/N``) plans as a build
does, compiles only its own sdists into the cache and writes no archive.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from nativebuild.archive.layout import Kind
from nativebuild.archive.manifest import ArchiveRecord, write_manifest
from nativebuild.cache.local import CachedFile
from nativebuild.config.settings import Settings
from nativebuild.engine.runner import ContainerRunner, Engine
from nativebuild.errors import ConfigError
from nativebuild.index.pip_config import local_path
from nativebuild.index.uv import UvRunner
from nativebuild.inputs.git import is_commit
from nativebuild.pipeline.abi_gate import check_group, verify_built
from nativebuild.pipeline.assemble import assemble_target
from nativebuild.pipeline.compiling import BuilderRecord, builder_records
from nativebuild.pipeline.context import BuildContext, open_context
from nativebuild.pipeline.stage import (
    StagedTarget,
    WheelRecord,
    acquire,
    prefetch,
    stage_target,
    wheel_records,
)
from nativebuild.plan.distributions import BuildPlan, check_cache_only
from nativebuild.plan.shards import (
    Shard,
    ShardJob,
    compile_jobs,
    jobs_left_to_others,
    matrix,
    shard_of,
    shard_plan,
)
from nativebuild.reporting import Reporter
from nativebuild.targets import (
    Architecture,
    RuntimeLifecycle,
    Target,
    deprecation_notices,
)

__all__ = [
    "BuildResult", "PlanResult", "StagedTarget", "TargetPlan", "WheelRecord", "build",
    "dump_json", "plan",
]  # fmt: skip

_S = TypeVar("_S")
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MadeFrom:
    """What a build's archives depend on beyond its settings: files and trees it read, and
    the images whose ids entered its cache keys or ABI verdicts."""

    files: tuple[Path, ...]
    trees: tuple[Path, ...]
    images: Mapping[str, str]
    # Inputs that can change with no file here changing (a git branch, a lock file's local
    # source): such a build is never answered as up to date.
    volatile: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildResult:
    archives: tuple[ArchiveRecord, ...]
    wheels: tuple[WheelRecord, ...]
    containers_started: int
    manifest: Path | None = None
    builders: tuple[BuilderRecord, ...] = ()
    shard: Shard | None = None  # a shard's result: its wheels only, and no archive
    left_to_other_shards: tuple[ShardJob, ...] = ()
    made_from: MadeFrom | None = None  # what pipeline.uptodate records
    deprecations: tuple[RuntimeLifecycle, ...] = ()

    def to_json(self) -> dict[str, Any]:
        document = {
            "archives": [_archive_json(a) for a in self.archives],
            "wheels": [dataclasses.asdict(w) for w in self.wheels],
            "containers_started": self.containers_started,
            "manifest": str(self.manifest) if self.manifest else None,
            "builders": [{**dataclasses.asdict(b), "jobs": list(b.jobs)} for b in self.builders],
            "deprecations": [d.to_json() for d in self.deprecations],
        }
        if self.shard is not None:
            document["shard"] = str(self.shard)
            document["left_to_other_shards"] = [
                dataclasses.asdict(job) for job in self.left_to_other_shards
            ]
        return document


def _archive_json(archive: ArchiveRecord) -> dict[str, Any]:
    document = {**dataclasses.asdict(archive), "path": str(archive.path)}
    if archive.image is not None:
        document["image"] = {**archive.image.to_json(), "loaded": archive.image.loaded}
    return document


@dataclasses.dataclass(frozen=True, kw_only=True)
class TargetPlan:
    target: Target
    plan: BuildPlan
    shards: int | None = None

    def to_json(self) -> dict[str, Any]:
        items = []
        for item in self.plan.items:
            entry: dict[str, Any] = {
                "name": item.pin.name,
                "version": item.pin.version,
                "action": item.action.value,
                "reason": item.reason,
                "file": item.pin.filename,
                "sha256": item.pin.sha256,
            }
            if item.compile_key:
                entry["compile_key"] = item.compile_key
                if self.shards:
                    entry["shard"] = f"{shard_of(item.compile_key, self.shards)}/{self.shards}"
            items.append(entry)
        return {
            "runtime": self.target.runtime.name,
            "arch": self.target.arch.value,
            "glibc": str(self.target.glibc),
            "build_image": self.target.build_image,
            "items": items,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlanResult:
    targets: tuple[TargetPlan, ...]
    containers_started: int
    shards: int | None = None  # plan --shards N: each compile job's shard of N
    deprecations: tuple[RuntimeLifecycle, ...] = ()

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "targets": [t.to_json() for t in self.targets],
            "containers_started": self.containers_started,
            "deprecations": [d.to_json() for d in self.deprecations],
        }
        if self.shards:
            jobs = compile_jobs([(t.target.arch.value, t.plan) for t in self.targets], self.shards)
            document["shards"] = self.shards
            document["compile_jobs"] = [dataclasses.asdict(job) for job in jobs]
            document["matrix"] = matrix(jobs)
        return document


def report_deprecation(
    settings: Settings, reporter: Reporter, today: datetime.date | None
) -> tuple[RuntimeLifecycle, ...]:
    """Warn when the runtime is deprecated (or soon will be), with Lambda's dates; never fails.
    Returns the notice for the JSON output (none for a supported runtime)."""
    notices = deprecation_notices([settings.runtime], today)
    for notice in notices:
        reporter.warning(notice.message)
    return notices


def build(
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, Sequence[Engine]] | None = None,
    today: datetime.date | None = None,
) -> BuildResult:
    """Build one archive per target of ``settings`` (or, with a shard, its compiled wheels).

    Resolving and planning run target by target (they are quick); downloads are shared by all
    targets; compiling and packing run for several targets at once, up to ``settings.jobs``.
    ``today`` (default: the date today) dates the runtime's deprecation warning.
    """
    targets = settings.targets()  # validates runtime and images before any work
    check_image_settings(settings)
    if settings.shard is not None and settings.cache_only:
        msg = (
            f"--shard {settings.shard} compiles its part of the sdists: --cache-only forbids that."
        )
        raise ConfigError(
            msg, hint="Shards fill the cache; give --cache-only to the assembly only."
        )
    deprecations = report_deprecation(settings, reporter, today)
    context = open_context(
        settings, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv,
        builders=builders,
    )  # fmt: skip
    containers_before = context.containers_started()  # runners may be reused across builds
    staged = [stage_target(context, target, compile_while_resolving=True) for target in targets]
    if settings.shard is not None:
        return build_shard(context, staged, settings.shard, containers_before)
    if settings.cache_only:  # before any download or compile container
        check_cache_only((stage.target, stage.plan) for stage in staged)
    downloaded = prefetch(context, staged)
    outcomes = run_all(
        context, staged, lambda stage: build_target(context, stage, downloaded), _jobs(settings)
    )
    archives = tuple(archive for target_archives, _ in outcomes for archive in target_archives)
    wheels = tuple(wheel for _, target_wheels in outcomes for wheel in target_wheels)
    if settings.verify:
        for stage, (target_archives, _) in zip(staged, outcomes, strict=True):
            verify_built(context, stage.target, target_archives)
    return BuildResult(
        archives=archives,
        wheels=wheels,
        containers_started=context.containers_started() - containers_before,
        manifest=write_manifest(archives, settings.output),
        builders=builder_records(context, [t.arch for t in targets]),
        made_from=made_from(context),
        deprecations=deprecations,
    )


def made_from(context: BuildContext) -> MadeFrom:
    settings, inputs = context.settings, context.inputs
    lines = [] if inputs.requirements is None else inputs.requirements.requirements
    local_indexes = (*context.index.find_links, *context.index.local_index_urls)
    trees = [
        *([settings.src] if settings.src else []),
        *(fn.src for fn in settings.functions if fn.src is not None),
        *(line.local_path for line in lines if line.local_path is not None),
        *(folder for link in local_indexes if (folder := local_path(link)) is not None),
    ]
    files = [line.local_file for line in lines if line.local_file is not None]
    moving = any(line.git is not None and not is_commit(line.git.rev) for line in lines)
    return MadeFrom(
        files=(*inputs.files, *files, *settings.with_layers),
        trees=tuple(trees),
        images=dict(context.image_ids),
        volatile=moving or (inputs.locked is not None and bool(inputs.local)),
    )


def check_image_settings(settings: Settings) -> None:
    """An image needs its handler (its CMD); --load means nothing without an image."""
    if settings.kind is Kind.IMAGE and settings.handler is None:
        msg = "An image needs the handler its CMD runs: pass --handler module.function."
        hint = 'Or set handler = "app.handler" in [tool.nativebuild], or NATIVEBUILD_HANDLER.'
        raise ConfigError(msg, hint=hint)
    if settings.load and settings.kind is not Kind.IMAGE:
        msg = f"--load loads an image, but this build writes {settings.kind} archives."
        raise ConfigError(msg, hint="Add --kind image, or drop --load.")
    if settings.with_layers and settings.kind is Kind.IMAGE:
        msg = "An image function cannot use Lambda layers; --with-layer is for zip functions."
        hint = "Add what the layers hold to the requirements instead."
        raise ConfigError(msg, hint=hint)
    if settings.verify and settings.kind is Kind.IMAGE:
        msg = "--verify checks .zip archives in the runtime image; an image is its own runtime."
        hint = "Drop --verify, build with --load, then `docker run` the image."
        raise ConfigError(msg, hint=hint)


def build_shard(
    context: BuildContext, staged: Sequence[StagedTarget], shard: Shard, containers_before: int
) -> BuildResult:
    """Compile this shard's sdists of every target into the cache (local, and the remote one
    with --cache); no archive, no manifest. A later ``build --cache-only`` assembles."""
    mine = [dataclasses.replace(stage, plan=shard_plan(stage.plan, shard)) for stage in staged]
    left = jobs_left_to_others(((s.target.arch.value, s.plan) for s in staged), shard)
    count = sum(len(stage.plan.items) for stage in mine)
    if context.settings.verify:
        context.reporter.detail(f"--verify: shard {shard} writes no archive; the assembly verifies")
    context.reporter.step(
        f"Shard {shard}: {count} of the sdists are this shard's, {len(left)} are left to the others"
    )
    downloaded = prefetch(context, mine)  # only this shard's sdists

    def acquired(stage: StagedTarget) -> list[WheelRecord]:
        return wheel_records(context, stage, acquire(context, stage, downloaded))

    outcomes = run_all(context, mine, acquired, _jobs(context.settings))
    return BuildResult(
        archives=(),
        wheels=tuple(wheel for wheels in outcomes for wheel in wheels),
        containers_started=context.containers_started() - containers_before,
        builders=builder_records(context, [stage.target.arch for stage in staged]),
        shard=shard,
        left_to_other_shards=left,
    )


def _jobs(settings: Settings) -> int:
    return settings.jobs or os.cpu_count() or 1


def run_all(
    context: BuildContext,
    items: Sequence[_S],
    work: Callable[[_S], _T],
    jobs: int,
) -> list[_T]:
    """``work`` for every item (a target, a dependency set...), several at once; the first
    failure (in order) is raised after the others have stopped, and Ctrl-C removes every
    container still running."""
    if len(items) <= 1 or jobs <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(jobs, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            wait(futures)
        except BaseException:
            for runner in context.all_runners:
                runner.cancel()
            raise
    return [future.result() for future in futures]


def plan(
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, Sequence[Engine]] | None = None,
    shards: int | None = None,
    today: datetime.date | None = None,
) -> PlanResult:
    """What a build would do per target (resolving, but fetching and compiling nothing); with
    ``shards``, each compile job's shard of that many."""
    if shards is not None and shards < 1:
        msg = f"--shards {shards}: the number of shards must be at least 1."
        raise ConfigError(msg)
    targets = settings.targets()
    deprecations = report_deprecation(settings, reporter, today)
    context = open_context(
        settings, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv,
        builders=builders,
    )  # fmt: skip
    containers_before = context.containers_started()  # runners may be reused across builds
    plans = [
        TargetPlan(target=stage.target, plan=stage.plan, shards=shards)
        for stage in (stage_target(context, target) for target in targets)
    ]
    if settings.cache_only:
        check_cache_only((p.target, p.plan) for p in plans)
    return PlanResult(
        targets=tuple(plans),
        containers_started=context.containers_started() - containers_before,
        shards=shards,
        deprecations=deprecations,
    )


def build_target(
    context: BuildContext,
    stage: StagedTarget,
    downloaded: Mapping[str, CachedFile],
) -> tuple[tuple[ArchiveRecord, ...], list[WheelRecord]]:
    """The archives of one target (function, layer, or both: see nativebuild.archive.layout), each
    checked against the runtime (nativebuild.pipeline.abi_gate) before it is written."""
    target, plan = stage.target, stage.plan
    wheels = acquire(context, stage, downloaded)
    records = assemble_target(
        context, target, plan, wheels, check=lambda planned: check_group(context, target, planned)
    )
    return records, wheel_records(context, stage, wheels)


def dump_json(result: BuildResult | PlanResult) -> str:
    return json.dumps(result.to_json(), indent=2, sort_keys=True)
