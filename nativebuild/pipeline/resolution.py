"""Which exact files a target needs: cache → lock file → uv on the host → pip in the image.

The cheapest source that can answer does: a cached answer for the same inputs; a lock file's
own pins (never re-resolved); uv on the host, which needs no container; and only when an
sdist's metadata is needed to resolve, pip inside the build image, which runs the target's own
Python.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from nativebuild.abi.elf import load_reader
from nativebuild.cache.keys import build_key
from nativebuild.engine.runner import ContainerSpec, Mount, read_only_mounts
from nativebuild.errors import (
    CacheOnlyError,
    ResolutionError,
)
from nativebuild.index.containers import ContainerIndex, container_index
from nativebuild.index.downloads import ssl_context
from nativebuild.inputs.local_project import unpack as unpack_tree
from nativebuild.inputs.locked import choose_files, replace_local
from nativebuild.inputs.requirement_line import RequirementLine
from nativebuild.inputs.requirements import RequirementSet
from nativebuild.pins import RESOLVER_VERSION, LocalPin, Resolution
from nativebuild.pipeline.context import BuildContext
from nativebuild.pipeline.emulation import known_emulated
from nativebuild.pipeline.images import image_identity, with_compile_image
from nativebuild.reporting import TaskKind, track
from nativebuild.resolve.hashes import check_hashes
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
        pins = choose_files(
            inputs.locked, target, extras=inputs.extras, groups=inputs.groups, local=inputs.local
        )
        resolution = Resolution(pins=pins)
    else:
        resolution = _resolve_requirements(context, target, in_image or resolve_in_image)
    check_pins(resolution, target)
    check_hashes(resolution, context.inputs.requirements, context.inputs.local)
    context.cache.put_json("resolution", key, resolution.to_json())
    return resolution


def _resolve_requirements(context: BuildContext, target: Target, in_image: InImage) -> Resolution:
    requirements = context.inputs.requirements
    assert requirements is not None  # noqa: S101 - Inputs holds one or the other
    context.reporter.step(
        f"Resolving {len(requirements.requirements)} requirements for {target.describe()}"
    )
    label = f"{len(requirements.requirements)} requirements with uv on the host"
    why: HostResolutionUnavailable | None = None
    host = None
    with (
        context.cache.scratch_dir() as work,
        track(context.reporter, TaskKind.RESOLVE, label, arch=target.arch.value),
    ):
        warming = warm_up(context)
        try:
            host = resolve_on_host(
                requirements, target, uv=context.uv, index=context.index, env=context.env,
                workdir=work, uv_cache=context.cache.root / "uv",
                urls=_unpacked_trees(context, work / "trees"),
            )  # fmt: skip
        except HostResolutionUnavailable as unavailable:
            why = unavailable  # not a failure: the build image resolves instead
        finally:
            # Never left running: a quick build could otherwise reach the interpreter's exit
            # while the thread is still importing, which can crash it (SIGSEGV).
            warming.join()
    if host is None:
        assert why is not None  # noqa: S101 - one or the other
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


def warm_up(context: BuildContext) -> threading.Thread:
    """While uv resolves (most of it waiting on the index), a thread does what the downloads
    and the wheel reading that follow would otherwise do first: the TLS context (loading the
    CA bundle; kept per process, see :func:`ssl_context`) and pyelftools' imports. Best
    effort: an error here is raised again, and reported, where the context is really used."""

    def run() -> None:
        with contextlib.suppress(Exception):
            ssl_context(context.index)
            load_reader()

    thread = threading.Thread(target=run, name="nativebuild-warm-up")
    thread.start()
    return thread


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


def resolve_in_image(context: BuildContext, target: Target) -> Resolution:
    """A container in the build image that only resolves (pip's dry run and report)."""
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
        label = f"{len(requirements.requirements)} requirements in {target.build_image}"
        emulated = known_emulated(context, target)
        with track(
            context.reporter, TaskKind.RESOLVE, label, arch=target.arch.value, emulated=emulated
        ):
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
