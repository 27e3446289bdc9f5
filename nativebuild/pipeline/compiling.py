"""Compiling a target's sdists over its pool of engines, and caching every wheel built.

(A cold build whose resolution needs the build image may compile in that container instead:
:mod:`nativebuild.pipeline.resolve_then_compile`, which keeps its wheels as this module does.)

Each engine of the pool gets one container with the jobs the pool policy gives it
(:mod:`nativebuild.sdists.pool`: longest first onto the least-loaded engine). An engine that
fails (it stops answering, its container or image goes away, it cannot run the architecture)
has its unfinished jobs spread over the engines left, with a warning naming it; the build fails
only when no engine is left, with the last one's error. An sdist that fails to build is not an
engine's fault: it would fail anywhere, so it is reported as it is. With one engine (no
``--builder``, or one per architecture) this is one container, as it always was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from nativebuild import __version__
from nativebuild.cache.local import CachedFile, default_cache_dir
from nativebuild.engine.runner import Engine
from nativebuild.errors import CompileError, ImageNotFoundError, NativebuildError
from nativebuild.pipeline.context import BuildContext, engine_view
from nativebuild.pipeline.emulation import check_build_emulation
from nativebuild.pipeline.images import image_identity, with_compile_image
from nativebuild.sdists.build import (
    ENGINE_FAILURES,
    CompileJob,
    CompileOutcome,
    manifest_key,
    run_compile,
)
from nativebuild.sdists.pool import PoolJob, assign
from nativebuild.targets import Architecture, Target

__all__ = [
    "BuilderRecord", "builder_records", "cache_wheels", "compile_jobs", "compiling_step",
    "keep_compiled", "logs_dir",
]  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuilderRecord:
    """One engine of an architecture's pool, as ``--json`` reports it."""

    arch: str
    engine: str
    jobs: tuple[str, ...]  # the distributions it compiled
    failed: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchOutcome:
    engine: Engine
    built: Mapping[str, CachedFile]  # by distribution name, in the cache
    error: CompileError | None  # sdists that failed to build
    lost: tuple[CompileJob, ...]  # jobs to try elsewhere
    engine_error: NativebuildError | None


def compile_jobs(
    context: BuildContext, target: Target, jobs: Sequence[CompileJob]
) -> dict[str, CachedFile]:
    """Compile ``jobs`` over ``target``'s pool; the wheels, in the cache, by name."""
    engines = context.pool_for(target.arch)
    by_key = {job.key: job for job in jobs}
    sizes = {job.key: _size(job) for job in jobs}
    failed: dict[str, NativebuildError] = {}
    built: dict[str, CachedFile] = {}
    compile_error: CompileError | None = None
    pending = list(jobs)
    while pending:
        pool_jobs = [PoolJob(key=job.key, size=sizes[job.key]) for job in pending]
        assignment = assign(pool_jobs, [engine.name for engine in engines], failed=failed)
        if assignment is None:
            raise compile_error or _no_engine_left(target, engines, failed, pending)
        batches = [
            (engine, [by_key[key] for key in assignment.jobs[engine.name]])
            for engine in engines
            if engine.name in assignment.jobs
        ]
        pending = []
        for outcome in _run_batches(context, target, batches, pooled=len(engines) > 1):
            built.update(outcome.built)
            done = context.compiled_on.setdefault((target.arch, outcome.engine.name), [])
            done.extend(outcome.built)
            if outcome.error is not None and compile_error is None:
                compile_error = outcome.error
            if outcome.engine_error is not None:
                failed[outcome.engine.name] = outcome.engine_error
                context.failed_engines[(target.arch, outcome.engine.name)] = _first_line(
                    outcome.engine_error
                )
                pending.extend(outcome.lost)
                _warn_failed(context, target, outcome, engines, failed)
    if compile_error is not None:
        raise compile_error
    return built


def builder_records(
    context: BuildContext, archs: Sequence[Architecture]
) -> tuple[BuilderRecord, ...]:
    """Every engine of the pool of each of ``archs``: what it compiled, whether it failed."""
    return tuple(
        BuilderRecord(
            arch=arch.value,
            engine=engine.name,
            jobs=tuple(sorted(context.compiled_on.get((arch, engine.name), ()))),
            failed=(arch, engine.name) in context.failed_engines,
        )
        for arch in dict.fromkeys(archs)
        for engine in context.pool_for(arch)
    )


def _size(job: CompileJob) -> int:
    try:
        return job.sdist.stat().st_size
    except OSError:
        return 0


def _run_batches(
    context: BuildContext,
    target: Target,
    batches: Sequence[tuple[Engine, Sequence[CompileJob]]],
    *,
    pooled: bool,
) -> list[BatchOutcome]:
    """Each engine's batch, all at once; Ctrl-C removes every container still running."""
    if len(batches) == 1:
        engine, jobs = batches[0]
        return [_run_batch(context, target, engine, jobs, pooled=pooled)]
    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        futures = [
            pool.submit(_run_batch, context, target, engine, jobs, pooled=pooled)
            for engine, jobs in batches
        ]
        try:
            wait(futures)
        except BaseException:
            for engine, _ in batches:
                engine.runner.cancel()
            raise
    return [future.result() for future in futures]


def _run_batch(
    context: BuildContext,
    target: Target,
    engine: Engine,
    jobs: Sequence[CompileJob],
    *,
    pooled: bool,
) -> BatchOutcome:
    view = engine_view(context, target.arch, engine)
    try:
        machine = check_build_emulation(view, target)
        _check_same_image(context, view, target, engine)
        compile_target = with_compile_image(view, target)
    except ENGINE_FAILURES as err:
        return BatchOutcome(engine=engine, built={}, error=None, lost=tuple(jobs), engine_error=err)
    where = f" on {engine.name}" if pooled else ""
    context.reporter.step(compiling_step(jobs, compile_target, machine, where=where))
    with context.cache.scratch_dir() as work:
        outcome = run_compile(
            jobs, compile_target, runner=view.runner_for(target.arch), reporter=context.reporter,
            verbose=context.verbose, workdir=work, index=context.index,
            source_date_epoch=context.epoch, emulated=machine != target.arch.machine,
            logs_dir=logs_dir(context),
        )  # fmt: skip
        built = cache_wheels(context, compile_target, outcome)
    return BatchOutcome(
        engine=engine, built=built, error=outcome.error, lost=outcome.lost,
        engine_error=outcome.engine_error,
    )  # fmt: skip


def _check_same_image(
    context: BuildContext, view: BuildContext, target: Target, engine: Engine
) -> None:
    """A build image given by tag must be the same image on every engine of the pool: the
    wheels' cache keys hold the id the first engine has. nativebuild's own images are named by
    their recipe and base, and digests are the image, so those need no check."""
    image = target.build_image
    if view is context or context.settings.build_image is None or "@sha256:" in image:
        return
    expected = image_identity(context, target)
    found = view.runner_for(target.arch).image_id(image, platform=target.arch.docker_platform)
    if found != expected:
        msg = (
            f"{image} on {engine.name} is {found[:19]}, not {expected[:19]} as on the first "
            f"engine of the {target.arch} pool: its wheels would be cached under another image's key."
        )
        hint = "Load the same image on every engine (docker save | docker load), or pin --build-image by digest."
        raise ImageNotFoundError(msg, hint=hint)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _warn_failed(
    context: BuildContext,
    target: Target,
    outcome: BatchOutcome,
    engines: Sequence[Engine],
    failed: Mapping[str, NativebuildError],
) -> None:
    left = [engine.name for engine in engines if engine.name not in failed]
    if not left:
        return  # the build fails with this error: no warning before it
    names = ", ".join(job.pin.name for job in outcome.lost) or "none unfinished"
    context.reporter.warning(
        f"Engine {outcome.engine.name} failed while compiling for {target.arch} "
        f"({_first_line(outcome.engine_error or Exception())}); its jobs ({names}) go to "
        f"{', '.join(left)}."
    )


def _no_engine_left(
    target: Target,
    engines: Sequence[Engine],
    failed: Mapping[str, NativebuildError],
    pending: Sequence[CompileJob],
) -> NativebuildError:
    """The error when every engine of the pool failed: with one engine, its own error as it
    is; with several, the last one's kind (and exit code) naming each engine and why."""
    last = list(failed.values())[-1]
    if len(engines) == 1:
        return last
    names = ", ".join(f"{job.pin.name} {job.pin.version}" for job in pending)
    why = "; ".join(f"{name}: {_first_line(err)}" for name, err in failed.items())
    msg = f"Every engine of the {target.arch} pool failed, so {names} could not be compiled: {why}"
    error = type(last)(msg)
    error.hint = last.hint
    return error


def logs_dir(context: BuildContext) -> Path:
    """Where the build logs of failed compiles are kept: ``logs/`` in the cache directory (also
    with --no-cache, whose throwaway cache is gone when the build ends), never in the output,
    which a failed build leaves as it was."""
    return (context.settings.cache_dir or default_cache_dir(context.env)) / "logs"


def compiling_step(
    jobs: Sequence[CompileJob], target: Target, engine: str, *, where: str = ""
) -> str:
    """What the build says as a compile starts; ``engine`` is the machine of the engine that
    runs it, ``where`` names that engine in a pool."""
    names = ", ".join(f"{job.pin.name} {job.pin.version}" for job in jobs)
    if engine != target.arch.machine:
        return (
            f"Compiling {names} for {target.arch} under emulation{where} (QEMU on a {engine} "
            f"engine; expect about ten times the native time) in {target.build_image}"
        )
    return f"Compiling {names}{where} in {target.build_image}"


def cache_wheels(
    context: BuildContext, target: Target, outcome: CompileOutcome
) -> dict[str, CachedFile]:
    """Put what built into the cache (whatever else failed); the wheels by distribution name."""
    built = {}
    for compiled in outcome.compiled:
        manifest = {
            "name": compiled.job.pin.name,
            "version": compiled.job.pin.version,
            "sdist": compiled.job.pin.filename,
            "sdist_sha256": compiled.job.pin.sha256,
            "target": target.describe(),
            "build_image": target.build_image,
            "nativebuild": __version__,
            "seconds": compiled.seconds,
            "vendored": list(compiled.vendored),
            **manifest_key(compiled.job),  # the full cache key, which readers re-hash
        }
        entry = context.cache.put_built(compiled.job.key, compiled.wheel, manifest, move=True)
        built[compiled.job.pin.name] = entry.wheel
        context.compiled_keys.add(compiled.job.key)
        context.reporter.detail(f"compiled {entry.wheel.path.name} in {compiled.seconds:.1f}s")
        for line in compiled.vendored:
            context.reporter.detail(f"  vendored {line} (the runtime lacks it)")
    return built


def keep_compiled(
    context: BuildContext, target: Target, outcome: CompileOutcome
) -> dict[str, CachedFile]:
    """:func:`cache_wheels`, then raise the failure, if any (an sdist that failed to build, or
    the container gone with jobs unfinished)."""
    built = cache_wheels(context, target, outcome)
    if outcome.error is not None:
        raise outcome.error
    if outcome.lost and outcome.engine_error is not None:
        raise outcome.engine_error
    return built
