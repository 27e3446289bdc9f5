"""The build: requirements → resolution → plan → downloads and compiles → archive.

The only orchestrator. Decisions come from pure functions (``plan.py``, ``resolve.py``,
``compile.py``); this module does the I/O in order and reports through a Reporter.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nativebuild import __version__
from nativebuild.archive import plan_function_archive, source_date_epoch, write_zip
from nativebuild.cache import CachedFile, LocalCache, build_key, default_cache_dir
from nativebuild.compile import CompileJob, compile_key, run_compile
from nativebuild.config import Settings
from nativebuild.container import ContainerRunner, ContainerSpec, Mount
from nativebuild.errors import ResolutionError
from nativebuild.fetch import fetch_all
from nativebuild.network import IndexSettings, discover
from nativebuild.plan import Action, BuildPlan, make_plan
from nativebuild.reporting import Reporter
from nativebuild.requirements import RequirementSet, parse_requirements
from nativebuild.resolve import (
    IN_DIR,
    OUT_DIR,
    PIP_CACHE_DIR,
    REPORT_NAME,
    RESOLVER_VERSION,
    Resolution,
    check_pins,
    pip_environment,
    read_report,
    resolution_error_from_log,
    resolve_command,
)
from nativebuild.targets import Target


@dataclasses.dataclass(frozen=True, kw_only=True)
class WheelRecord:
    name: str
    version: str
    arch: str
    source: str  # cache | download | compiled
    filename: str
    sha256: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchiveRecord:
    path: Path
    sha256: str
    size: int
    runtime: str
    arch: str
    kind: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildResult:
    archives: tuple[ArchiveRecord, ...]
    wheels: tuple[WheelRecord, ...]
    containers_started: int

    def to_json(self) -> dict[str, Any]:
        return {
            "archives": [{**dataclasses.asdict(a), "path": str(a.path)} for a in self.archives],
            "wheels": [dataclasses.asdict(w) for w in self.wheels],
            "containers_started": self.containers_started,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildContext:
    """What every target of one build shares."""

    settings: Settings
    requirements: RequirementSet
    index: IndexSettings
    cache: LocalCache
    runner: ContainerRunner
    reporter: Reporter
    verbose: bool
    epoch: int | None


def build(
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
) -> BuildResult:
    """Build one archive per target of ``settings``."""
    targets = settings.targets()  # validates runtime and images before any work
    containers_before = runner.containers_started
    requirements = parse_requirements(settings.requirements, env=env)
    if requirements.no_index:
        msg = f"{settings.requirements} says --no-index, which nativebuild cannot honour yet."
        hint = "Serve the packages from an index (--index-url); local --find-links folders are not forwarded."
        raise ResolutionError(msg, hint=hint)
    index = discover(env).with_overrides(
        index_url=requirements.index_url,
        extra_index_urls=requirements.extra_index_urls,
        trusted_hosts=requirements.trusted_hosts,
    )
    for skipped in index.skipped:
        reporter.detail(f"not forwarding local index {skipped} (containers cannot see host paths)")
    cache = LocalCache(settings.cache_dir or default_cache_dir(env), reporter=reporter)
    cache.ensure()
    context = BuildContext(
        settings=settings,
        requirements=requirements,
        index=index,
        cache=cache,
        runner=runner,
        reporter=reporter,
        verbose=verbose,
        epoch=source_date_epoch(env),
    )
    archives, wheels = [], []
    for target in targets:
        archive, target_wheels = build_target(context, target)
        archives.append(archive)
        wheels.extend(target_wheels)
    return BuildResult(
        archives=tuple(archives),
        wheels=tuple(wheels),
        containers_started=runner.containers_started - containers_before,
    )


def build_target(context: BuildContext, target: Target) -> tuple[ArchiveRecord, list[WheelRecord]]:
    reporter = context.reporter
    reporter.step(f"Building for {target.describe()}")
    resolution = resolve(context, target)
    check_hashes(resolution, context.requirements)
    plan, found = plan_target(context, target, resolution)
    reporter.detail(plan.summary())
    wheels = acquire(context, target, plan, found)
    dest = (
        context.settings.output / f"{context.settings.name}-{target.runtime.name}-{target.arch}.zip"
    )
    started = time.monotonic()
    archive_plan = plan_function_archive(
        [wheels[item.pin.name].path for item in plan.items],
        context.settings.src,
        python=target.runtime.python,
        # With --src ., the output and cache directories must not be packed into the next build.
        skip_dirs=(context.settings.output, context.cache.root),
    )
    info = write_zip(archive_plan, dest, epoch=context.epoch)
    reporter.detail(f"wrote {info.path} ({info.size} bytes, {time.monotonic() - started:.2f}s)")
    record = ArchiveRecord(
        path=info.path, sha256=info.sha256, size=info.size,
        runtime=target.runtime.name, arch=target.arch.value, kind="function",
    )  # fmt: skip
    return record, [
        WheelRecord(
            name=item.pin.name,
            version=item.pin.version,
            arch=target.arch.value,
            source=item.source,
            filename=wheels[item.pin.name].path.name,
            sha256=wheels[item.pin.name].sha256,
        )
        for item in plan.items
    ]


def resolution_key(context: BuildContext, target: Target) -> str:
    return build_key(
        {
            "kind": "resolution",
            "resolver": RESOLVER_VERSION,
            "requirements": context.requirements.fingerprint(),
            "runtime": target.runtime.name,
            "arch": target.arch.value,
            "glibc": str(target.glibc),
            "build_image": target.build_image,
            **context.index.fingerprint_fields(),
        }
    )


def resolve(context: BuildContext, target: Target) -> Resolution:
    """The pins for ``target``: from the cache, or from pip in the build image."""
    key = resolution_key(context, target)
    cached = context.cache.get_json("resolution", key)
    if cached is not None:
        context.reporter.detail("resolution: cached")
        return Resolution.from_json(cached)
    count = len(context.requirements.requirements)
    context.reporter.step(f"Resolving {count} requirements in {target.build_image}")
    context.runner.image_id(target.build_image, platform=target.arch.docker_platform)
    with context.cache.scratch_dir() as work:
        in_dir, out_dir = work / "in", work / "out"
        in_dir.mkdir()
        out_dir.mkdir()
        reqs = context.requirements
        (in_dir / "requirements.txt").write_text(reqs.pip_requirements_text(), encoding="utf-8")
        constraints = reqs.pip_constraints_text()
        if constraints:
            (in_dir / "constraints.txt").write_text(constraints, encoding="utf-8")
        spec = resolve_spec(context, target, in_dir, out_dir, has_constraints=bool(constraints))
        result = context.runner.run(spec, reporter=context.reporter, verbose=context.verbose)
        if result.exit_code != 0:
            raise resolution_error_from_log(result.log_tail)
        resolution = read_report(out_dir / REPORT_NAME)
    check_pins(resolution, target)
    context.cache.put_json("resolution", key, resolution.to_json())
    return resolution


def resolve_spec(
    context: BuildContext, target: Target, in_dir: Path, out_dir: Path, *, has_constraints: bool
) -> ContainerSpec:
    pip_cache = context.cache.root / "pip"
    pip_cache.mkdir(exist_ok=True)
    environment = {**pip_environment(), **context.index.container_environment()}
    return ContainerSpec(
        image=target.build_image,
        command=resolve_command(target.runtime.interpreter_path, has_constraints=has_constraints),
        description=f"resolve requirements for {target.describe()}",
        platform=target.arch.docker_platform,
        mounts=(
            Mount(source=in_dir, target=IN_DIR),
            Mount(source=out_dir, target=OUT_DIR, read_only=False),
            Mount(source=pip_cache, target=PIP_CACHE_DIR, read_only=False),
            *context.index.container_mounts(),
        ),
        environment=tuple(sorted(environment.items())),
        working_dir="/tmp",
    )


def check_hashes(resolution: Resolution, requirements: RequirementSet) -> None:
    """With ``--hash`` in the requirements, every chosen file must match one of them."""
    if not requirements.require_hashes:
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


def plan_target(
    context: BuildContext, target: Target, resolution: Resolution
) -> tuple[BuildPlan, dict[str, CachedFile]]:
    """Look up the cache for every pin, then decide (pure) what to fetch and compile.

    Also returns the verified cache hits, by name, so they are not hashed twice.
    """
    cache = context.cache
    found: dict[str, CachedFile] = {}
    for pin in resolution.pins:
        if pin.is_wheel and (hit := cache.get_file(pin.sha256, pin.filename)) is not None:
            found[pin.name] = hit
    compile_keys: dict[str, str] = {}
    sdists = [pin for pin in resolution.pins if not pin.is_wheel]
    if sdists:
        image_id = context.runner.image_id(target.build_image, platform=target.arch.docker_platform)
        compile_keys = {
            pin.name: compile_key(pin, target, image_id=image_id, settings={}) for pin in sdists
        }
    for name, key in compile_keys.items():
        if (entry := cache.get_built(key)) is not None:
            found[name] = entry.wheel
    plan = make_plan(
        resolution.pins,
        cached_files={pin.sha256 for pin in resolution.pins if pin.name in found and pin.is_wheel},
        compile_keys=compile_keys,
        cached_built={key for name, key in compile_keys.items() if name in found},
    )
    return plan, found


def acquire(
    context: BuildContext, target: Target, plan: BuildPlan, found: dict[str, CachedFile]
) -> dict[str, CachedFile]:
    """Every wheel of the plan as a verified file in the cache, keyed by distribution name."""
    to_fetch = [item.pin for item in plan.items if item.action in (Action.DOWNLOAD, Action.COMPILE)]
    if to_fetch:
        context.reporter.step(f"Downloading {len(to_fetch)} files")
    fetched = fetch_all(
        to_fetch, cache=context.cache, settings=context.index, reporter=context.reporter
    )
    wheels: dict[str, CachedFile] = {}
    jobs = []
    for item in plan.items:
        pin = item.pin
        if item.action is Action.COMPILE:
            jobs.append(CompileJob(pin=pin, key=item.compile_key, sdist=fetched[pin.name].path))
        elif item.action is Action.DOWNLOAD:
            wheels[pin.name] = fetched[pin.name]
        else:
            wheels[pin.name] = found[pin.name]
    if jobs:
        wheels.update(compile_jobs(context, target, jobs))
    return wheels


def compile_jobs(
    context: BuildContext, target: Target, jobs: list[CompileJob]
) -> dict[str, CachedFile]:
    reporter = context.reporter
    names = ", ".join(f"{job.pin.name} {job.pin.version}" for job in jobs)
    reporter.step(f"Compiling {names} in {target.build_image}")
    with context.cache.scratch_dir() as work:
        outcome = run_compile(
            jobs, target, runner=context.runner, reporter=reporter, verbose=context.verbose,
            workdir=work, pip_cache=context.cache.root / "pip", index=context.index,
            source_date_epoch=context.epoch,
        )  # fmt: skip
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
            }
            entry = context.cache.put_built(compiled.job.key, compiled.wheel, manifest, move=True)
            built[compiled.job.pin.name] = entry.wheel
            reporter.detail(f"compiled {entry.wheel.path.name} in {compiled.seconds:.1f}s")
    if outcome.error is not None:
        raise outcome.error
    return built


def dump_json(result: BuildResult) -> str:
    return json.dumps(result.to_json(), indent=2, sort_keys=True)
