"""Can the engine run the target's architecture? Asked once per architecture and build, before
the first container of that architecture (compile, runtime probe, bytecode, strip, verify), so
a missing QEMU is a clear error with the fix, never an ``exec format error`` or a hang."""

from __future__ import annotations

import dataclasses

from nativebuild.engine.emulation import emulation_error, probe_spec
from nativebuild.errors import ContainerError
from nativebuild.pipeline.context import BuildContext
from nativebuild.targets import Target

__all__ = ["check_build_emulation", "check_emulation", "ensure_emulation"]


def check_build_emulation(context: BuildContext, target: Target) -> str:
    """:func:`check_emulation` before a build-image container. Before nativebuild's own image
    is built (which itself needs the emulation) the probe runs in the build image given, or else
    in the runtime image that image is made from."""
    image = target.build_image if context.settings.build_image else target.runtime_image
    return check_emulation(context, target, image)


def check_emulation(context: BuildContext, target: Target, image: str) -> str:
    """Fail now unless ``target``'s containers can run (probed in ``image``, which must exist
    for that architecture); the machine of the engine that runs them (emulated when it is not
    the target's). Asked of the engine once per architecture and build."""
    if target.arch not in context.engine_machines:
        engine = context.runner_for(target.arch).engine_architecture()
        if engine != target.arch.machine:
            ensure_emulation(context, dataclasses.replace(target, build_image=image), engine)
        context.engine_machines[target.arch] = engine
    return context.engine_machines[target.arch]


def ensure_emulation(context: BuildContext, target: Target, engine: str) -> None:
    """Run ``uname -m`` in the target's build image: its machine, or the error with the fix."""
    try:
        result = context.runner_for(target.arch).run(probe_spec(target), reporter=context.reporter)
    except ContainerError as err:
        raise emulation_error(target, engine, str(err)) from err
    if result.exit_code != 0 or target.arch.machine not in result.log_tail:
        raise emulation_error(target, engine, " ".join(result.log_tail[-3:]) or "no output")
