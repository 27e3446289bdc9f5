"""Which exact files a target needs: cache → lock file → uv on the host → pip in the image.

The cheapest source that can answer does: a cached answer for the same inputs; a lock file's
own pins (never re-resolved); uv on the host, which needs no container; and only when an
sdist's metadata is needed to resolve, pip inside the build image, which runs the target's own
Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from packaging.utils import canonicalize_name

from nativebuild.cache.keys import build_key
from nativebuild.engine.runner import ContainerSpec, Mount, read_only_mounts
from nativebuild.errors import (
    CacheOnlyError,
    ResolutionError,
)
from nativebuild.inputs.locked import choose_files
from nativebuild.inputs.requirements import RequirementSet
from nativebuild.pins import RESOLVER_VERSION, Resolution
from nativebuild.pipeline.context import BuildContext
from nativebuild.pipeline.images import image_identity, with_compile_image
from nativebuild.resolve.host import HostResolutionUnavailable, resolve_on_host
from nativebuild.resolve.in_image import (
    IN_DIR,
    OUT_DIR,
    REPORT_NAME,
    check_pins,
    pip_environment,
    read_report,
    resolution_error_from_log,
    resolve_command,
)
from nativebuild.targets import Target


def resolution_key(context: BuildContext, target: Target) -> str:
    return build_key(
        {
            "kind": "resolution",
            "resolver": RESOLVER_VERSION,
            "input_kind": context.inputs.kind,
            "inputs": context.inputs.fingerprint,
            "runtime": target.runtime.name,
            "arch": target.arch.value,
            "glibc": str(target.glibc),
            "build_image": target.build_image,
            **context.index.fingerprint_fields(),
        }
    )


InImage = Callable[[BuildContext, Target], Resolution]


def resolve(
    context: BuildContext, target: Target, *, in_image: InImage | None = None
) -> Resolution:
    """The pins for ``target``, from the cheapest source that can answer. ``in_image`` resolves
    in the build image when the host cannot (default: a container that only resolves)."""
    key = resolution_key(context, target)
    cached = context.cache.get_json("resolution", key)
    if cached is not None:
        context.reporter.detail("resolution: cached")
        return Resolution.from_json(cached)
    inputs = context.inputs
    if inputs.locked is not None:
        context.reporter.detail(
            f"pins: {len(inputs.locked)} locked in {context.settings.requirements.name}"
        )
        pins = choose_files(inputs.locked, target, extras=inputs.extras, groups=inputs.groups)
        resolution = Resolution(pins=pins)
    else:
        resolution = _resolve_requirements(context, target, in_image or resolve_in_image)
    check_pins(resolution, target)
    check_hashes(resolution, context)
    context.cache.put_json("resolution", key, resolution.to_json())
    return resolution


def _resolve_requirements(context: BuildContext, target: Target, in_image: InImage) -> Resolution:
    requirements = context.inputs.requirements
    assert requirements is not None  # noqa: S101 - Inputs holds one or the other
    context.reporter.step(
        f"Resolving {len(requirements.requirements)} requirements for {target.describe()}"
    )
    try:
        with context.cache.scratch_dir() as work:
            host = resolve_on_host(
                requirements, target, uv=context.uv, index=context.index, env=context.env,
                workdir=work, uv_cache=context.cache.root / "uv",
            )  # fmt: skip
    except HostResolutionUnavailable as why:
        if context.inputs.local:
            names = ", ".join(sorted(context.inputs.local))
            msg = (
                f"uv could not resolve on the host, and the build image cannot see the local "
                f"projects ({names}):\n{why.reason}"
            )
            hint = "Give every requirement of the set a wheel or static metadata (PEP 621), or pin the sdist-only package's dependencies."
            raise ResolutionError(msg, hint=hint) from None
        if context.settings.cache_only:
            raise cache_only_refusal(requirements, why.reason) from None
        first = why.reason.strip().splitlines()[-1] if why.reason.strip() else why.reason
        context.reporter.detail(
            f"uv on the host cannot resolve this without building ({first}): resolving in {target.build_image}"
        )
        return in_image(context, target)
    pins = choose_files(
        host.packages,
        target,
        no_binary=requirements.no_binary,
        only_binary=requirements.only_binary,
        local=context.inputs.local,
    )
    return Resolution(pins=pins)


# uv's wording for a requirement only an sdist can satisfy (see host_resolve._NEEDS_BUILD).
_SDIST_ONLY = (
    re.compile(r"Wheels are required for `([^`]+)`"),
    re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:[=<>!~]=?[^\s,]+)? ha(?:s|ve) no usable wheels"),
)


def sdist_only_names(reason: str) -> list[str]:
    """The packages uv says only an sdist could provide, in the order it names them."""
    found = (
        (match.start(), canonicalize_name(match.group(1)))
        for pattern in _SDIST_ONLY
        for match in pattern.finditer(reason)
    )
    return list(dict.fromkeys(name for _, name in sorted(found)))


def cache_only_refusal(requirements: RequirementSet, reason: str) -> CacheOnlyError:
    """--cache-only, no cached resolution, and uv cannot resolve on the host: resolving would
    take a container in the build image, which --cache-only never starts."""
    names = sdist_only_names(reason)
    fill = (
        "Run the build once without --cache-only (with the same --cache and build image) so the "
        "resolution and compiled wheels reach the cache"
    )
    if names:
        # A requirement of the set as written ("psycopg2==2.9.9"); a dependency by name.
        written = {line.name: line.specifier for line in requirements.requirements}
        listed = ", ".join(written.get(name, name) for name in names)
        why = (
            f"resolving needs the metadata of sdists ({listed}), which only a container in the "
            "build image can read"
        )
        hint = f"{fill}, or pin versions of {', '.join(names)} that have wheels for the target."
    else:
        detail = reason.strip().splitlines()[-1] if reason.strip() else reason
        why = f"uv cannot resolve on the host ({detail}), so only a container in the build image could"
        hint = f"{fill}."
    msg = f"--cache-only: the resolution is not in the cache, and {why}; --cache-only starts none."
    return CacheOnlyError(msg, hint=hint)


def resolve_in_image(context: BuildContext, target: Target) -> Resolution:
    """A container in the build image that only resolves (pip's dry run and report)."""
    requirements = context.inputs.requirements
    assert requirements is not None  # noqa: S101
    image_identity(context, target)  # a missing image fails here, with a clear message
    target = with_compile_image(context, target)
    with context.cache.scratch_dir() as work:
        in_dir, out_dir = work / "in", work / "out"
        in_dir.mkdir()
        out_dir.mkdir()
        (in_dir / "requirements.txt").write_text(
            requirements.pip_requirements_text(), encoding="utf-8"
        )
        constraints = requirements.pip_constraints_text()
        if constraints:
            (in_dir / "constraints.txt").write_text(constraints, encoding="utf-8")
        spec = resolve_spec(context, target, in_dir, out_dir, has_constraints=bool(constraints))
        runner = context.runner_for(target.arch)
        result = runner.run(spec, reporter=context.reporter, verbose=context.verbose)
        if result.exit_code != 0:
            raise resolution_error_from_log(result.log_tail)
        return read_report(out_dir / REPORT_NAME)


def resolve_spec(
    context: BuildContext, target: Target, in_dir: Path, out_dir: Path, *, has_constraints: bool
) -> ContainerSpec:
    environment = {**pip_environment(), **context.index.container_environment()}
    return ContainerSpec(
        image=target.build_image,
        command=resolve_command(target.runtime.interpreter_path, has_constraints=has_constraints),
        description=f"resolve requirements for {target.describe()}",
        platform=target.arch.docker_platform,
        mounts=(
            Mount(source=in_dir, target=IN_DIR),
            Mount(source=out_dir, target=OUT_DIR, read_only=False),
            *read_only_mounts(context.index.container_files()),
        ),
        environment=tuple(sorted(environment.items())),
        working_dir="/tmp",
    )


def check_hashes(resolution: Resolution, context: BuildContext) -> None:
    """With ``--hash`` in the requirements, every chosen file must match one of them."""
    requirements = context.inputs.requirements
    if requirements is None or not requirements.require_hashes:
        return
    allowed: dict[str, set[str]] = {}
    for line in requirements.requirements:
        allowed.setdefault(line.name, set()).update(
            h.removeprefix("sha256:") for h in line.hashes if h.startswith("sha256:")
        )
    for pin in resolution.pins:
        hashes = allowed.get(pin.name)
        if not hashes:
            msg = f"{pin.name} {pin.version} has no sha256 --hash in the requirements, which use hashes."
            hint = (
                "In hash-checking mode every package, dependencies included, needs a "
                "--hash=sha256:... (nativebuild verifies sha256)."
            )
            raise ResolutionError(msg, hint=hint)
        if pin.sha256 not in hashes:
            msg = f"{pin.filename} has sha256 {pin.sha256}, which none of its --hash values match."
            raise ResolutionError(msg, hint="Check the hashes pinned in the requirements.")
