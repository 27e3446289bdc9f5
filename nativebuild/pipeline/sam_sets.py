"""What a whole ``nativebuild sam build`` (:mod:`nativebuild.pipeline.sam`) and one CI shard of
it (:mod:`nativebuild.pipeline.sam_shard`) share: the template read as SAM reads it, its
resources grouped into dependency sets that are resolved and planned once each, and every file
those sets need downloaded once and every sdist compiled once per compile key.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nativebuild.archive.layout import Kind
from nativebuild.cache.local import CachedFile
from nativebuild.config.settings import Settings
from nativebuild.pipeline.compiling import compile_jobs
from nativebuild.pipeline.context import BuildContext, with_inputs
from nativebuild.pipeline.run import run_all
from nativebuild.pipeline.stage import StagedTarget, pending_compiles, prefetch, stage_target
from nativebuild.plan.distributions import BuildPlan
from nativebuild.reporting import Reporter
from nativebuild.sam.intrinsics import Resolver
from nativebuild.sam.plan import DependencySet, SamPlan, find_requirements, plan_sets
from nativebuild.sam.resources import Buildable, Inventory, read_resources
from nativebuild.sam.template import load_template
from nativebuild.sdists.build import CompileJob
from nativebuild.targets import Architecture, RuntimeLifecycle, Target, deprecation_notices


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamRequest:
    template: Path
    build_dir: Path
    parameter_overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Layers also unpacked, the template pointing at the folders: `sam local invoke` copies a
    # layer's ContentUri into its image as it is, and does not unzip an archive there.
    unzipped_layers: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReadTemplate:
    """A template as SAM reads it: what to build, what is left alone, and the runtimes'
    deprecation notices (already reported)."""

    document: dict[str, Any]
    template_dir: Path
    inventory: Inventory
    deprecations: tuple[RuntimeLifecycle, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SetStage:
    """One dependency set on its way through the stages."""

    members: DependencySet
    context: BuildContext
    stage: StagedTarget

    @property
    def target(self) -> Target:
        return self.stage.target


def read_template(request: SamRequest, reporter: Reporter) -> ReadTemplate:
    """Read ``request.template`` (parameters resolved, Globals merged) and report what is left
    to SAM and which runtimes are deprecated."""
    document = load_template(request.template)
    template_dir = request.template.parent.resolve()
    resolver = Resolver.for_template(document, request.parameter_overrides)
    for name in sorted(set(request.parameter_overrides) - set(resolver.parameters)):
        reporter.warning(f"--parameter-overrides {name}: the template has no such parameter.")
    inventory = read_resources(document, template_dir=template_dir, resolver=resolver)
    for left in inventory.left:
        reporter.detail(f"{left.logical_id}: {left.reason}")
    deprecations = deprecation_notices(r.runtime for r in inventory.build)
    for notice in deprecations:
        reporter.warning(notice.message)
    return ReadTemplate(
        document=document, template_dir=template_dir, inventory=inventory,
        deprecations=deprecations,
    )  # fmt: skip


def template_base(settings: Settings) -> Settings:
    """What a build is made of comes from the template; how, from the settings."""
    return dataclasses.replace(settings, kind=Kind.FUNCTION, functions=(), src=None, with_layers=())


def jobs_of(settings: Settings) -> int:
    return settings.jobs or os.cpu_count() or 1


def stage_sets(
    session: BuildContext, resources: Sequence[Buildable], base: Settings
) -> tuple[SamPlan, list[SetStage]]:
    """Read each requirements file once, group the resources into dependency sets, and
    resolve and plan each set once."""
    requirements = {r.logical_id: find_requirements(r.code_dir) for r in resources}
    contexts: dict[Path, BuildContext] = {}
    fingerprints: dict[Path, str] = {}
    for path in dict.fromkeys(p for p in requirements.values() if p is not None):
        context = with_inputs(session, dataclasses.replace(base, requirements=path))
        contexts[path] = context
        index = json.dumps(context.index.fingerprint_fields(), sort_keys=True)
        fingerprints[path] = f"{context.inputs.kind}:{context.inputs.fingerprint}:{index}"
    plan = plan_sets(resources, requirements, fingerprints)

    def stage(members: DependencySet) -> SetStage:
        settings = dataclasses.replace(
            base, runtime=members.runtime, archs=(members.arch,),
            requirements=members.requirements or base.requirements,
        )  # fmt: skip
        (target,) = settings.targets()
        if members.requirements is None:
            context = dataclasses.replace(session, settings=settings)
            staged = StagedTarget(target=target, plan=BuildPlan(items=()), found={})
        else:
            context = dataclasses.replace(contexts[members.requirements], settings=settings)
            session.reporter.detail(f"dependency set {members.describe()}")
            staged = stage_target(context, target)
        return SetStage(members=members, context=context, stage=staged)

    # Concurrently: a set that only the build image can resolve waits on a container.
    return plan, run_all(session, plan.sets, stage, jobs_of(session.settings))


def index_key(context: BuildContext) -> str:
    return json.dumps(context.index.fingerprint_fields(), sort_keys=True)


def fetch_and_compile(
    session: BuildContext, sets: Sequence[SetStage]
) -> tuple[dict[str, CachedFile], dict[str, CachedFile]]:
    """Download what the sets' plans need (each file once, with its index's own credentials
    and options), then compile every sdist they plan to compile (once per compile key); the
    downloads by sha256, the compiled wheels by compile key."""
    downloaded: dict[str, CachedFile] = {}
    by_index: dict[str, list[SetStage]] = {}
    for item in sets:
        by_index.setdefault(index_key(item.context), []).append(item)
    for members in by_index.values():
        downloaded.update(prefetch(members[0].context, [m.stage for m in members]))
    return downloaded, compile_all(session, sets, downloaded)


def compile_all(
    session: BuildContext, sets: Sequence[SetStage], downloaded: Mapping[str, CachedFile]
) -> dict[str, CachedFile]:
    """Every sdist any set compiles, once per compile key, in one container per runtime,
    architecture and index; those groups run concurrently."""
    groups: dict[tuple[str, Architecture, str], tuple[SetStage, dict[str, CompileJob]]] = {}
    for item in sets:
        key = (item.target.runtime.name, item.target.arch, index_key(item.context))
        _, pending = groups.setdefault(key, (item, {}))
        for job in pending_compiles(item.context, item.stage, downloaded):
            pending.setdefault(job.key, job)
    work = [(first, list(pending.values())) for first, pending in groups.values() if pending]

    def compile_group(group: tuple[SetStage, list[CompileJob]]) -> dict[str, CachedFile]:
        first, group_jobs = group
        by_name = compile_jobs(first.context, first.target, group_jobs)
        return {job.key: by_name[job.pin.name] for job in group_jobs}

    compiled: dict[str, CachedFile] = {}
    for result in run_all(session, work, compile_group, jobs_of(session.settings)):
        compiled.update(result)
    return compiled
