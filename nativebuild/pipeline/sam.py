"""``nativebuild sam build``: every Python function and layer of a SAM template, in one run.

The template is read as SAM reads it (:mod:`nativebuild.sam`); the resources to build are
grouped into dependency sets (:mod:`nativebuild.sam.plan`), and the sets go through the stages of
:mod:`nativebuild.pipeline.run` together (:mod:`nativebuild.pipeline.sam_sets`, which one CI
shard of the template, :mod:`nativebuild.pipeline.sam_shard`, shares), so that what they share
is done once:

1. each set is resolved and planned (identical requirements: one resolution);
2. every file any set needs is downloaded once;
3. the sdists of all sets are compiled per runtime and architecture, each once, in one container
   (both architectures at once, up to ``--jobs``);
4. every archive is planned; each function is checked with the layers of the template it uses
   (size budget, ABI), each layer on its own; only then is anything written;
5. archives, ``template.yaml`` and ``manifest.json`` go to a fresh folder that then replaces the
   build directory (:func:`nativebuild.sam.output.staged_build_dir`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nativebuild.archive.budget import check_group as check_budget
from nativebuild.archive.layout import FUNCTION_ROOT, LAYER_ROOT
from nativebuild.archive.manifest import ArchiveRecord, manifest_document
from nativebuild.archive.plan import ArchivePlan
from nativebuild.archive.unpack import unpack_archive
from nativebuild.config.settings import Settings
from nativebuild.engine.runner import ContainerRunner, Engine
from nativebuild.errors import ConfigError
from nativebuild.index.uv import UvRunner
from nativebuild.pipeline import sam_uptodate
from nativebuild.pipeline.abi_gate import check_group as check_abi
from nativebuild.pipeline.abi_gate import verify_built
from nativebuild.pipeline.assemble import PreparedTarget, prepare_archives, write_archives
from nativebuild.pipeline.context import BuildContext, open_session
from nativebuild.pipeline.run import made_from, run_all
from nativebuild.pipeline.sam_images import build_images
from nativebuild.pipeline.sam_sets import (
    SamRequest,
    SetStage,
    fetch_and_compile,
    jobs_of,
    read_template,
    stage_sets,
    template_base,
)
from nativebuild.pipeline.stage import WheelRecord, acquire
from nativebuild.plan.distributions import Action, BuildPlan, check_cache_only
from nativebuild.reporting import Reporter
from nativebuild.sam.output import (
    ResourceOutcome,
    built_template,
    staged_build_dir,
    work_dir,
    write_built_template,
    write_sam_manifest,
)
from nativebuild.sam.plan import DependencySet, SamPlan, archive_name, archive_spec
from nativebuild.sam.resources import Buildable, LeftAlone
from nativebuild.targets import Architecture, RuntimeLifecycle

__all__ = ["SamBuildResult", "SamRequest", "build_template"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamBuildResult:
    resources: tuple[ResourceOutcome, ...]
    wheels: tuple[WheelRecord, ...]
    containers_started: int
    template: Path
    manifest: Path
    deprecations: tuple[RuntimeLifecycle, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "resources": [r.to_json() for r in self.resources],
            "wheels": [dataclasses.asdict(w) for w in self.wheels],
            "containers_started": self.containers_started,
            "deprecations": [d.to_json() for d in self.deprecations],
        }


def build_template(
    request: SamRequest,
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, Sequence[Engine]] | None = None,
) -> SamBuildResult:
    """Build every Python function and layer of ``request.template`` into
    ``request.build_dir``, as ``sam build --use-container`` would (see the module's doc).
    A CI shard (``settings.shard``) is :func:`nativebuild.pipeline.sam_shard.build_template_shard`."""
    if settings.shard is not None:
        msg = f"--shard {settings.shard} writes no build directory: run build_template_shard."
        raise ConfigError(msg)
    read = read_template(request, reporter)
    document, template_dir, inventory = read.document, read.template_dir, read.inventory
    deprecations = read.deprecations
    request_record = sam_uptodate.request_fields(
        request.template, request.parameter_overrides, unzipped_layers=request.unzipped_layers
    )
    sam_uptodate.forget(settings, env, build_dir=request.build_dir)
    base = template_base(settings)
    session = open_session(
        base, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv, builders=builders
    )
    containers_before = session.containers_started()
    with staged_build_dir(request.build_dir) as stage_dir:
        base = dataclasses.replace(base, output=stage_dir)
        session = dataclasses.replace(session, settings=base)
        zips = [r for r in inventory.build if not r.is_image]
        plan, sets = stage_sets(session, zips, base)
        if base.cache_only:  # before any download or compile container
            check_cache_only((s.target, s.stage.plan) for s in sets)
        skip = (request.build_dir, work_dir(request.build_dir))
        prepared = _prepare(session, plan, sets, skip_dirs=skip)
        _check_pairs(plan, sets, prepared)
        records = _write(session, sets, prepared)
        if base.verify:
            _verify(plan, sets, records)
        images = build_images(
            [r for r in inventory.build if r.is_image], base, stage_dir=stage_dir,
            build_dir=request.build_dir, runner=runner, env=env, reporter=reporter,
            verbose=verbose, uv=uv,
        )  # fmt: skip
        order = [r.logical_id for r in inventory.build] + [a.logical_id for a in inventory.left]
        outcomes = _outcomes(
            sets, records, [o for o, _ in images], inventory.left, request.build_dir, order
        )
        built = {r.logical_id: (r.code_property, archive_name(r)) for r in plan.resources}
        built.update({o.logical_id: ("ImageUri", image.image_uri) for o, image in images})
        if request.unzipped_layers:
            built.update(_unzip_layers(plan, stage_dir, session.reporter))
        template = built_template(
            document, template_dir=template_dir, build_dir=request.build_dir, built=built,
            default_code=inventory.default_code,
        )  # fmt: skip
        write_built_template(stage_dir, template)
        all_records = [record for per_set in records for record in per_set.values()]
        all_records += [image.record for _, image in images]
        manifest = manifest_document(all_records, stage_dir)
        manifest["template"] = "template.yaml"
        manifest["resources"] = [_manifest_entry(o, request.build_dir) for o in outcomes]
        write_sam_manifest(stage_dir, manifest)
    result = SamBuildResult(
        resources=outcomes,
        wheels=_wheels(sets, prepared),
        containers_started=session.containers_started() - containers_before,
        template=request.build_dir / "template.yaml",
        manifest=request.build_dir / "manifest.json",
        deprecations=deprecations,
    )
    made = [made_from(s.context) for s in sets]
    # An image lives in the engine, which the record cannot vouch for; a git branch can move.
    if not images and not any(m.volatile for m in made):
        sam_uptodate.remember(
            settings, env, build_dir=request.build_dir, request=request_record,
            files=[request.template, *(f for m in made for f in m.files)],
            trees=[*(r.code_dir for r in plan.resources), *(t for m in made for t in m.trees)],
            images=session.image_ids, result=result.to_json(),
        )  # fmt: skip
    return result


def _prepare(
    session: BuildContext, plan: SamPlan, sets: Sequence[SetStage], *, skip_dirs: Sequence[Path]
) -> list[PreparedTarget]:
    """Download (each file once), compile (each sdist once per runtime and architecture),
    then plan every archive."""
    downloaded, compiled = fetch_and_compile(session, sets)

    def prepare(item: SetStage) -> PreparedTarget:
        wheels = acquire(item.context, item.stage, downloaded, compiled=compiled)
        specs = [
            archive_spec(
                resource,
                layers=plan.layers_of(resource),
                layer_layout=item.context.settings.layer_layout,
                skip_dirs=skip_dirs,
            )
            for resource in item.members.resources
        ]
        return prepare_archives(item.context, item.target, item.stage.plan, wheels, specs)

    return run_all(session, sets, prepare, jobs_of(session.settings))


def _planned(
    sets: Sequence[SetStage], prepared: Sequence[PreparedTarget]
) -> dict[str, tuple[SetStage, ArchivePlan]]:
    """Each resource's planned archive, and its set, by logical id."""
    found = {}
    for item, ready in zip(sets, prepared, strict=True):
        for resource in item.members.resources:
            found[resource.logical_id] = (item, ready.planned(archive_name(resource)))
    return found


def _check_pairs(
    plan: SamPlan, sets: Sequence[SetStage], prepared: Sequence[PreparedTarget]
) -> None:
    """Before anything is written: each function with the layers of this template it uses
    (unzipped size and layer count, then ABI against the function's runtime), each layer
    alone against its own."""
    planned = _planned(sets, prepared)
    for resource in plan.resources:
        item, archive = planned[resource.logical_id]
        reporter = item.context.reporter
        layers = plan.layers_of(resource)  # none for a layer
        group = [(archive_name(resource), archive)]
        group += [(archive_name(layer), planned[layer.logical_id][1]) for layer in layers]
        count = 1 if resource.is_layer else resource.layer_count
        for warning in check_budget(group, [], layers=count):
            reporter.warning(warning)
        mounted = [(archive, LAYER_ROOT if resource.is_layer else FUNCTION_ROOT)]
        mounted += [(planned[layer.logical_id][1], LAYER_ROOT) for layer in layers]
        check_abi(item.context, item.target, mounted)
        for layer in layers:
            if layer.runtime != resource.runtime and _has_extensions(planned[layer.logical_id][1]):
                reporter.warning(
                    f"{resource.logical_id} runs {resource.runtime} but its layer "
                    f"{layer.logical_id} is built for {layer.runtime}: the layer's compiled "
                    "modules will not import there. Build the layer for the same runtime."
                )


def _unzip_layers(plan: SamPlan, stage_dir: Path, reporter: Reporter) -> dict[str, tuple[str, str]]:
    """Each built layer's archive unpacked beside it, in ``<LogicalId>/content``."""
    folders = {}
    for layer in (r for r in plan.resources if r.is_layer):
        archive = stage_dir / archive_name(layer)
        folder = f"{layer.logical_id}/content"
        files = unpack_archive(archive, stage_dir / folder)
        reporter.detail(f"{layer.logical_id}: unpacked into {folder} ({files} files)")
        folders[layer.logical_id] = (layer.code_property, folder)
    return folders


def _has_extensions(archive: ArchivePlan) -> bool:
    return any(entry.path.endswith(".so") or ".so." in entry.path for entry in archive.entries)


def _write(
    session: BuildContext, sets: Sequence[SetStage], prepared: Sequence[PreparedTarget]
) -> list[dict[str, ArchiveRecord]]:
    """Write every archive; per set, each resource's record by logical id."""
    pairs = list(zip(sets, prepared, strict=True))

    def write(pair: tuple[SetStage, PreparedTarget]) -> dict[str, ArchiveRecord]:
        item, ready = pair
        records = write_archives(item.context, ready)
        return {r.name: r for r in records}

    return run_all(session, pairs, write, jobs_of(session.settings))


def _verify(
    plan: SamPlan, sets: Sequence[SetStage], records: Sequence[dict[str, ArchiveRecord]]
) -> None:
    """``--verify``: each function imported with its layers in its runtime image; a layer no
    function of the template uses, on its own."""
    by_id = {name: (item, record) for item, per_set in zip(sets, records, strict=True)
             for name, record in per_set.items()}  # fmt: skip
    used = {layer for r in plan.resources for layer in r.layers}
    for resource in plan.resources:
        if resource.is_layer and resource.logical_id in used:
            continue
        item, record = by_id[resource.logical_id]
        layers = [by_id[layer.logical_id][1] for layer in plan.layers_of(resource)]
        verify_built(item.context, item.target, [record, *layers])


def _counts(stage_plan: BuildPlan) -> tuple[int, int, int]:
    cached = stage_plan.count(Action.CACHED_WHEEL) + stage_plan.count(Action.CACHED_BUILD)
    return stage_plan.count(Action.DOWNLOAD), stage_plan.count(Action.COMPILE), cached


def _outcomes(
    sets: Sequence[SetStage],
    records: Sequence[dict[str, ArchiveRecord]],
    images: Sequence[ResourceOutcome],
    left: Iterable[LeftAlone],
    build_dir: Path,
    order: Sequence[str],
) -> tuple[ResourceOutcome, ...]:
    """Every function and layer, in ``order`` (the template's): built, cached or skipped."""
    by_id: dict[str, ResourceOutcome] = {o.logical_id: o for o in images}
    for item, per_set in zip(sets, records, strict=True):
        members = item.members
        downloaded, compiled, cached = _counts(item.stage.plan)
        for resource in members.resources:
            record = per_set[resource.logical_id]
            status = "built" if downloaded or compiled or members.requirements is None else "cached"
            by_id[resource.logical_id] = ResourceOutcome(
                logical_id=resource.logical_id, type=resource.type, runtime=resource.runtime,
                arch=resource.arch.value, archive=build_dir / archive_name(resource),
                sha256=record.sha256, status=status,
                reason=_reason(resource, members, downloaded, compiled, cached),
            )  # fmt: skip
    for alone in left:
        by_id[alone.logical_id] = ResourceOutcome(
            logical_id=alone.logical_id, type=alone.type, runtime=alone.runtime,
            arch=alone.arch, archive=None, sha256=None, status="skipped", reason=alone.reason,
        )  # fmt: skip
    return tuple(by_id[name] for name in order)


def _reason(
    resource: Buildable, members: DependencySet, downloaded: int, compiled: int, cached: int
) -> str:
    if members.requirements is None:
        return f"code only: no requirements file in its {resource.code_property}"
    total = downloaded + compiled + cached
    text = (
        f"{total} packages from {members.requirements.name}: {compiled} compiled, "
        f"{downloaded} downloaded, {cached} from the cache"
    )
    others = [r.logical_id for r in members.resources if r is not resource]
    if others:
        text += f"; the same dependencies as {', '.join(others)}, resolved and built once"
    return text


def _manifest_entry(outcome: ResourceOutcome, build_dir: Path) -> dict[str, Any]:
    """A resource as the manifest keeps it: what was written (archive paths relative to the
    manifest), or why nothing was; not what this run had to do for it (status)."""
    entry = outcome.to_json()
    del entry["status"]
    if outcome.archive is not None:
        entry["archive"] = outcome.archive.relative_to(build_dir).as_posix()
        del entry["reason"]
    return entry


def _wheels(
    sets: Sequence[SetStage], prepared: Sequence[PreparedTarget]
) -> tuple[WheelRecord, ...]:
    found: dict[WheelRecord, None] = {}
    for item, ready in zip(sets, prepared, strict=True):
        for plan_item in item.stage.plan.items:
            wheel = ready.wheels[plan_item.pin.name]
            record = WheelRecord(
                name=plan_item.pin.name, version=plan_item.pin.version, arch=item.target.arch.value,
                source=item.context.source_of(plan_item), filename=wheel.path.name,
                sha256=wheel.sha256,
            )  # fmt: skip
            found.setdefault(record, None)
    return tuple(found)
