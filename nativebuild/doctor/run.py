"""``nativebuild doctor``, the executor: gather the facts (engine, images, binfmt, cache
directory, disk, a container fetching from the index) and turn them into checks
(:mod:`nativebuild.doctor.checks`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nativebuild.cache.local import default_cache_dir
from nativebuild.doctor.checks import (
    BINFMT_DIR,
    MIN_FREE_CACHE,
    MIN_FREE_ENGINE,
    Check,
    DoctorReport,
    DoctorRunner,
    Status,
    binfmt_registered,
    check_cache,
    check_disk,
    check_emulation,
    check_engine,
    check_image,
    check_index,
    check_remote_cache,
    parse_probe,
    probe_index_spec,
    uname_spec,
)
from nativebuild.errors import NativebuildError
from nativebuild.index.pip_config import IndexSettings, discover
from nativebuild.reporting import NullReporter
from nativebuild.targets import Architecture, Target

if TYPE_CHECKING:
    from nativebuild.config.settings import Settings
    from nativebuild.engine.runner import EngineInfo, ImageInfo
    from nativebuild.reporting import Reporter


def probe_remote_cache(settings: Settings) -> None:
    """Read one (absent) document, as a build does: raises CacheError when the store cannot
    be reached or refuses the credentials."""
    from nativebuild.cache.s3 import open_remote

    assert settings.cache is not None  # noqa: S101
    remote = open_remote(settings.cache, endpoint_url=settings.cache_endpoint_url)
    remote.fetch_json("doctor", "0" * 64)


def cache_facts(path: Path) -> Check:
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), Path("/"))
        error = None if os.access(parent, os.W_OK) else f"cannot be created: {parent} is read-only"
        return check_cache(path, error=error, size=0, files=0, exists=False)
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as err:
        return check_cache(path, error=f"not writable: {err}", size=0, files=0, exists=True)
    size = files = 0
    for root, _, names in os.walk(path):
        for filename in names:
            try:
                size += (Path(root) / filename).lstat().st_size
            except OSError:
                continue
            files += 1
    return check_cache(path, error=None, size=size, files=files, exists=True)


def free_space(path: Path) -> int | None:
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    return None if existing is None else shutil.disk_usage(existing).free


def engine_is_local(env: Mapping[str, str]) -> bool:
    host = env.get("DOCKER_HOST", "")
    return host == "" or host.startswith("unix://")


# --- executor -------------------------------------------------------------------------------


def _local(runner: DoctorRunner, image: str) -> ImageInfo | None:
    try:
        return runner.local_image(image)
    except NativebuildError:
        return None


def image_checks(target: Target, runner: DoctorRunner) -> list[Check]:
    checks = []
    for role, ref in (("build", target.build_image), ("runtime", target.runtime_image)):
        local, registry, error = _local(runner, ref), None, None
        if local is None:
            try:
                registry = runner.registry_digest(ref)
            except NativebuildError as err:
                error = str(err)
        check = check_image(role, ref, local=local, registry=registry, error=error)
        checks.append(dataclasses.replace(check, name=f"{check.name} ({target.arch.value})"))
    return checks


def _probe_image(target: Target, runner: DoctorRunner) -> str | None:
    for image in (target.build_image, target.runtime_image):
        if _local(runner, image) is not None:
            return image
    return None


def emulation_check(
    target: Target,
    runner: DoctorRunner,
    *,
    engine: EngineInfo,
    binfmt: bool | None,
    needed: bool,
) -> Check:
    image = None if engine.architecture == target.arch.machine else _probe_image(target, runner)
    probe = None
    if image is not None:
        try:
            result = runner.run(uname_spec(target, image), reporter=NullReporter())
        except NativebuildError as err:
            probe = str(err)
        else:
            last = result.log_tail[-1].strip() if result.log_tail else ""
            probe = last if result.exit_code == 0 else f"exit {result.exit_code}: {last}"
    return check_emulation(
        target.arch,
        engine_machine=engine.architecture,
        binfmt=binfmt,
        probe=probe,
        probe_image=image,
        needed=needed,
    )


def index_checks(
    targets: Sequence[Target], runner: DoctorRunner, index: IndexSettings
) -> list[Check]:
    for target in targets:
        image = _probe_image(target, runner)
        if image is None:
            continue
        checks = []
        for url in index.index_urls:
            try:
                result = runner.run(
                    probe_index_spec(target, image, url, index), reporter=NullReporter()
                )
            except NativebuildError as err:
                outcome: Mapping[str, object] = {"error": str(err)}
            else:
                outcome = parse_probe(result)
            checks.append(check_index(url, image, outcome))
        return checks
    detail = "no build or runtime image of the configured targets is present to try from"
    return [Check(name="package index from a container", status=Status.SKIPPED, detail=detail)]


def run_doctor(
    settings: Settings,
    *,
    runner: DoctorRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    binfmt_dir: Path = BINFMT_DIR,
    remote_probe: Callable[[Settings], None] = probe_remote_cache,
) -> DoctorReport:
    """Every check for ``settings``' targets; the other architecture is checked too, as
    information (its problems do not fail the report)."""
    reporter.step("Checking the Docker engine")
    engine, error = None, None
    try:
        engine = runner.engine_info()
    except NativebuildError as err:
        error = err
    checks = [check_engine(engine, error)]
    configured = settings.targets()
    if engine is not None:
        reporter.step("Checking images, emulation and the package index")
        everything = dataclasses.replace(settings, archs=tuple(Architecture)).targets()
        for target in configured:
            checks.extend(image_checks(target, runner))
        for target in sorted(everything, key=lambda t: t.arch not in settings.archs):
            local = engine_is_local(env)
            checks.append(
                emulation_check(
                    target,
                    runner,
                    engine=engine,
                    binfmt=binfmt_registered(target.arch, binfmt_dir) if local else None,
                    needed=target.arch in settings.archs,
                )
            )
        checks.extend(index_checks(configured, runner, discover(env)))
    else:
        detail = "images, emulation and the package index need the engine"
        checks.append(Check(name="container checks", status=Status.SKIPPED, detail=detail))
    cache_dir = settings.cache_dir or default_cache_dir(env)
    checks.append(cache_facts(cache_dir))
    remote_error = None
    if settings.cache is not None:
        reporter.step(f"Checking the remote cache {settings.cache}")
        try:
            remote_probe(settings)
        except NativebuildError as err:
            remote_error = err
    checks.append(check_remote_cache(settings.cache, remote_error))
    checks.append(
        check_disk("cache", cache_dir, free=free_space(cache_dir), minimum=MIN_FREE_CACHE)
    )
    if engine is not None:
        root = Path(engine.root_dir)
        on_host = engine_is_local(env) and root.is_dir()
        free = free_space(root) if on_host else None
        checks.append(check_disk("docker engine", root, free=free, minimum=MIN_FREE_ENGINE))
    return DoctorReport(checks=tuple(checks))
