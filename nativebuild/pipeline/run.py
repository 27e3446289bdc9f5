"""The build: inputs → resolution → plan → downloads and compiles → archive.

The only orchestrator. Decisions come from pure functions (``plan.py``, ``locked.py``,
``compile.py``, ``archive.py``); this module does the I/O in order and reports through a
Reporter. Resolution strategies live in ``resolver.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from nativebuild.archive.layout import Kind
from nativebuild.archive.manifest import ArchiveRecord, write_manifest
from nativebuild.cache.keys import build_key
from nativebuild.cache.local import CachedFile
from nativebuild.config.settings import Settings
from nativebuild.engine.runner import ContainerRunner
from nativebuild.errors import ConfigError
from nativebuild.index.downloads import fetch_all
from nativebuild.index.uv import UvRunner
from nativebuild.pins import Pin, Resolution
from nativebuild.pipeline.abi_gate import (
    check_group,
    compile_settings,
    provided_libraries,
    verify_built,
)
from nativebuild.pipeline.assemble import assemble_target
from nativebuild.pipeline.compiling import (
    can_compile_while_resolving,
    compile_jobs,
    resolve_and_compile,
)
from nativebuild.pipeline.context import BuildContext, open_context
from nativebuild.pipeline.images import image_identity
from nativebuild.pipeline.resolution import resolve
from nativebuild.plan.distributions import Action, BuildPlan, check_cache_only, make_plan
from nativebuild.reporting import Reporter
from nativebuild.sdists.build import (
    CompileJob,
    compile_key_fields,
)
from nativebuild.targets import Architecture, Target


@dataclasses.dataclass(frozen=True, kw_only=True)
class WheelRecord:
    name: str
    version: str
    arch: str
    source: str  # cache | download | compiled
    filename: str
    sha256: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class MadeFrom:
    """What a build's archives depend on beyond its settings: files and trees it read, and
    the images whose ids entered its cache keys or ABI verdicts."""

    files: tuple[Path, ...]
    trees: tuple[Path, ...]
    images: Mapping[str, str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildResult:
    archives: tuple[ArchiveRecord, ...]
    wheels: tuple[WheelRecord, ...]
    containers_started: int
    manifest: Path | None = None
    made_from: MadeFrom | None = None  # what pipeline.uptodate records

    def to_json(self) -> dict[str, Any]:
        return {
            "archives": [_archive_json(a) for a in self.archives],
            "wheels": [dataclasses.asdict(w) for w in self.wheels],
            "containers_started": self.containers_started,
            "manifest": str(self.manifest) if self.manifest else None,
        }


def _archive_json(archive: ArchiveRecord) -> dict[str, Any]:
    document = {**dataclasses.asdict(archive), "path": str(archive.path)}
    if archive.image is not None:
        document["image"] = {**archive.image.to_json(), "loaded": archive.image.loaded}
    return document


@dataclasses.dataclass(frozen=True, kw_only=True)
class TargetPlan:
    target: Target
    plan: BuildPlan

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.target.runtime.name,
            "arch": self.target.arch.value,
            "glibc": str(self.target.glibc),
            "build_image": self.target.build_image,
            "items": [
                {
                    "name": item.pin.name,
                    "version": item.pin.version,
                    "action": item.action.value,
                    "reason": item.reason,
                    "file": item.pin.filename,
                    "sha256": item.pin.sha256,
                }
                for item in self.plan.items
            ],
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlanResult:
    targets: tuple[TargetPlan, ...]
    containers_started: int

    def to_json(self) -> dict[str, Any]:
        return {
            "targets": [t.to_json() for t in self.targets],
            "containers_started": self.containers_started,
        }


def build(
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, ContainerRunner] | None = None,
) -> BuildResult:
    """Build one archive per target of ``settings``.

    Resolving and planning run target by target (they are quick); downloads are shared by all
    targets; compiling and packing run for several targets at once, up to ``settings.jobs``.
    """
    targets = settings.targets()  # validates runtime and images before any work
    check_image_settings(settings)
    context = open_context(
        settings, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv,
        builders=builders,
    )  # fmt: skip
    containers_before = context.containers_started()  # runners may be reused across builds
    staged = [stage_target(context, target, compile_while_resolving=True) for target in targets]
    if settings.cache_only:  # before any download or compile container
        check_cache_only((stage.target, stage.plan) for stage in staged)
    downloaded = prefetch(context, staged)
    outcomes = run_all(context, staged, downloaded, settings.jobs or os.cpu_count() or 1)
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
        made_from=made_from(context),
    )


def made_from(context: BuildContext) -> MadeFrom:
    settings, inputs = context.settings, context.inputs
    local = [] if inputs.requirements is None else inputs.requirements.requirements
    trees = [
        *([settings.src] if settings.src else []),
        *(fn.src for fn in settings.functions if fn.src is not None),
        *(line.local_path for line in local if line.local_path is not None),
    ]
    return MadeFrom(
        files=(*inputs.files, *settings.with_layers),
        trees=tuple(trees),
        images=dict(context.image_ids),
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class StagedTarget:
    target: Target
    plan: BuildPlan
    found: dict[str, CachedFile]
    # The fields of each sdist's cache key, by name: what its built wheel's manifest carries.
    key_fields: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)


def stage_target(
    context: BuildContext, target: Target, *, compile_while_resolving: bool = False
) -> StagedTarget:
    """Resolve and plan ``target``. With ``compile_while_resolving`` (a build, not a plan), a
    resolution container in the build image goes on to compile what its answer needs."""
    context.reporter.step(f"Planning {target.describe()}")
    combined = compile_while_resolving and can_compile_while_resolving(context, target)
    in_image = resolve_and_compile if combined else None
    resolution = resolve(context, target, in_image=in_image)
    target_plan, found, key_fields = plan_target(context, target, resolution)
    context.reporter.detail(target_plan.summary())
    return StagedTarget(target=target, plan=target_plan, found=found, key_fields=key_fields)


def prefetch(context: BuildContext, staged: Sequence[StagedTarget]) -> dict[str, CachedFile]:
    """Download what every target needs, once per file, before any compile starts; the
    files by sha256."""
    wanted: dict[str, Pin] = {}
    for stage in staged:
        for item in stage.plan.items:
            if item.action in (Action.DOWNLOAD, Action.COMPILE):
                wanted.setdefault(item.pin.sha256, item.pin)
    if not wanted:
        return {}
    context.reporter.step(f"Downloading {len(wanted)} files")
    by_name = fetch_all(
        list(wanted.values()),
        cache=context.cache,
        settings=context.index,
        reporter=context.reporter,
    )
    return {cached.sha256: cached for cached in by_name.values()}


def run_all(
    context: BuildContext,
    staged: Sequence[StagedTarget],
    downloaded: Mapping[str, CachedFile],
    jobs: int,
) -> list[tuple[tuple[ArchiveRecord, ...], list[WheelRecord]]]:
    """Finish every target, several at once; the first failure (in target order) is raised
    after the others have stopped, and Ctrl-C removes every container still running."""
    if len(staged) == 1 or jobs <= 1:
        return [build_target(context, stage, downloaded) for stage in staged]
    with ThreadPoolExecutor(max_workers=min(jobs, len(staged))) as pool:
        futures = [pool.submit(build_target, context, stage, downloaded) for stage in staged]
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
    builders: Mapping[Architecture, ContainerRunner] | None = None,
) -> PlanResult:
    """What a build would do per target (resolving, but fetching and compiling nothing)."""
    targets = settings.targets()
    context = open_context(
        settings, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv,
        builders=builders,
    )  # fmt: skip
    containers_before = context.containers_started()  # runners may be reused across builds
    plans = [
        TargetPlan(target=stage.target, plan=stage.plan)
        for stage in (stage_target(context, target) for target in targets)
    ]
    if settings.cache_only:
        check_cache_only((p.target, p.plan) for p in plans)
    return PlanResult(
        targets=tuple(plans), containers_started=context.containers_started() - containers_before
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
    return records, [
        WheelRecord(
            name=item.pin.name,
            version=item.pin.version,
            arch=target.arch.value,
            source=context.source_of(item),
            filename=wheels[item.pin.name].path.name,
            sha256=wheels[item.pin.name].sha256,
        )
        for item in plan.items
    ]


def plan_target(
    context: BuildContext, target: Target, resolution: Resolution
) -> tuple[BuildPlan, dict[str, CachedFile], dict[str, dict[str, str]]]:
    """Look up the cache for every pin, then decide (pure) what to fetch and compile.

    Also returns the verified cache hits, by name, so they are not hashed twice, and the
    fields of each sdist's cache key, by name.
    """
    cache = context.cache
    found: dict[str, CachedFile] = {}
    for pin in resolution.pins:
        if pin.is_wheel and (hit := cache.get_file(pin.sha256, pin.filename)) is not None:
            found[pin.name] = hit
    key_fields: dict[str, dict[str, str]] = {}
    sdists = [pin for pin in resolution.pins if not pin.is_wheel]
    if sdists:
        image_id = image_identity(context, target)
        settings = compile_settings(context, target)
        key_fields = {
            pin.name: compile_key_fields(pin, target, image_id=image_id, settings=settings)
            for pin in sdists
        }
    compile_keys = {name: build_key(fields) for name, fields in key_fields.items()}
    for name, key in compile_keys.items():
        if (entry := cache.get_built(key)) is not None:
            found[name] = entry.wheel
    plan = make_plan(
        resolution.pins,
        cached_files={pin.sha256 for pin in resolution.pins if pin.name in found and pin.is_wheel},
        compile_keys=compile_keys,
        cached_built={key for name, key in compile_keys.items() if name in found},
    )
    return plan, found, key_fields


def acquire(
    context: BuildContext,
    stage: StagedTarget,
    downloaded: Mapping[str, CachedFile],
    *,
    compiled: Mapping[str, CachedFile] | None = None,
) -> dict[str, CachedFile]:
    """Every wheel of the stage's plan as a verified file in the cache, keyed by distribution
    name. ``downloaded`` holds what prefetch() fetched for all targets, by sha256. The sdists
    to compile are compiled here, unless ``compiled`` already holds their wheels (by compile
    key: several stages compiled together, see :func:`pending_compiles`)."""
    target, plan, found = stage.target, stage.plan, stage.found
    wheels: dict[str, CachedFile] = {}
    jobs = pending_compiles(context, stage, downloaded) if compiled is None else []
    for item in plan.items:
        pin = item.pin
        if item.action is Action.COMPILE:
            if compiled is not None:
                wheels[pin.name] = compiled[item.compile_key]
        elif item.action is Action.DOWNLOAD:
            wheels[pin.name] = downloaded[pin.sha256]
        else:
            wheels[pin.name] = found[pin.name]
    if jobs:
        wheels.update(compile_jobs(context, target, jobs))
    return wheels


def pending_compiles(
    context: BuildContext, stage: StagedTarget, downloaded: Mapping[str, CachedFile]
) -> list[CompileJob]:
    """The compile jobs of the stage's plan, each sdist taken from ``downloaded``."""
    plan = stage.plan
    if not plan.count(Action.COMPILE):
        return []
    provided = provided_libraries(context, stage.target)
    return [
        CompileJob(
            pin=item.pin,
            key=item.compile_key,
            sdist=downloaded[item.pin.sha256].path,
            provided=provided,
            key_fields=stage.key_fields[item.pin.name],
        )
        for item in plan.items
        if item.action is Action.COMPILE
    ]


def dump_json(result: BuildResult | PlanResult) -> str:
    return json.dumps(result.to_json(), indent=2, sort_keys=True)
