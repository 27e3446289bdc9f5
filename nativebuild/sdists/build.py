"""Compiling sdists into wheels inside the build image: the plan (pure) and its execution."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from nativebuild.cache.keys import build_key
from nativebuild.drivers import script
from nativebuild.engine.runner import (
    ContainerResult,
    ContainerRunner,
    ContainerSpec,
    Mount,
    read_only_mounts,
)
from nativebuild.errors import (
    CompileError,
    ContainerError,
    DockerUnavailableError,
    EmulationUnavailableError,
    ImageNotFoundError,
    NativebuildError,
)
from nativebuild.index.containers import ContainerIndex, container_index
from nativebuild.index.pip_config import IndexSettings
from nativebuild.pins import Pin
from nativebuild.reporting import Reporter
from nativebuild.resolve.in_image import pip_environment
from nativebuild.sdists.logs import TAIL_LINES, BuildLogs
from nativebuild.targets import Target

DRIVER = script("build_wheels")
DRIVER_IN_CONTAINER = "/nativebuild/driver.py"
REPAIR = script("repair")
REPAIR_IN_CONTAINER = "/nativebuild/nativebuild_repair.py"  # beside the driver, which imports it
SDIST_DIR = "/nativebuild/sdists"
IN_DIR = "/nativebuild/in"
OUT_DIR = "/nativebuild/out"
OFFLINE_HINT = (
    "With --no-index (or local indexes only), build requirements such as setuptools and wheel "
    "must be in the --find-links folders too."
)
# Changing how wheels are built (driver, flags) must change every cache key.
BUILD_RECIPE = "2"
# What an engine, rather than an sdist, is to blame for: another engine may do better.
ENGINE_FAILURES = (
    DockerUnavailableError, ContainerError, ImageNotFoundError, EmulationUnavailableError,
)  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompileJob:
    pin: Pin
    key: str
    sdist: Path  # the sdist on the host (in the cache)
    # Sonames the runtime provides: repair vendors every other library the wheel needs.
    # None: no repair.
    provided: tuple[str, ...] | None = None
    # What ``key`` is the hash of (compile_key_fields), for the built wheel's manifest; empty
    # when unknown.
    key_fields: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)

    @property
    def out_dir(self) -> str:
        return f"{OUT_DIR}/{self.pin.name}"


def compile_key_fields(
    pin: Pin, target: Target, *, image_id: str, settings: Mapping[str, str]
) -> dict[str, str]:
    """Everything that changes the wheel built from ``pin``'s sdist: the full cache key, which
    the built wheel's manifest carries, and which :func:`compile_key` hashes."""
    fields = {
        "kind": "built-wheel",
        "name": pin.name,
        "version": pin.version,
        "sdist_sha256": pin.sha256,
        "abi": target.runtime.abi,
        "arch": target.arch.value,
        "platform": target.arch.docker_platform,
        "glibc": str(target.glibc),
        "build_image_id": image_id,
        "recipe": BUILD_RECIPE,
    }
    fields.update({f"setting:{k}": v for k, v in sorted(settings.items())})
    return fields


def compile_key(pin: Pin, target: Target, *, image_id: str, settings: Mapping[str, str]) -> str:
    """The cache key of the wheel built from ``pin``'s sdist (see :func:`compile_key_fields`)."""
    return build_key(compile_key_fields(pin, target, image_id=image_id, settings=settings))


def manifest_key(job: CompileJob) -> dict[str, dict[str, str]]:
    """``{"key": fields}`` for the manifest of the wheel ``job`` builds, or nothing when its
    fields are unknown or no longer hash to ``job.key`` (the build image changed between
    planning and compiling): a manifest never names a key other than its entry's."""
    fields = dict(job.key_fields)
    return {"key": fields} if fields and build_key(fields) == job.key else {}


def build_environment(source_date_epoch: int | None) -> dict[str, str]:
    # Fixed timestamps inside built wheels (wheel and setuptools honour it).
    epoch = source_date_epoch if source_date_epoch is not None else 315532800
    return {**pip_environment(), "SOURCE_DATE_EPOCH": str(epoch)}


def compile_spec(
    jobs: Sequence[CompileJob],
    target: Target,
    *,
    in_dir: Path,
    out_dir: Path,
    index: ContainerIndex,
    source_date_epoch: int | None,
) -> ContainerSpec:
    """One container that builds every job, with exactly the mounts it needs: the sdists and
    what pip needs to reach the index (the local sources' files too, for build requirements),
    read-only; the output writable."""
    mounts = [
        Mount(source=DRIVER, target=DRIVER_IN_CONTAINER),
        Mount(source=in_dir, target=IN_DIR),
        Mount(source=out_dir, target=OUT_DIR, read_only=False),
        *(Mount(source=job.sdist, target=f"{SDIST_DIR}/{job.pin.filename}") for job in jobs),
        *([Mount(source=REPAIR, target=REPAIR_IN_CONTAINER)] if _repairs(jobs) else []),
        *read_only_mounts(index.files),
    ]
    environment = {**build_environment(source_date_epoch), **index.environment}
    names = ", ".join(f"{j.pin.name} {j.pin.version}" for j in jobs)
    return ContainerSpec(
        image=target.build_image,
        command=(
            target.runtime.interpreter_path,
            DRIVER_IN_CONTAINER,
            f"{IN_DIR}/jobs.json",
            f"{OUT_DIR}/results.json",
        ),
        description=f"compile {names}",
        platform=target.arch.docker_platform,
        mounts=tuple(mounts),
        environment=tuple(sorted(environment.items())),
        working_dir="/tmp",
    )


# The combined container: the resolution, then the builds the host chose from its report.
GO_DIR = f"{IN_DIR}/go"  # the host writes the sdists, jobs.json and ready here meanwhile
FIRST_JOBS = "first.json"  # in GO_DIR: the jobs built before resolving, written beforehand


def resolve_first_spec(
    target: Target,
    *,
    resolve_command: Sequence[str],
    in_dir: Path,
    out_dir: Path,
    index: ContainerIndex,
    source_date_epoch: int | None,
    first: bool = False,
) -> ContainerSpec:
    """One container that resolves (``resolve_command``), then builds what the host names in
    ``in_dir/go`` once it has read the report: the second pip run finds the build dependencies
    of the first in its cache, and no second container starts. With ``first``, it builds the
    jobs of ``in_dir/go/first.json`` before resolving (stopping there when one fails).
    ``in_dir`` is bound, not copied, so it needs a local engine."""
    plan = {
        "resolve": list(resolve_command),
        "jobs": f"{GO_DIR}/jobs.json",
        "ready": f"{GO_DIR}/ready",
        **({"first": f"{GO_DIR}/{FIRST_JOBS}"} if first else {}),
    }
    (in_dir / "go").mkdir(exist_ok=True)
    (in_dir / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    environment = {**build_environment(source_date_epoch), **index.environment}
    return ContainerSpec(
        image=target.build_image,
        command=(
            target.runtime.interpreter_path,
            DRIVER_IN_CONTAINER,
            "--resolve-first",
            f"{IN_DIR}/plan.json",
            f"{OUT_DIR}/results.json",
        ),
        description=f"resolve requirements for {target.describe()}, then compile",
        platform=target.arch.docker_platform,
        mounts=(
            Mount(source=DRIVER, target=DRIVER_IN_CONTAINER),
            Mount(source=REPAIR, target=REPAIR_IN_CONTAINER),
            Mount(source=in_dir, target=IN_DIR),
            Mount(source=out_dir, target=OUT_DIR, read_only=False),
            *read_only_mounts(index.files),
        ),
        environment=tuple(sorted(environment.items())),
        working_dir="/tmp",
    )


def _repairs(jobs: Sequence[CompileJob]) -> bool:
    return any(job.provided is not None for job in jobs)


def jobs_document(
    jobs: Sequence[CompileJob], *, sdist_dir: str = SDIST_DIR
) -> list[dict[str, object]]:
    return [
        {
            "name": job.pin.name,
            "version": job.pin.version,
            "sdist": f"{sdist_dir}/{job.pin.filename}",
            "out": job.out_dir,
            "repair": None if job.provided is None else {"provided": list(job.provided)},
        }
        for job in jobs
    ]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompiledWheel:
    job: CompileJob
    wheel: Path
    seconds: float
    vendored: tuple[str, ...] = ()  # "libpq.so.5 -> psycopg2.libs/libpq-1a2b3c4d.so.5"
    unresolved: tuple[str, ...] = ()  # needs the build image itself could not resolve


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompileOutcome:
    """What built (to cache even when something else failed) and the failure, if any."""

    compiled: tuple[CompiledWheel, ...]
    error: CompileError | None  # sdists that failed to build: they would fail anywhere
    # Jobs that came back with no result: the container, or its engine, went away first.
    lost: tuple[CompileJob, ...] = ()
    engine_error: NativebuildError | None = None  # why they were lost


def check_built_wheel(job: CompileJob, filename: str, target: Target) -> None:
    """A wheel built in the image must be for the target's Python and architecture.

    One of its tags must be CPython of the target version (its own ABI, ``abi3`` or ``none``),
    an older CPython's ``abi3``, or pure Python ``py3``/``py3X``; on ``any``, ``linux_<machine>``
    or ``manylinux*_<machine>``.
    """
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as err:
        msg = f"Building {job.pin.name} produced {filename!r}, which is not a valid wheel name."
        raise CompileError(msg) from err
    if any(_built_tag_fits(tag, target) for tag in tags):
        return
    msg = (
        f"Building {job.pin.name} {job.pin.version} in {target.build_image} produced {filename}, "
        f"which is not for {target.runtime.abi} on linux {target.arch.machine}."
    )
    hint = "The build image's Python or architecture does not match the target runtime: check --build-image."
    raise CompileError(msg, hint=hint)


def _built_tag_fits(tag: Tag, target: Target) -> bool:
    machine = target.arch.machine
    platform_ok = tag.platform in ("any", f"linux_{machine}") or (
        tag.platform.startswith("manylinux") and tag.platform.endswith(f"_{machine}")
    )
    if not platform_ok:
        return False
    major, minor = target.runtime.python_version
    if tag.interpreter == target.runtime.abi and tag.abi in (target.runtime.abi, "abi3", "none"):
        return True
    if tag.abi == "abi3":
        version = _cpython_version(tag.interpreter)
        return version is not None and version[0] == major and version <= (major, minor)
    return tag.abi == "none" and tag.interpreter in (f"py{major}", f"py{major}{minor}")


def _cpython_version(interpreter: str) -> tuple[int, int] | None:
    """``cp310`` → (3, 10); anything else → None."""
    digits = interpreter.removeprefix("cp")
    if digits == interpreter or len(digits) < 2 or not digits.isdigit():
        return None
    return int(digits[0]), int(digits[1:])


def run_compile(
    jobs: Sequence[CompileJob],
    target: Target,
    *,
    runner: ContainerRunner,
    reporter: Reporter,
    verbose: bool,
    workdir: Path,
    index: IndexSettings,
    source_date_epoch: int | None,
    emulated: bool = False,
    logs_dir: Path | None = None,
) -> CompileOutcome:
    """Build ``jobs`` in one container. What failed to build comes back as a CompileError; jobs
    with no result at all (the container or the engine went away) come back as ``lost``, with
    the engine's error, so that another engine can take them.

    Each package is a compile task of ``reporter`` while it builds; the whole build log of a
    package that failed is kept in ``logs_dir`` (none is kept without it).
    """
    in_dir, out_dir = workdir / "in", workdir / "out"
    in_dir.mkdir(parents=True)
    out_dir.mkdir(parents=True)
    (in_dir / "jobs.json").write_text(json.dumps(jobs_document(jobs)), encoding="utf-8")
    logs = BuildLogs(
        reporter, workdir=workdir / "logs", arch=target.arch.value, emulated=emulated,
        verbose=verbose,
    )  # fmt: skip
    result: ContainerResult | None = None
    engine_error: NativebuildError | None = None
    ok = False
    try:
        try:
            with container_index(index) as view:
                spec = compile_spec(
                    jobs, target, in_dir=in_dir, out_dir=out_dir, index=view,
                    source_date_epoch=source_date_epoch,
                )  # fmt: skip
                # Every line reaches the logs; they pass it on to ``reporter`` only when verbose.
                result = runner.run(spec, reporter=logs, verbose=True)
        except ENGINE_FAILURES as err:
            engine_error = err  # what finished before is in results.json (bind mounts) all the same
        outcome = read_outcome(
            jobs, target, out_dir=out_dir, result=result, logs=logs, logs_dir=logs_dir,
            engine_error=engine_error,
        )  # fmt: skip
        ok = outcome.error is None and not outcome.lost
    finally:
        logs.close(ok=ok)
    if outcome.error is not None and (index.no_index or not index.remote_index_urls):
        outcome.error.hint = f"{outcome.error.hint} {OFFLINE_HINT}"
    return outcome


def read_outcome(
    jobs: Sequence[CompileJob],
    target: Target,
    *,
    out_dir: Path,
    result: ContainerResult | None,
    logs: BuildLogs | None = None,
    logs_dir: Path | None = None,
    engine_error: NativebuildError | None = None,
) -> CompileOutcome:
    """What the container built for ``jobs`` (results.json in ``out_dir``), checked; with
    ``logs`` (the container's output, split by package) and ``logs_dir``, each failed
    package's whole log is kept there and a built one's old failure log removed. Jobs with no
    result at all come back as ``lost``, with ``engine_error`` (or one made here)."""
    outcomes = _read_results(out_dir / "results.json")
    compiled: list[CompiledWheel] = []
    failures: list[tuple[CompileJob, dict[str, object] | None]] = []
    lost: list[CompileJob] = []
    for job in jobs:
        outcome = outcomes.get(job.pin.name)
        if outcome is None:
            lost.append(job)
            continue
        if not outcome["ok"]:
            failures.append((job, outcome))
            continue
        check_built_wheel(job, str(outcome["wheel"]), target)
        wheel = out_dir / job.pin.name / str(outcome["wheel"])
        built = CompiledWheel(
            job=job, wheel=wheel, seconds=float(str(outcome["seconds"])),
            vendored=tuple(_vendored(outcome.get("vendored"))),
            unresolved=tuple(str(n) for n in _as_list(outcome.get("unresolved"))),
        )  # fmt: skip
        compiled.append(built)
        if logs is not None and logs_dir is not None:
            logs.forget(job.pin.name, job.pin.version, logs_dir)
    error = _compile_failure(failures, target, result, logs, logs_dir) if failures else None
    if lost and engine_error is None:  # the container ended without a word about them
        engine_error = _compile_failure([(job, None) for job in lost], target, result, logs, None)
    return CompileOutcome(
        compiled=tuple(compiled), error=error, lost=tuple(lost),
        engine_error=engine_error if lost else None,
    )  # fmt: skip


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _vendored(value: object) -> list[str]:
    return [
        f"{item['soname']} -> {item['as']}"
        for item in _as_list(value)
        if isinstance(item, dict) and "soname" in item and "as" in item
    ]


def _read_results(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(item["name"]): item for item in data}


def _compile_failure(
    failures: list[tuple[CompileJob, dict[str, object] | None]],
    target: Target,
    result: ContainerResult | None,
    logs: BuildLogs | None,
    logs_dir: Path | None,
) -> CompileError:
    """The error for the packages that failed: the last lines of the first one's build log,
    and where each one's whole log was kept."""
    kept = []
    first_tail: list[str] = []
    for job, outcome in failures:
        raw_tail = outcome.get("log_tail") if outcome is not None else None
        driver_tail = [str(line) for line in raw_tail] if isinstance(raw_tail, list) else []
        streamed = logs.tail(job.pin.name) if logs is not None else []
        container_tail = list(result.log_tail) if result is not None else []
        tail = streamed or driver_tail or container_tail
        if not first_tail:
            first_tail = tail
        if logs is not None and logs_dir is not None:
            path = logs.keep(job.pin.name, job.pin.version, logs_dir, fallback=driver_tail or tail)
            if path is not None:
                kept.append(path)
    job = failures[0][0]
    names = ", ".join(f"{j.pin.name} {j.pin.version}" for j, _ in failures)
    last = "\n".join(f"    {line}" for line in first_tail[-TAIL_LINES:])
    msg = (
        f"Compiling {names} for {target.describe()} failed in {target.build_image}.\n"
        f"Last lines of the build of {job.pin.name}:\n{last}"
    )
    if kept:
        msg += "\nThe whole build log: " if len(kept) == 1 else "\nThe whole build logs: "
        msg += ", ".join(str(path) for path in kept)
    hint = (
        "Look for a missing compiler or -devel library in the lines above; a different pin with "
        "a binary wheel, or a build image with that library, fixes it. "
        + ("The whole log is in the file named above; " if kept else "")
        + "-v streams the build's output live."
    )
    return CompileError(msg, hint=hint)
