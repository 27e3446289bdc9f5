"""One target's archives, from its wheels: layout, slimming, bytecode, budget, then the zips.

The order matters: stripping replaces wheels before anything is planned; slimming decides what
bytecode is worth compiling; the unzipped budget is checked on the final plans, before a byte is
written; zipped sizes are known, and reported, once each archive is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nativebuild.archive.budget import (
    check_group,
    package_sizes,
    read_layer,
    render_table,
    zipped_warnings,
)
from nativebuild.archive.bytecode import INVALIDATION, compile_groups, plan_groups, with_bytecode
from nativebuild.archive.layout import ArchiveSpec, archive_specs, budget_groups
from nativebuild.archive.manifest import ArchiveRecord, WheelEntry
from nativebuild.archive.plan import ArchiveInfo, ArchivePlan, plan_archive, write_zip
from nativebuild.archive.slim import Removal, SlimOptions, runtime_packages, slim_plan, summarize
from nativebuild.archive.strip import Stripped, strip_wheels
from nativebuild.archive.wheels import WheelMember, wheel_owner
from nativebuild.cache.keys import build_key
from nativebuild.cache.local import CachedFile
from nativebuild.pipeline.context import BuildContext, verified_wheels
from nativebuild.pipeline.emulation import check_build_emulation
from nativebuild.pipeline.image import write_image
from nativebuild.pipeline.images import image_identity, with_build_image
from nativebuild.plan.distributions import BuildPlan
from nativebuild.reporting import TaskKind, track
from nativebuild.targets import Target

# Called, before anything is written, with the final plans of archives deployed together (a
# function and its layers) and where Lambda extracts each (/var/task or /opt).
PlanCheck = Callable[[Sequence[tuple[ArchivePlan, str]]], None]

Planned = tuple[ArchiveSpec, ArchivePlan, tuple[Removal, ...]]


@dataclass(frozen=True, kw_only=True)
class PreparedTarget:
    """One target's archives, planned to the last file (stripped, slimmed, with bytecode) and
    not yet written: what the budget and ABI checks look at before anything is."""

    target: Target
    plan: BuildPlan
    wheels: Mapping[str, CachedFile]
    archives: tuple[Planned, ...]
    stripped: tuple[Stripped, ...] = ()

    def planned(self, filename: str) -> ArchivePlan:
        return next(plan for spec, plan, _ in self.archives if spec.filename == filename)


def assemble_target(
    context: BuildContext,
    target: Target,
    plan: BuildPlan,
    wheels: Mapping[str, CachedFile],
    *,
    check: PlanCheck | None = None,
) -> tuple[ArchiveRecord, ...]:
    """Write every archive of ``target`` (see :func:`nativebuild.archive.layout.archive_specs`)."""
    settings = context.settings
    specs = archive_specs(
        kind=settings.kind, name=settings.name, src=settings.src, functions=settings.functions,
        layer_layout=settings.layer_layout, runtime=target.runtime.name,
        python=target.runtime.python, arch=target.arch.value,
    )  # fmt: skip
    prepared = prepare_archives(context, target, plan, wheels, specs)
    _check_budget(context, list(prepared.archives))  # an image's size is checked as it is written
    if check is not None:
        mounted = {spec.filename: (planned, spec.mount) for spec, planned, _ in prepared.archives}
        for group in budget_groups([spec for spec, _, _ in prepared.archives]):
            check([mounted[spec.filename] for spec in group])
    return write_archives(context, prepared)


def prepare_archives(
    context: BuildContext,
    target: Target,
    plan: BuildPlan,
    wheels: Mapping[str, CachedFile],
    specs: Sequence[ArchiveSpec],
) -> PreparedTarget:
    """Plan the archives ``specs`` of ``target`` from its wheels: strip, slim, bytecode (the
    containers those need run here); nothing is written."""
    settings, reporter = context.settings, context.reporter
    image_ids: list[str] = []

    def job_target() -> Target:  # the target of a strip or bytecode container
        check_build_emulation(context, target)
        return with_build_image(context, target)

    def image_id() -> str:  # asked of the engine only when a container job needs it
        if not image_ids:
            image_ids.append(image_identity(context, target))
        return image_ids[0]

    stripped: tuple[Stripped, ...] = ()
    compiled_here = {item.pin.name for item in plan.items if not item.pin.is_wheel}
    if "strip" in settings.slim and compiled_here:
        wheels, stripped = strip_wheels(
            wheels,
            compiled_here,
            target,
            image_id=image_id(),
            runner=context.runner_for(target.arch),
            cache=context.cache,
            reporter=reporter,
            verbose=context.verbose,
            job_target=job_target,
        )
    planned = _plan_all(context, target, specs, [wheels[i.pin.name].path for i in plan.items])
    if settings.compile:
        planned = _compile(context, target, planned, wheels, image_id, job_target)
    return PreparedTarget(
        target=target, plan=plan, wheels=wheels, archives=tuple(planned), stripped=stripped
    )


def write_archives(context: BuildContext, prepared: PreparedTarget) -> tuple[ArchiveRecord, ...]:
    """Write the archives of ``prepared``, once every check has passed."""
    records = []
    target, plan, wheels = prepared.target, prepared.plan, prepared.wheels
    for spec, archive_plan, removed in prepared.archives:
        record = _write(context, target, spec, archive_plan, removed, plan, wheels)
        stripped = prepared.stripped if spec.dependencies else ()
        records.append(_with_build_facts(record, context, target, stripped))
    return tuple(records)


def _plan_all(
    context: BuildContext, target: Target, specs: Sequence[ArchiveSpec], wheel_paths: list[Path]
) -> list[Planned]:
    settings = context.settings
    options = SlimOptions(
        rules=frozenset(settings.slim), include=settings.include, exclude=settings.exclude
    )
    provided = runtime_packages(target.runtime.name)
    planned = []
    for spec in specs:
        archive_plan = plan_archive(
            wheel_paths if spec.dependencies else [], spec.src, python=target.runtime.python,
            site_prefix=spec.site_prefix, src_prefix=spec.src_prefix,
            # With --src ., the output and cache directories must not be packed.
            skip_dirs=(settings.output, context.cache.root, *spec.src_skip_dirs),
            src_excludes=spec.src_excludes,
        )  # fmt: skip
        result = slim_plan(
            archive_plan, options, site_prefix=spec.site_prefix, runtime_provided=provided
        )
        planned.append((spec, result.plan, result.removed))
    return planned


def _compile(
    context: BuildContext,
    target: Target,
    planned: list[Planned],
    wheels: Mapping[str, CachedFile],
    image_id: Callable[[], str],
    job_target: Callable[[], Target],
) -> list[Planned]:
    hashes = {wheel.path: wheel.sha256 for wheel in wheels.values()}
    groups = [
        plan_groups(
            archive_plan,
            mount=spec.mount,
            importable_prefix=spec.site_prefix if spec.is_layer else "",
            python=target.runtime.python,
            image_id=image_id(),
            wheel_hashes=hashes,
        )
        for spec, archive_plan, _ in planned
    ]
    compiled = compile_groups(
        [group for per_plan in groups for group in per_plan],
        target,
        runner=context.runner_for(target.arch),
        cache=context.cache,
        reporter=context.reporter,
        verbose=context.verbose,
        job_target=job_target,
    )  # fmt: skip
    result = []
    for (spec, archive_plan, removed), per_plan in zip(planned, groups, strict=True):
        with_pyc, count = with_bytecode(archive_plan, per_plan, compiled, target.runtime.python)
        context.reporter.detail(f"{spec.filename}: {count} .pyc files ({INVALIDATION})")
        result.append((spec, with_pyc, removed))
    return result


def _check_budget(context: BuildContext, planned: list[Planned]) -> None:
    external = [read_layer(path) for path in context.settings.with_layers]
    plans = {spec.filename: archive_plan for spec, archive_plan, _ in planned}
    zips = [spec for spec, _, _ in planned if spec.kind != "image"]
    for group in budget_groups(zips) if zips else []:
        warnings = check_group(
            [(spec.filename, plans[spec.filename]) for spec in group],
            external,
            layers=sum(1 for spec in group if spec.is_layer),
        )
        for warning in warnings:
            context.reporter.warning(warning)


def _write(
    context: BuildContext,
    target: Target,
    spec: ArchiveSpec,
    archive_plan: ArchivePlan,
    removed: tuple[Removal, ...],
    plan: BuildPlan,
    wheels: Mapping[str, CachedFile],
) -> ArchiveRecord:
    reporter = context.reporter
    started = time.monotonic()
    wheels_used = {
        e.source.wheel for e in archive_plan.entries if isinstance(e.source, WheelMember)
    }
    verified = verified_wheels(context, wheels_used)
    dest = context.settings.output / spec.filename
    facts = None
    total = len(archive_plan.entries)
    if spec.kind == "image":
        with track(reporter, TaskKind.ARCHIVE, spec.filename, arch=target.arch.value):
            image = write_image(
                context, target, archive_plan, name=spec.name, dest=dest,
                wheel_hashes={w.path: w.sha256 for w in wheels.values()},
                load=context.settings.load,
            )  # fmt: skip
        info = ArchiveInfo(
            path=image.path, sha256=image.sha256, size=image.size,
            entries=len(archive_plan.entries), uncompressed_size=archive_plan.unzipped_size,
        )  # fmt: skip
        packages = package_sizes(archive_plan, spec.filename)
        facts = image.facts
    else:
        with track(
            reporter, TaskKind.ARCHIVE, spec.filename, arch=target.arch.value, total=total
        ) as task:

            def on_entries(done: int) -> None:
                task.advance(completed=done)

            info = write_zip(
                archive_plan, dest, epoch=context.epoch, verified=verified, on_entries=on_entries
            )
        packages = package_sizes(archive_plan, spec.filename, info.compressed_sizes)
        for line in render_table(spec.filename, info.size, packages):
            reporter.detail(line)
        for warning in zipped_warnings(spec.filename, info.size):
            reporter.warning(warning)
    elapsed = time.monotonic() - started
    reporter.detail(f"wrote {info.path} ({info.size} bytes, {elapsed:.2f}s)")
    for line in summarize(removed):
        reporter.detail(line)
    if not archive_plan.entries:
        reporter.warning(f"{spec.filename} is empty: Lambda refuses an empty archive.")
    owners = {entry.owner for entry in archive_plan.entries}
    inside = [
        item
        for item in plan.items
        if spec.dependencies and wheel_owner(wheels[item.pin.name].path) in owners
    ]
    return ArchiveRecord(
        path=info.path,
        sha256=info.sha256,
        size=info.size,
        runtime=target.runtime.name,
        arch=target.arch.value,
        kind=spec.kind,
        name=spec.name,
        code_sha256="" if spec.kind == "image" else info.code_sha256,
        unzipped_size=info.uncompressed_size,
        files=info.entries,
        mount=spec.mount,
        layers=spec.layers,
        layer_layout=context.settings.layer_layout.value if spec.is_layer else None,
        compatible_runtimes=(target.runtime.name,) if spec.is_layer else (),
        compatible_architectures=(target.arch.value,) if spec.is_layer else (),
        bytecode=INVALIDATION if context.settings.compile else None,
        wheels=tuple(
            WheelEntry(
                name=item.pin.name,
                version=item.pin.version,
                filename=wheels[item.pin.name].path.name,
                sha256=wheels[item.pin.name].sha256,
                source=context.source_of(item),
                url=item.pin.url,
                sdist=None if item.pin.is_wheel else item.pin.filename,
                sdist_sha256=None if item.pin.is_wheel else item.pin.sha256,
            )
            for item in inside
        ),
        packages=packages,
        slim_rules=context.settings.slim,
        removed=removed,
        image_id=facts.id if facts is not None else None,
        image=facts,
    )


def _with_build_facts(
    record: ArchiveRecord, context: BuildContext, target: Target, stripped: tuple[Stripped, ...]
) -> ArchiveRecord:
    """Images as known without asking the engine: a build from wheels alone needs none.
    The build image's id is the one :func:`image_identity` last recorded."""
    key = build_key(
        {"kind": "image-id", "image": target.build_image, "platform": target.arch.docker_platform}
    )
    seen = context.cache.get_json("image-id", key) or {}
    image_id = str(seen["id"]) if "id" in seen else None
    if "@sha256:" in target.build_image:
        image_id = target.build_image.rsplit("@", 1)[1]
    return replace(
        record, build_image=str(seen.get("image", target.build_image)), build_image_id=image_id,
        runtime_image=target.runtime_image, stripped=stripped,
    )  # fmt: skip
