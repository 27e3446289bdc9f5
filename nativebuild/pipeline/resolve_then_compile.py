"""Compiling sdists in the container that resolved the requirements, which goes on to build
what its report calls for (the usual way, a compile container of their own over the engines of
a pool, is :mod:`nativebuild.pipeline.compiling`).

This way exists for cold builds of sets that need the build image anyway (an sdist's
metadata takes it to resolve): one container instead of two, and pip's cache, holding the
build dependencies the resolution fetched, serves the builds. The host still decides what to
build (cache keys, the same as a compile container's), fetches and verifies every sdist, and
keeps the results exactly as a compile container's, so the two ways give the same wheels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nativebuild.cache.keys import build_key
from nativebuild.errors import NativebuildError, ResolutionError
from nativebuild.index.containers import container_index, container_links
from nativebuild.index.downloads import fetch_all
from nativebuild.index.simple_api import IndexFile, SimpleIndex
from nativebuild.pins import Pin, Resolution
from nativebuild.pipeline.abi_gate import compile_settings, provided_libraries
from nativebuild.pipeline.compiling import compiling_step, keep_compiled, logs_dir
from nativebuild.pipeline.context import BuildContext
from nativebuild.pipeline.emulation import check_build_emulation
from nativebuild.pipeline.images import image_identity, with_compile_image
from nativebuild.reporting import (
    ForwardingReporter,
    NullReporter,
    Reporter,
    TaskKind,
    start_task,
)
from nativebuild.resolve.hashes import check_hashes
from nativebuild.resolve.in_image import (
    REPORT_NAME,
    check_pins,
    read_report,
    resolution_error_from_log,
    resolve_command,
)
from nativebuild.resolve.known_sdists import candidates, known_sdists
from nativebuild.sdists.build import (
    FIRST_JOBS,
    GO_DIR,
    CompileJob,
    CompileOutcome,
    compile_key_fields,
    jobs_document,
    read_outcome,
    resolve_first_spec,
)
from nativebuild.sdists.logs import BuildLogs
from nativebuild.targets import Target

PAGE_FETCHES = 8  # index pages read at once
RESOLVED_MARKER = "@@nativebuild:resolved@@"  # drivers/build_wheels.py says it


def can_compile_while_resolving(context: BuildContext, target: Target) -> bool:
    """Whether the resolution container may go on to compile. Not with --cache-only (it
    compiles nothing), nor with a remote cache (a wheel another runner built is likelier than
    not: plan first, as usual), nor on an engine that gets its files by copy (the host adds
    files while the container runs), nor for a shard or a pool of engines."""
    settings = context.settings
    runner = context.runner_for(target.arch)
    # Local requirements and find-links files come back from pip's report as container paths:
    # the resolution alone maps them back (pipeline.resolution), before anything is chosen.
    local = bool(context.inputs.local) or bool(container_links(context.index).files)
    # A shard compiles its own part only, and a pool spreads the compiles: both plan first.
    spread = settings.shard is not None or len(context.pool_for(target.arch)) > 1
    return not (
        settings.cache_only
        or settings.cache
        or local
        or spread
        or getattr(runner, "copy_files", False)
    )


def resolve_and_compile(context: BuildContext, target: Target) -> Resolution:
    """Resolve ``target``'s requirements in the build image; the same container then compiles
    the sdists of the answer that are not in the cache yet (kept as :func:`compile_jobs`
    keeps them). The sdists known before resolving (:mod:`nativebuild.resolve.known_sdists`)
    are compiled first, and pip resolves with their wheels."""
    requirements = context.inputs.requirements
    assert requirements is not None  # noqa: S101 - only requirements are resolved in an image
    image_id = image_identity(context, target)  # a missing image fails here, with a message
    engine = check_build_emulation(context, target)
    target = with_compile_image(context, target)
    with context.cache.scratch_dir() as work, container_index(context.index) as view:
        in_dir, out_dir = work / "in", work / "out"
        in_dir.mkdir()
        out_dir.mkdir()
        (in_dir / "go").mkdir()
        (in_dir / "requirements.txt").write_text(requirements.resolver_text({}), encoding="utf-8")
        constraints = requirements.pip_constraints_text()
        if constraints:
            (in_dir / "constraints.txt").write_text(constraints, encoding="utf-8")
        first = _compile_first(context, target, image_id, engine, in_dir / "go")
        command = resolve_command(
            target.runtime.interpreter_path, has_constraints=bool(constraints)
        )
        command += tuple(arg for job in first for arg in ("--find-links", job.out_dir))
        spec = resolve_first_spec(
            target, resolve_command=command, in_dir=in_dir, out_dir=out_dir, index=view,
            source_date_epoch=context.epoch, first=bool(first),
        )  # fmt: skip
        chooser = _Chooser(context, target, image_id, engine, in_dir / "go", out_dir, first)
        emulated = engine != target.arch.machine
        # The resolution is a task until the container says it has resolved; the compiles
        # that follow in the same container are tasks of their own (BuildLogs).
        label = f"{len(requirements.requirements)} requirements in {target.build_image}"
        resolving = start_task(
            context.reporter, TaskKind.RESOLVE, label, arch=target.arch.value, emulated=emulated
        )

        def resolved() -> None:
            resolving.finish()
            chooser.choose()

        logs = BuildLogs(
            context.reporter, workdir=work / "logs", arch=target.arch.value, emulated=emulated,
            verbose=context.verbose,
        )  # fmt: skip
        ok = False
        try:
            listener = _MarkerListener(logs, RESOLVED_MARKER, resolved)
            result = context.runner_for(target.arch).run(spec, reporter=listener, verbose=True)
            if chooser.prefetch is not None:
                chooser.prefetch.join()  # no download outlives the step that started it
            if chooser.failure is not None:
                raise chooser.failure
            jobs = [*chooser.first, *chooser.jobs]
            if result.exit_code != 0 and not chooser.jobs:
                if first and chooser.resolution is None:  # compiled first, before resolving
                    failed = read_outcome(first, target, out_dir=out_dir, result=result, logs=logs)
                    if failed.error is not None:
                        _keep(context, target, failed)
                raise resolution_error_from_log(result.log_tail)
            resolution = chooser.resolution or read_report(out_dir / REPORT_NAME)
            if jobs:
                outcome = read_outcome(
                    jobs, target, out_dir=out_dir, result=result, logs=logs,
                    logs_dir=logs_dir(context),
                )  # fmt: skip
                _keep(context, target, outcome)
            ok = True
        finally:
            resolving.finish(ok=ok)
            logs.close(ok=ok)
    return resolution


def _keep(context: BuildContext, target: Target, outcome: CompileOutcome) -> None:
    built = keep_compiled(context, target, outcome)
    engine = context.pool_for(target.arch)[0].name  # the pool is this one engine
    context.compiled_on.setdefault((target.arch, engine), []).extend(built)


def _compile_first(
    context: BuildContext, target: Target, image_id: str, engine: str, go: Path
) -> list[CompileJob]:
    """The jobs of the sdists known before resolving that are not in the cache, each fetched
    and verified into ``go``, with the jobs file the container reads first. Reading the index
    is a head start only: when it fails, pip resolves as it would have."""
    requirements = context.inputs.requirements
    assert requirements is not None  # noqa: S101
    index = context.index
    lines = candidates(requirements, target)
    links = index.find_links or requirements.find_links
    if not lines or index.no_index or links or index.local_index_urls:
        return []
    names = sorted({line.name for line in lines})
    try:
        simple = SimpleIndex(index.index_urls, settings=index)
        with ThreadPoolExecutor(max_workers=min(PAGE_FETCHES, len(names))) as pool:
            pages: dict[str, list[IndexFile]] = dict(
                pool.map(lambda name: (name, simple.files(name)), names)
            )
    except (NativebuildError, OSError):
        return []
    # The compile settings may probe the runtime image: only once an sdist is known.
    wanted = _uncached(context, target, image_id, known_sdists(lines, pages, target))
    if not wanted:
        return []
    jobs = _fetched_jobs(context, target, wanted, go)
    _write_atomic(go / FIRST_JOBS, json.dumps(jobs_document(jobs, sdist_dir=GO_DIR)))
    context.reporter.step(
        compiling_step(jobs, target, engine) + " (same container, before resolving)"
    )
    return jobs


def _uncached(
    context: BuildContext, target: Target, image_id: str, pins: Sequence[Pin]
) -> list[tuple[Pin, str, dict[str, str]]]:
    """Each of ``pins`` whose compiled wheel is not in the cache, with its key and its fields."""
    if not pins:
        return []
    settings = compile_settings(context, target)
    wanted = []
    for pin in pins:
        fields = compile_key_fields(pin, target, image_id=image_id, settings=settings)
        key = build_key(fields)
        if context.cache.get_built(key) is None:
            wanted.append((pin, key, fields))
    return wanted


def _fetched_jobs(
    context: BuildContext, target: Target, wanted: Sequence[tuple[Pin, str, dict[str, str]]],
    go: Path,
) -> list[CompileJob]:  # fmt: skip
    """A compile job for each of ``wanted``, its sdist fetched, verified and linked into ``go``."""
    fetched = fetch_all(
        [pin for pin, _, _ in wanted], cache=context.cache, settings=context.index,
        reporter=context.reporter,
    )  # fmt: skip
    provided = provided_libraries(context, target)
    jobs = []
    for pin, key, fields in wanted:
        sdist = fetched[pin.sha256].path
        _link_or_copy(sdist, go / pin.filename)
        jobs.append(CompileJob(pin=pin, key=key, sdist=sdist, provided=provided, key_fields=fields))
    return jobs


class _Chooser:
    """Runs on the container's log thread once the report is written: which sdists to build,
    fetched and verified into the container's ``go`` directory. The container waits for
    ``ready``, which is written last, whatever happens (an error stops it building).

    ``first`` holds the jobs compiled before resolving; pip names their wheels (in their
    output folders) where the sdist stood: each becomes the sdist's pin again, and its job
    takes the version as pip reports it."""

    def __init__(
        self,
        context: BuildContext,
        target: Target,
        image_id: str,
        engine: str,
        go: Path,
        out_dir: Path,
        first: Sequence[CompileJob] = (),
    ) -> None:
        self.context, self.target, self.image_id, self.engine = context, target, image_id, engine
        self.go, self.out_dir = go, out_dir
        self.first = list(first)
        self.jobs: list[CompileJob] = []
        self.resolution: Resolution | None = None
        self.failure: NativebuildError | None = None
        self.prefetch: threading.Thread | None = None

    def choose(self) -> None:
        try:
            self.jobs = self._jobs()
        except NativebuildError as err:
            self.failure, self.jobs = err, []
        finally:
            body = json.dumps({"abort": self.failure is not None or not self.jobs})
            _write_atomic(self.go / "ready", body)

    def _jobs(self) -> list[CompileJob]:
        context, target = self.context, self.target
        resolution = self._as_sdists(read_report(self.out_dir / REPORT_NAME))
        check_pins(resolution, target)
        # --hash: nothing is fetched or built before this
        check_hashes(resolution, context.inputs.requirements, context.inputs.local)
        self.resolution = resolution
        done = {job.pin.name for job in self.first}
        sdists = [pin for pin in resolution.pins if not pin.is_wheel and pin.name not in done]
        wanted = _uncached(context, target, self.image_id, sdists)
        if not wanted:
            if self.first:  # while the container that compiled them ends
                self._fetch_wheels_meanwhile([pin for pin in resolution.pins if pin.is_wheel])
            return []
        jobs = _fetched_jobs(context, target, wanted, self.go)
        document = jobs_document(jobs, sdist_dir=GO_DIR)
        _write_atomic(self.go / "jobs.json", json.dumps(document))
        context.reporter.step(compiling_step(jobs, target, self.engine) + " (same container)")
        self._fetch_wheels_meanwhile([pin for pin in resolution.pins if pin.is_wheel])
        return jobs

    def _as_sdists(self, resolution: Resolution) -> Resolution:
        """Each wheel compiled first back to its sdist's pin; the jobs compiled first that the
        resolution does not name are dropped (their wheels are not kept)."""
        if not self.first:
            return resolution
        by_name = {job.pin.name: job for job in self.first}
        pins, kept = [], []
        settings = compile_settings(self.context, self.target) if by_name else {}
        for pin in resolution.pins:
            job = by_name.get(pin.name)
            if job is None:
                pins.append(pin)
                continue
            if pin.url != f"file://{job.out_dir}/{pin.filename}" and pin.sha256 != job.pin.sha256:
                msg = (
                    f"pip in the build image chose {pin.filename} for {pin.name}, not "
                    f"{job.pin.filename}, the only file of its pinned version on the index."
                )
                raise ResolutionError(msg, hint="The index changed during the build: run it again.")
            sdist = dataclasses.replace(job.pin, version=pin.version)
            fields = compile_key_fields(
                sdist, self.target, image_id=self.image_id, settings=settings
            )
            job = dataclasses.replace(job, pin=sdist, key=build_key(fields), key_fields=fields)
            pins.append(sdist)
            kept.append(job)
        self.first = kept
        return Resolution(pins=tuple(pins))

    def _fetch_wheels_meanwhile(self, pins: list[Pin]) -> None:
        """Download the binary wheels while the container compiles (the planner then finds
        them in the cache); a failure here is only a lost head start, said by the planner."""
        context = self.context
        missing = [pin for pin in pins if context.cache.get_file(pin.sha256, pin.filename) is None]

        def fetch() -> None:
            with contextlib.suppress(NativebuildError, OSError):
                got = fetch_all(
                    missing, cache=context.cache, settings=context.index, reporter=NullReporter()
                )
                context.downloaded.update(got)  # by sha256: reported as downloads, not hits

        if missing:
            self.prefetch = threading.Thread(target=fetch, name="nativebuild-prefetch", daemon=True)
            self.prefetch.start()


class _MarkerListener(ForwardingReporter):
    """A reporter that passes everything on and calls ``then`` once ``marker`` is printed."""

    def __init__(self, reporter: Reporter, marker: str, then: Callable[[], None]) -> None:
        super().__init__(reporter)
        self._marker, self._then = marker, then
        self._called = threading.Event()

    def output(self, line: str) -> None:
        if line.strip() == self._marker and not self._called.is_set():
            self._called.set()
            self._then()
            return
        self._reporter.output(line)


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
