"""``nativebuild sam build --shard K/N``: one CI runner's part of a SAM template's compile work.

The template is read, its resources grouped into dependency sets and each set resolved and
planned exactly as a whole ``sam build`` does (:mod:`nativebuild.pipeline.sam_sets`); then only
the sdists whose compile key falls in shard K of N (:mod:`nativebuild.plan.shards`, the function
``build --shard`` uses) are downloaded and compiled, each once whatever number of sets needs it,
into the cache (the local one, and ``--cache``). Image functions (``nativebuild-image``) are
planned with the zip resources: their wheels have the same keys. Nothing is written to the
build directory; a later ``sam build --cache-only``, on any runner, assembles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from nativebuild.config.settings import Settings
from nativebuild.engine.runner import ContainerRunner, Engine
from nativebuild.errors import ConfigError
from nativebuild.index.uv import UvRunner
from nativebuild.pipeline.compiling import BuilderRecord, builder_records
from nativebuild.pipeline.context import open_session
from nativebuild.pipeline.sam_images import image_requirements
from nativebuild.pipeline.sam_sets import (
    SamRequest,
    SetStage,
    fetch_and_compile,
    read_template,
    stage_sets,
    template_base,
)
from nativebuild.pipeline.stage import WheelRecord, acquire, wheel_records
from nativebuild.plan.shards import Shard, ShardJob, jobs_left_to_others, shard_plan
from nativebuild.reporting import Reporter
from nativebuild.targets import Architecture, RuntimeLifecycle

__all__ = ["SamShardResult", "build_template_shard"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamShardResult:
    """What one shard of a template did: its wheels (compiled, or found in the cache), the
    compile jobs it left to the other shards; no resource was written."""

    shard: Shard
    wheels: tuple[WheelRecord, ...]
    left_to_other_shards: tuple[ShardJob, ...]
    containers_started: int
    builders: tuple[BuilderRecord, ...] = ()
    deprecations: tuple[RuntimeLifecycle, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """``sam build --json``'s shape (no resource built) with ``build --shard``'s fields."""
        return {
            "shard": str(self.shard),
            "resources": [],
            "wheels": [dataclasses.asdict(w) for w in self.wheels],
            "left_to_other_shards": [dataclasses.asdict(job) for job in self.left_to_other_shards],
            "containers_started": self.containers_started,
            "builders": [{**dataclasses.asdict(b), "jobs": list(b.jobs)} for b in self.builders],
            "deprecations": [d.to_json() for d in self.deprecations],
        }


def check_shard_settings(settings: Settings) -> Shard:
    """The shard of ``settings``; a shard compiles, so --cache-only is refused."""
    shard = settings.shard
    if shard is None:
        msg = "A shard of a template needs --shard K/N."
        raise ConfigError(msg, hint="For example --shard 1/2 and --shard 2/2.")
    if settings.cache_only:
        msg = f"--shard {shard} compiles its part of the sdists: --cache-only forbids that."
        raise ConfigError(
            msg, hint="Shards fill the cache; give --cache-only to the assembly only."
        )
    return shard


def build_template_shard(
    request: SamRequest,
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, Sequence[Engine]] | None = None,
) -> SamShardResult:
    """Compile shard ``settings.shard`` of the sdists of every Python function and layer of
    ``request.template`` into the cache (see the module's doc); ``request.build_dir`` is left
    as it is."""
    shard = check_shard_settings(settings)
    read = read_template(request, reporter)
    resources = read.inventory.build
    for image in (r for r in resources if r.is_image):
        image_requirements(image)  # as the assembly will ask
    base = template_base(settings)
    session = open_session(
        base, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv, builders=builders
    )
    containers_before = session.containers_started()
    _, sets = stage_sets(session, resources, base)
    mine = [_own_part(item, shard) for item in sets]
    left = jobs_left_to_others(((i.target.arch.value, i.stage.plan) for i in sets), shard)
    own_keys = {plan_item.compile_key for item in mine for plan_item in item.stage.plan.items}
    reporter.step(
        f"Shard {shard}: {len(own_keys)} of the template's sdists are this shard's, "
        f"{len(left)} are left to the others"
    )
    if settings.verify or request.unzipped_layers:
        reporter.detail(f"shard {shard} writes no build directory: the assembly does that")
    downloaded, compiled = fetch_and_compile(session, mine)
    wheels: dict[WheelRecord, None] = {}
    for item in mine:
        found = acquire(item.context, item.stage, downloaded, compiled=compiled)
        wheels.update(dict.fromkeys(wheel_records(item.context, item.stage, found)))
    return SamShardResult(
        shard=shard,
        wheels=tuple(wheels),
        left_to_other_shards=left,
        containers_started=session.containers_started() - containers_before,
        builders=builder_records(session, [item.target.arch for item in sets]),
        deprecations=read.deprecations,
    )


def _own_part(item: SetStage, shard: Shard) -> SetStage:
    """``item`` with only this shard's sdists in its plan (to compile, or already cached)."""
    stage = dataclasses.replace(item.stage, plan=shard_plan(item.stage.plan, shard))
    return dataclasses.replace(item, stage=stage)
