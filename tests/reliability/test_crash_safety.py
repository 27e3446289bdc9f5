"""SIGKILL a real build process at seeded random points of each phase; afterwards the cache
holds only verified entries, the output directory only complete archives, and the next build
gives the undisturbed bytes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.harness import (
    REPO,
    build_args,
    check_cache,
    driver_command,
    driver_env,
    make_index,
    make_project,
    partial_outputs,
    run_fake,
)

PHASES = ("download", "compile", "cache-write", "archive-write")
TRIALS = 32
SEED = 20261127


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("crash")
    index = make_index(root)
    project = make_project(root / "project")
    done = run_fake(index, build_args(project, root / "baseline-cache", root / "baseline-out"))
    assert done.returncode == 0, done.stderr
    return index, project, json.loads(done.stdout)["archives"][0]["sha256"]


def kill_during(index: Path, args: list[str], phase: str, rng: random.Random) -> str:
    """Start the build, wait for the n-th announcement of ``phase``, SIGKILL after a random
    delay; returns what happened ("killed in <phase>" or "finished first")."""
    process = subprocess.Popen(
        driver_command(index, args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=driver_env(NB_PHASES="1"), cwd=REPO,
    )  # fmt: skip
    assert process.stderr is not None
    wanted = rng.randint(1, 2 if phase in ("download", "cache-write") else 1)
    seen = 0
    for line in process.stderr:
        if line.strip() == f"PHASE {phase}":
            seen += 1
            if seen == wanted:
                break
    time.sleep(rng.uniform(0, 0.05))
    finished = process.poll() is not None
    process.send_signal(signal.SIGKILL)
    process.stderr.read()
    code = process.wait(timeout=30)
    return "finished first" if finished and code == 0 else f"killed in {phase}"


def test_sigkill_at_random_points_leaves_nothing_partial(
    world: tuple[Path, Path, str], tmp_path: Path
) -> None:
    index, project, expected = world
    rng = random.Random(SEED)  # noqa: S311 - reproducible trials
    outcomes: dict[str, int] = {}
    corrupt: list[str] = []
    for trial in range(TRIALS):
        phase = PHASES[trial % len(PHASES)]
        cache, output = tmp_path / f"cache-{trial}", tmp_path / f"out-{trial}"
        # Archive-write trials reuse the previous trial's cache (killed, then rebuilt): the
        # warm path, which writes no cache entry, is killed too.
        if phase == "archive-write":
            cache = tmp_path / f"cache-{trial - 1}"
        args = build_args(project, cache, output)
        outcome = kill_during(index, args, phase, rng)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        after_kill = check_cache(cache)
        corrupt += after_kill.corrupt
        bad = [b for b in partial_outputs(output) if not b.endswith("temp file left behind")]
        assert bad == [], f"trial {trial} ({phase}): partial archive {bad}"
        again = run_fake(index, args)
        assert again.returncode == 0, f"trial {trial} ({phase}): {again.stderr}"
        assert json.loads(again.stdout)["archives"][0]["sha256"] == expected, trial
        assert partial_outputs(output) == [], f"trial {trial}: the next build left {output}"
        after_rebuild = check_cache(cache)
        corrupt += after_rebuild.corrupt
    print(f"RELIABILITY crash-fake trials={TRIALS} outcomes={outcomes} corrupt={len(corrupt)}")
    assert corrupt == []
    killed_phases = {o.removeprefix("killed in ") for o in outcomes if o.startswith("killed")}
    assert killed_phases == set(PHASES), outcomes
