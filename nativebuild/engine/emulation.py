"""Whether an engine can run a target's architecture: the probe (one ``uname -m`` container) and
the error, with its fix, when it cannot. Pure: :mod:`nativebuild.pipeline.emulation` runs it.
"""

from __future__ import annotations

from nativebuild.engine.runner import ContainerSpec
from nativebuild.errors import EmulationUnavailableError
from nativebuild.targets import Target

EMULATION_HINT = (
    "Register QEMU for the architecture with the engine, for example "
    "`docker run --privileged --rm tonistiigi/binfmt --install arm64` "
    "(or `apt-get install qemu-user-static binfmt-support` on Debian and Ubuntu), "
    "or build on a native engine of that architecture."
)


def probe_spec(target: Target) -> ContainerSpec:
    """The smallest container that proves the engine can run the target's architecture."""
    return ContainerSpec(
        image=target.build_image,
        command=("uname", "-m"),
        description=f"check that {target.arch} containers run",
        platform=target.arch.docker_platform,
    )


def emulation_error(target: Target, engine_machine: str, detail: str) -> EmulationUnavailableError:
    msg = (
        f"The Docker engine ({engine_machine}) cannot run {target.arch} containers, which "
        f"compiling for {target.describe()} needs: {detail}"
    )
    return EmulationUnavailableError(msg, hint=EMULATION_HINT)
