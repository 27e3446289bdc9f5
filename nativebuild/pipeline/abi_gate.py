"""The ABI side of a build: what each target's runtime provides, what repair vendors against,
the check of every archive before it is written, and ``build --verify`` once it is.

The runtime's facts come from nativebuild's data for Lambda's own images, and from a probe of
the image (one container, cached by image id) for any other runtime image, so stand-ins and
custom images are checked against what they really hold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nativebuild import __version__
from nativebuild.abi.check import Severity, abi_error, check_mounts
from nativebuild.abi.runtime_facts import (
    RuntimeFacts,
    facts_for_target,
    is_custom_runtime,
    known_facts,
)
from nativebuild.abi.scan import merge_layers, scan_archive_plan, scan_zip
from nativebuild.abi.verify import VerifyReport, verify_archive
from nativebuild.archive.layout import LAYER_ROOT
from nativebuild.archive.manifest import ArchiveRecord
from nativebuild.archive.plan import ArchivePlan, SourceFile
from nativebuild.cache.keys import build_key, file_identity
from nativebuild.errors import AbiError, DockerUnavailableError
from nativebuild.pipeline.context import BuildContext, wheel_binaries
from nativebuild.pipeline.emulation import check_emulation, known_emulated
from nativebuild.reporting import TaskKind, track
from nativebuild.targets import Target

__all__ = ["build_facts", "check_group", "compile_settings", "provided_libraries", "verify_built"]

VERDICT_KIND = "abi-verdict"
VERDICT_VERSION = "1"  # bump when the checks change, so kept verdicts are not trusted


def build_facts(context: BuildContext, target: Target) -> RuntimeFacts:
    """The runtime facts of ``target``, once per runtime image and architecture and build."""
    memo, key = context.runtime_facts, (target.runtime_image, target.arch)
    runtime_key = f"{target.runtime_image}|{target.arch.docker_platform}"
    if key not in memo:
        try:
            # A custom image is probed in a container of the target's architecture, once per
            # image id: the emulation check only when that container is about to start.
            memo[key] = facts_for_target(
                target, runner=context.runner_for(target.arch), cache=context.cache,
                reporter=context.reporter, verbose=context.verbose,
                before_container=lambda: check_emulation(context, target, target.runtime_image),
                emulated=lambda: known_emulated(context, target),
            )  # fmt: skip
            if is_custom_runtime(target):  # its facts, hence the verdicts, follow its id
                context.image_ids[runtime_key] = context.runner_for(target.arch).image_id(
                    target.runtime_image, platform=target.arch.docker_platform
                )
        except DockerUnavailableError:
            context.image_ids[runtime_key] = "unconfirmed"  # the next build asks again
            facts = known_facts(target)
            context.reporter.warning(
                f"Cannot probe {target.runtime_image} (the Docker engine is not reachable): "
                f"checking against {facts.description} instead."
            )
            memo[key] = facts
    return memo[key]


def provided_libraries(context: BuildContext, target: Target) -> tuple[str, ...] | None:
    """The sonames repair may rely on the runtime for; None when repair is off."""
    if not context.settings.repair:
        return None
    return tuple(sorted(build_facts(context, target).libraries))


def compile_settings(context: BuildContext, target: Target) -> dict[str, str]:
    """The settings that change a compiled wheel, for its cache key."""
    settings = context.settings
    provided = provided_libraries(context, target)
    fields = {
        "repair": "off" if provided is None else build_key({"provided": ",".join(provided)}),
    }
    if settings.build_packages:
        fields["build-packages"] = " ".join(sorted(settings.build_packages))
    if settings.before_build:
        fields["before-build"] = json.dumps(list(settings.before_build))
    return fields


def check_group(
    context: BuildContext,
    target: Target,
    planned: Sequence[tuple[ArchivePlan, str]],
) -> None:
    """Check archives deployed together (a function and its layers) before any is written;
    warnings are reported, errors raised as one AbiError naming every file. A passing verdict
    is kept by the identity of every input, so an unchanged build does not read its binaries
    again."""
    if not context.settings.check:
        return
    facts = build_facts(context, target)
    key = _verdict_key(planned, facts, target, context.settings.with_layers)
    local = context.cache.machine_local  # the key holds this machine's paths
    verdict = local.get_json(VERDICT_KIND, key)
    if verdict is None:
        with track(
            context.reporter, TaskKind.CHECK, f"binaries for {target.runtime.name}",
            arch=target.arch.value,
        ):  # fmt: skip
            verdict = _check(context, target, planned, facts)
        local.put_json(VERDICT_KIND, key, verdict)
    for warning in verdict["warnings"]:
        context.reporter.warning(str(warning))
    context.reporter.detail(
        f"{verdict['binaries']} binary files checked against {facts.description}: ok"
    )


def _check(
    context: BuildContext,
    target: Target,
    planned: Sequence[tuple[ArchivePlan, str]],
    facts: RuntimeFacts,
) -> dict[str, Any]:
    """The verdict of a passing check (warnings and the number of binaries); raises AbiError."""
    external = [scan_zip(path, root=LAYER_ROOT) for path in context.settings.with_layers]
    scanned = [
        scan_archive_plan(plan, root=mount, wheels=lambda p: wheel_binaries(context, p))
        for plan, mount in planned
    ]
    mounts = [m for m in scanned if m.root != LAYER_ROOT]
    layers = [m for m in scanned if m.root == LAYER_ROOT]
    if layers or external:
        mounts.append(merge_layers([*external, *layers]))
    findings = check_mounts(mounts, target, facts)
    error = abi_error(findings, target)
    if error is not None:
        raise error
    warnings = [f.describe() for f in findings if f.severity is Severity.WARNING]
    return {"warnings": warnings, "binaries": sum(len(m.binaries) for m in mounts)}


def _verdict_key(
    planned: Sequence[tuple[ArchivePlan, str]],
    facts: RuntimeFacts,
    target: Target,
    external: Sequence[Path],
) -> str:
    """Every input of the check: the facts, the target, and each entry's path and bytes'
    identity (cached wheels never change in place; other files by size and mtime)."""
    digest = hashlib.sha256(f"{__version__}/{VERDICT_VERSION}\0{target.describe()}\0".encode())
    digest.update(json.dumps(facts.to_json(), sort_keys=True).encode())
    stats: dict[Path, str] = {}

    def identity(path: Path) -> str:
        if path not in stats:
            stats[path] = file_identity(path)
        return stats[path]

    for plan, mount in planned:
        digest.update(f"mount {mount}\n".encode())
        for entry in plan.entries:
            source = entry.source
            if isinstance(source, SourceFile):
                where = identity(source.path)
            else:
                where = f"{identity(source.wheel)}|{source.member}"
            digest.update(f"{entry.path}\0{where}\n".encode())
    for path in external:
        digest.update(f"layer {identity(path)}\n".encode())
    return digest.hexdigest()


def verify_built(
    context: BuildContext, target: Target, archives: Sequence[ArchiveRecord]
) -> list[VerifyReport]:
    """Import every module of ``target``'s archives in its runtime image (``build --verify``):
    each function with this build's layers; a layer-only build through an empty function."""
    functions = [a for a in archives if a.mount != LAYER_ROOT]
    layers = [a.path for a in archives if a.mount == LAYER_ROOT]
    reports = []
    check_emulation(context, target, target.runtime_image)
    with context.cache.scratch_dir() as work:
        if not functions:
            empty = work / "empty.zip"
            empty.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: end of directory only
            subjects: list[Path] = [empty]
        else:
            subjects = [a.path for a in functions]
        for archive in subjects:
            with track(
                context.reporter, TaskKind.CHECK, f"imports of {archive.name}",
                arch=target.arch.value, emulated=known_emulated(context, target),
            ):  # fmt: skip
                report = verify_archive(
                    archive, target, layers=layers, runner=context.runner_for(target.arch),
                    cache=context.cache, reporter=context.reporter, verbose=context.verbose,
                )  # fmt: skip
            reports.append(report)
            if not report.ok:
                raise _verify_error(report, layers)
            context.reporter.detail(
                f"verified {archive.name if functions else ', '.join(p.name for p in layers)}: "
                f"{len(report.modules)} modules import in {report.image}"
            )
    return reports


def _verify_error(report: VerifyReport, layers: Sequence[Path]) -> AbiError:
    failed = [f"{m.name} ({m.package or 'your source'}): {m.error}" for m in report.failed_modules]
    checks = [f.describe() for f in report.errors]
    lines = "\n".join(f"- {line}" for line in [*failed, *checks])
    with_layers = f" with {', '.join(p.name for p in layers)}" if layers else ""
    msg = f"{report.archive.name}{with_layers} does not work in {report.image}:\n{lines}"
    hint = "Each line says what failed; `nativebuild verify ARCHIVE -v` shows the full output."
    return AbiError(msg, hint=hint)
