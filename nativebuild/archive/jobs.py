"""Container jobs for archives: bytecode and strip, run by ``drivers/archive_jobs.py`` in the target's
build image, so that the target's Python compiles and the target's binutils strip."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nativebuild.drivers import script
from nativebuild.engine.runner import ContainerRunner, ContainerSpec, Mount
from nativebuild.errors import ContainerError
from nativebuild.reporting import Reporter
from nativebuild.targets import Target

DRIVER = script("archive_jobs")
DRIVER_IN_CONTAINER = "/nativebuild/archive_driver.py"
IN_DIR = "/nativebuild/archive-in"
OUT_DIR = "/nativebuild/archive-out"
# PYTHONHASHSEED fixes the order of set constants in bytecode (frozensets are marshalled in
# iteration order), so the same sources give the same .pyc bytes.
ENVIRONMENT = (("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONHASHSEED", "0"))


def job_spec(target: Target, *, in_dir: Path, out_dir: Path, description: str) -> ContainerSpec:
    return ContainerSpec(
        image=target.build_image,
        command=(
            target.runtime.interpreter_path,
            DRIVER_IN_CONTAINER,
            f"{IN_DIR}/jobs.json",
            f"{OUT_DIR}/results.json",
        ),
        description=description,
        platform=target.arch.docker_platform,
        mounts=(
            Mount(source=DRIVER, target=DRIVER_IN_CONTAINER),
            Mount(source=in_dir, target=IN_DIR),
            Mount(source=out_dir, target=OUT_DIR, read_only=False),
        ),
        environment=ENVIRONMENT,
        working_dir="/tmp",
    )


def run_jobs(
    jobs: Mapping[str, Sequence[Mapping[str, str]]],
    target: Target,
    *,
    runner: ContainerRunner,
    reporter: Reporter,
    verbose: bool,
    workdir: Path,
    description: str,
) -> dict[str, Any]:
    """Run ``jobs`` (files already in ``workdir/in``, outputs to ``workdir/out``); returns the
    driver's results. Raises ContainerError when the driver did not finish."""
    in_dir, out_dir = workdir / "in", workdir / "out"
    in_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (in_dir / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    spec = job_spec(target, in_dir=in_dir, out_dir=out_dir, description=description)
    result = runner.run(spec, reporter=reporter, verbose=verbose)
    try:
        results = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        results = None
    if result.exit_code != 0 or not isinstance(results, dict):
        tail = "\n".join(f"    {line}" for line in result.log_tail[-25:])
        msg = (
            f"Could not {description} in {target.build_image} (exit {result.exit_code}).\n"
            f"Last lines:\n{tail}"
        )
        hint = (
            "The build image needs the target's Python at its usual path and binutils; run with -v."
        )
        raise ContainerError(msg, hint=hint)
    return results


def host_path(container_path: str, workdir: Path) -> Path:
    """Where a path under IN_DIR or OUT_DIR is on the host."""
    for prefix, sub in ((IN_DIR, "in"), (OUT_DIR, "out")):
        if container_path.startswith(prefix + "/"):
            return workdir / sub / container_path[len(prefix) + 1 :]
    msg = f"{container_path!r} is not a path of an archive job."
    raise ContainerError(msg)
