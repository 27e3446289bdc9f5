"""Which exact files a target needs: cache → lock file → uv on the host → pip in the image.

The cheapest source that can answer does: a cached answer for the same inputs; a lock file's
own pins (never re-resolved); uv on the host, which needs no container; and only when an
sdist's metadata is needed to resolve, pip inside the build image, which runs the target's own
Python.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from nativebuild.cache.keys import build_key
from nativebuild.engine.build_images import ImageRunner, ensure_build_image
from nativebuild.engine.runner import ContainerSpec, Mount, read_only_mounts
from nativebuild.errors import (
    CacheOnlyError,
    ConfigError,
    DockerUnavailableError,
    ResolutionError,
)
from nativebuild.index.containers import ContainerIndex, container_index
from nativebuild.inputs.git import is_commit
from nativebuild.inputs.local_project import unpack as unpack_tree
from nativebuild.inputs.locked import choose_files, replace_local
from nativebuild.inputs.requirement_line import RequirementLine
from nativebuild.inputs.requirements import RequirementSet
from nativebuild.pins import RESOLVER_VERSION, LocalPin, Resolution
from nativebuild.pipeline.context import BuildContext
from nativebuild.pipeline.derived_image import with_derived_image
from nativebuild.resolve.host import HostResolutionUnavailable, resolve_on_host
from nativebuild.resolve.in_image import (
    IN_DIR,
    LOCAL_IN_CONTAINER,
    OUT_DIR,
    REPORT_NAME,
    check_pins,
    pip_environment,
    read_report,
    resolution_error_from_log,
    resolve_command,
)
from nativebuild.sdists.build import OFFLINE_HINT
from nativebuild.targets import Target

OWN_IMAGE_PREFIX = "nativebuild/build-"  # images.image_tag: named by recipe and base


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


def resolve(context: BuildContext, target: Target) -> Resolution:
    """The pins for ``target``, from the cheapest source that can answer."""
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
        pins = choose_files(
            inputs.locked, target, extras=inputs.extras, groups=inputs.groups, local=inputs.local
        )
        resolution = Resolution(pins=pins)
    else:
        resolution = _resolve_requirements(context, target)
    check_pins(resolution, target)
    check_hashes(resolution, context)
    context.cache.put_json("resolution", key, resolution.to_json())
    return resolution


def _resolve_requirements(context: BuildContext, target: Target) -> Resolution:
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
                urls=_unpacked_trees(context, work / "trees"),
            )  # fmt: skip
    except HostResolutionUnavailable as why:
        if context.settings.cache_only:
            raise cache_only_refusal(requirements, why.reason) from None
        first = why.reason.strip().splitlines()[-1] if why.reason.strip() else why.reason
        context.reporter.detail(
            f"uv on the host cannot resolve this without building ({first}): resolving in {target.build_image}"
        )
        return _resolve_in_image(context, target)
    pins = choose_files(
        host.packages,
        target,
        no_binary=requirements.no_binary,
        only_binary=requirements.only_binary,
        local=context.inputs.local,
    )
    return Resolution(pins=pins)


def _local_lines(context: BuildContext) -> list[tuple[RequirementLine, LocalPin]]:
    requirements = context.inputs.requirements
    assert requirements is not None  # noqa: S101
    return list(zip(requirements.local, context.inputs.local, strict=True))


def _unpacked_trees(context: BuildContext, where: Path) -> dict[RequirementLine, str]:
    """Git trees for uv, unpacked from their packed archives: uv reads exactly the tree that
    is compiled, and never clones (nor sees credentials) itself."""
    urls = {}
    for line, local in _local_lines(context):
        if local.kind != "git":
            continue
        cached = context.cache.get_file(local.pin.sha256, local.pin.filename)
        if cached is None:
            msg = f"{line.origin}: the packed tree of {local.pin.name} left the cache during the build."
            raise ResolutionError(msg, hint="Run the build again.")
        urls[line] = unpack_tree(cached.path, where / local.pin.sha256[:16]).as_uri()
    return urls


def _local_in_container(context: BuildContext) -> tuple[dict[RequirementLine, str], list[Mount]]:
    """Each local requirement as a file mounted read-only: the packed sdist of a folder or git
    tree, or the wheel or sdist file itself; with the URL pip reads it from."""
    urls, mounts = {}, []
    for line, local in _local_lines(context):
        source = line.local_file
        if source is None:
            cached = context.cache.get_file(local.pin.sha256, local.pin.filename)
            if cached is None:
                msg = f"{line.origin}: the packed tree of {local.pin.name} left the cache during the build."
                raise ResolutionError(msg, hint="Run the build again.")
            source = cached.path
        inside = f"{LOCAL_IN_CONTAINER}/{local.pin.sha256[:16]}/{local.pin.filename}"
        mounts.append(Mount(source=source, target=inside))
        urls[line] = f"file://{inside}"
    return urls, mounts


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


def _resolve_in_image(context: BuildContext, target: Target) -> Resolution:
    requirements = context.inputs.requirements
    assert requirements is not None  # noqa: S101
    image_identity(context, target)  # a missing image fails here, with a clear message
    target = with_compile_image(context, target)
    urls, local_mounts = _local_in_container(context)
    with context.cache.scratch_dir() as work, container_index(context.index) as view:
        in_dir, out_dir = work / "in", work / "out"
        in_dir.mkdir()
        out_dir.mkdir()
        (in_dir / "requirements.txt").write_text(requirements.resolver_text(urls), encoding="utf-8")
        constraints = requirements.pip_constraints_text()
        if constraints:
            (in_dir / "constraints.txt").write_text(constraints, encoding="utf-8")
        spec = resolve_spec(
            target, in_dir, out_dir, has_constraints=bool(constraints), index=view,
            local=local_mounts,
        )  # fmt: skip
        runner = context.runner_for(target.arch)
        result = runner.run(spec, reporter=context.reporter, verbose=context.verbose)
        if result.exit_code != 0:
            error = resolution_error_from_log(result.log_tail)
            if context.index.no_index or not context.index.remote_index_urls:
                error.hint = f"{error.hint} {OFFLINE_HINT}"
            raise error
        resolution = read_report(out_dir / REPORT_NAME)
    # Back to host files: a find-links file by its host path, a local requirement by its pin.
    pins = [dataclasses.replace(p, url=view.links.host_url(p.url)) for p in resolution.pins]
    return Resolution(pins=replace_local(pins, context.inputs.local, target))


def resolve_spec(
    target: Target,
    in_dir: Path,
    out_dir: Path,
    *,
    has_constraints: bool,
    index: ContainerIndex,
    local: Sequence[Mount] = (),
) -> ContainerSpec:
    environment = {**pip_environment(), **index.environment}
    return ContainerSpec(
        image=target.build_image,
        command=resolve_command(target.runtime.interpreter_path, has_constraints=has_constraints),
        description=f"resolve requirements for {target.describe()}",
        platform=target.arch.docker_platform,
        mounts=(
            Mount(source=in_dir, target=IN_DIR),
            Mount(source=out_dir, target=OUT_DIR, read_only=False),
            *read_only_mounts(index.files),
            *local,
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
    # Hashes check files; a folder is the user's own code, a git tree is pinned by its commit.
    trees = {lp.pin.sha256 for lp in context.inputs.local if lp.kind in ("folder", "git")}
    for line in requirements.local:
        if line.git is not None and not is_commit(line.git.rev):
            msg = f"{line.origin}: in hash-checking mode, {line.name} must be pinned to a commit."
            hint = "Write @<full commit id> after the git URL: the commit is its hash."
            raise ResolutionError(msg, hint=hint)
    for pin in resolution.pins:
        if pin.sha256 in trees:
            continue
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


def with_build_image(context: BuildContext, target: Target) -> Target:
    """``target`` with the build image its containers use. Without --build-image that is
    nativebuild's own image for the runtime (build-images/), built on first use; only called
    when a container or a compile key needs it, so builds that need neither need no engine."""
    if context.settings.build_image is not None:
        return target
    memo = context.build_images
    if target.arch not in memo:
        runner = context.runner_for(target.arch)
        if not isinstance(runner, ImageRunner):
            msg = f"The engine for {target.arch} cannot build nativebuild's build image."
            raise ConfigError(msg, hint="Pass --build-image with an image that has a compiler.")
        memo[target.arch] = ensure_build_image(
            target, runner, context.reporter, index=context.index
        )
    return dataclasses.replace(target, build_image=memo[target.arch])


def with_compile_image(context: BuildContext, target: Target) -> Target:
    """``target`` with the image its sdists are built (and resolved) in: the build image, or
    the one derived from it with the project's build-packages and before-build."""
    return with_derived_image(context, with_build_image(context, target))


def image_identity(context: BuildContext, target: Target) -> str:
    """The build image's identity, for cache keys. nativebuild's own images are named by their
    recipe and base, so the name is the identity (the same on every machine sharing a cache);
    other images are asked for their id. When the engine is down and the id was seen before,
    the last one seen stands (a warm build then needs no engine)."""
    key = build_key(
        {"kind": "image-id", "image": target.build_image, "platform": target.arch.docker_platform}
    )
    if "@sha256:" in target.build_image:
        return target.build_image.rsplit("@", 1)[1]  # pinned by digest: that is the identity
    try:
        target = with_build_image(context, target)
        ref = target.build_image
        image_id = context.runner_for(target.arch).image_id(
            ref, platform=target.arch.docker_platform
        )
    except DockerUnavailableError:
        seen = context.cache.get_json("image-id", key)
        if seen is None:
            raise
        context.reporter.detail(
            f"Docker engine not reachable: using {seen['image']} as last seen ({seen['id'][:19]})"
        )
        return str(seen["id"])
    identity = ref if ref.startswith(OWN_IMAGE_PREFIX) else image_id
    seen = context.cache.get_json("image-id", key)
    if seen is None or seen.get("id") != identity:
        context.cache.replace_json("image-id", key, {"image": ref, "id": identity})
    return identity
