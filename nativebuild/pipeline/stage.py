"""A target from its inputs to every wheel it needs: resolve, plan (pure), fetch and compile.

What a whole build (:mod:`nativebuild.pipeline.run`) and one shard of it share: the shard plans
exactly as the build does, then acquires only its own part of the plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from nativebuild.cache.keys import build_key
from nativebuild.cache.local import CachedFile
from nativebuild.index.downloads import fetch_all
from nativebuild.pins import Pin, Resolution
from nativebuild.pipeline.abi_gate import compile_settings, provided_libraries
from nativebuild.pipeline.compiling import compile_jobs
from nativebuild.pipeline.context import BuildContext, wheel_facts
from nativebuild.pipeline.images import image_identity
from nativebuild.pipeline.resolution import resolve
from nativebuild.pipeline.resolve_then_compile import (
    can_compile_while_resolving,
    resolve_and_compile,
)
from nativebuild.plan.distributions import Action, BuildPlan, PlanItem, make_plan
from nativebuild.sdists.build import CompileJob, compile_key_fields
from nativebuild.targets import Target


@dataclasses.dataclass(frozen=True, kw_only=True)
class WheelRecord:
    name: str
    version: str
    arch: str
    source: str  # cache | download | compiled
    filename: str
    sha256: str

    @classmethod
    def of(cls, item: PlanItem, target: Target, wheel: CachedFile, source: str) -> WheelRecord:
        return cls(
            name=item.pin.name,
            version=item.pin.version,
            arch=target.arch.value,
            source=source,
            filename=wheel.path.name,
            sha256=wheel.sha256,
        )


def wheel_records(
    context: BuildContext, stage: StagedTarget, wheels: Mapping[str, CachedFile]
) -> list[WheelRecord]:
    """What the result says of each wheel of ``stage``'s plan (``wheels``: by name)."""
    return [
        WheelRecord.of(item, stage.target, wheels[item.pin.name], context.source_of(item))
        for item in stage.plan.items
    ]


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
    files by sha256. Each wheel is read (CRCs, binaries: :func:`wheel_facts`) as soon as it
    is in, while the others download, instead of after the last one."""
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
        then=lambda cached: _read_wheel(context, cached),
    )
    return {cached.sha256: cached for cached in by_name.values()}


def _read_wheel(context: BuildContext, cached: CachedFile) -> None:
    if cached.path.name.endswith(".whl"):
        wheel_facts(context, cached.path)


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
