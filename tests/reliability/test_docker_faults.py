"""Faults on the real Docker engine with the stand-in images: SIGKILL mid-build, Ctrl-C with a
container running, a build script that attacks the host, an image that cannot be pulled."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.harness import check_cache, partial_outputs

pytestmark = pytest.mark.docker

BUILD_IMAGE = "nativebuild-test/build-python3.9:{arch}"
REQUIREMENTS = "markupsafe==2.1.5\n--no-binary markupsafe\nsix==1.16.0\n"
# Where each kill aims: a progress line, then a random delay.
KILL_AFTER = ("==> Downloading", "    + /var/lang", "compiled markupsafe", "==> Compiling")
SEED = 11


def command(project: Path, cache: Path, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "nativebuild", "build", "-r", str(project / "requirements.txt"),
        "--src", str(project / "app"), "--runtime", "python3.9", "--arch", "x86_64",
        "--build-image", BUILD_IMAGE, "--glibc", "2.31", "--cache-dir", str(cache),
        "-o", str(output), "--json", *extra,
    ]  # fmt: skip


def make_project(root: Path, requirements: str = REQUIREMENTS) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(requirements)
    (root / "app" / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    return root


def build(project: Path, cache: Path, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(project, cache, output), capture_output=True, text=True, check=False, timeout=300
    )


def labelled() -> set[str]:
    listed = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=org.nativebuild", "--format", "{{.Names}}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(listed.stdout.split())


def ours(names: set[str], root: Path) -> set[str]:
    """The containers among ``names`` that mount something under ``root`` (this test's): the
    engine is shared, so others' containers are neither counted nor removed."""
    mine = set()
    for name in names:
        inspected = subprocess.run(
            ["docker", "inspect", "-f", "{{range .Mounts}}{{.Source}}\n{{end}}", name],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if any(line.startswith(str(root)) for line in inspected.stdout.splitlines()):
            mine.add(name)
    return mine


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def wait_for_line(process: subprocess.Popen[str], prefix: str) -> bool:
    assert process.stderr is not None
    return any(line.startswith(prefix) for line in process.stderr)


def test_sigkill_on_the_real_engine(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    baseline = build(project, tmp_path / "baseline-cache", tmp_path / "baseline-out")
    assert baseline.returncode == 0, baseline.stderr
    expected = json.loads(baseline.stdout)["archives"][0]["sha256"]
    rng = random.Random(SEED)  # noqa: S311 - reproducible trials
    orphans: set[str] = set()
    reaped = 0
    corrupt: list[str] = []
    try:
        for trial, marker in enumerate(KILL_AFTER):
            cache, output = tmp_path / f"cache-{trial}", tmp_path / f"out-{trial}"
            before = labelled()
            process = start(command(project, cache, output))
            wait_for_line(process, marker)
            time.sleep(rng.uniform(0, 1.0))
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            # SIGKILL runs no cleanup: a container started by the killed process keeps running
            # until the next nativebuild on this host removes it.
            left = ours(labelled() - before, tmp_path)
            orphans |= left
            corrupt += check_cache(cache).corrupt
            bad = [b for b in partial_outputs(output) if not b.endswith("temp file left behind")]
            assert bad == [], f"trial {trial}: {bad}"
            again = build(project, cache, output)
            assert again.returncode == 0, f"trial {trial}: {again.stderr}"
            assert json.loads(again.stdout)["archives"][0]["sha256"] == expected
            assert partial_outputs(output) == []
            still = left & labelled()
            assert still == set(), f"trial {trial}: the next build left {still}"
            reaped += len(left)
            corrupt += check_cache(cache).corrupt
    finally:
        for name in orphans:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    print(
        f"RELIABILITY crash-docker trials={len(KILL_AFTER)} corrupt={len(corrupt)} "
        f"sigkill-leftover-containers={len(orphans)} removed-by-next-build={reaped}"
    )
    assert corrupt == []


def test_ctrl_c_with_a_container_running_removes_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    before = labelled()
    process = start(command(project, tmp_path / "cache", tmp_path / "out"))
    assert wait_for_line(process, "    + /var/lang"), "the compile never started"
    deadline = time.monotonic() + 30
    while not (mine := ours(labelled() - before, tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mine, "no container appeared"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10  # only ever shrinks: ours, if orphaned, would stay
    while (left := labelled() & mine) and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"RELIABILITY sigint containers-seen={len(mine)} orphaned={len(left)}")
    assert left == set()
    assert partial_outputs(tmp_path / "out") == []
    assert check_cache(tmp_path / "cache").corrupt == []


EVIL_SETUP = """\
import os, pathlib
from setuptools import setup

here = pathlib.Path(__file__).resolve().parent
targets = ["/tmp/host-marker", "/nativebuild/driver.py", "/nativebuild/in/jobs.json",
           "/nativebuild/in/pwned", "/nativebuild/pip-cache/pwned", "/var/run/docker.sock"]
for root in ("/nativebuild", "/nativebuild/sdists", "/nativebuild/in"):
    if os.path.isdir(root):
        targets += [os.path.join(root, n) for n in os.listdir(root)]
for target in targets:
    try:
        if os.path.isdir(target):
            target = os.path.join(target, "pwned")
        with open(target, "a") as f:
            f.write("pwned by evil")
    except OSError:
        pass
setup(name="evil", version="1.0", py_modules=[])
"""


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "pip" not in p.relative_to(root).parts[:1]
    }


def test_a_build_script_cannot_touch_the_host(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", "./libs/evil\nsix==1.16.0\n")
    (project / "libs" / "evil").mkdir(parents=True)
    (project / "libs" / "evil" / "setup.py").write_text(EVIL_SETUP)
    (project / "libs" / "evil" / "pyproject.toml").write_text(
        '[project]\nname = "evil"\nversion = "1.0"\n\n[build-system]\n'
        'requires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    marker = Path("/tmp/host-marker")
    marker.unlink(missing_ok=True)
    cache = tmp_path / "cache"
    driver = Path(__file__).resolve().parents[2] / "nativebuild" / "resources"
    driver_before = tree_digest(driver) if driver.is_dir() else {}
    project_before = tree_digest(project)
    done = subprocess.run(
        command(project, cache, tmp_path / "out"),
        capture_output=True, text=True, check=False, timeout=300, cwd=project,
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr  # the script ran to the end, in its container
    assert "evil" in {w["name"] for w in json.loads(done.stdout)["wheels"]}
    assert not marker.exists(), "the build script wrote to the host's /tmp"
    assert tree_digest(project) == project_before, "the build script changed the project"
    assert (tree_digest(driver) if driver.is_dir() else {}) == driver_before
    files = list((cache / "v1" / "files").rglob("*")) if (cache / "v1").exists() else []
    assert not any("pwned" in p.name for p in files)
    assert check_cache(cache).corrupt == [], "a cached sdist was changed"
    assert not any(b"pwned by evil" in p.read_bytes() for p in files if p.is_file())
    # No host directory but the output is writable (no shared pip cache to plant files in).
    pip_writes = list((cache / "pip").rglob("pwned")) if (cache / "pip").exists() else []
    assert pip_writes == []
    print(f"RELIABILITY hostile-sdist host-writes=0 pip-cache-writes={len(pip_writes)}")


def test_image_pull_failure_is_a_clear_error_and_a_retry_succeeds(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")  # an sdist: the build image is needed
    args = command(project, tmp_path / "cache", tmp_path / "out")
    args[args.index(BUILD_IMAGE)] = "localhost:1/nativebuild-no-such/build:{arch}"
    failed = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
    assert failed.returncode in (7, 8), failed.stderr
    assert "Traceback" not in failed.stderr
    assert "localhost:1/nativebuild-no-such/build:x86_64" in failed.stderr
    again = build(project, tmp_path / "cache", tmp_path / "out")
    assert again.returncode == 0, again.stderr


SECOND_ENGINE = "unix:///run/nb2.sock"  # tests/images/second-engine: a builder we may restart
SECOND_ENGINE_SCRIPT = Path(__file__).resolve().parents[1] / "images" / "second-engine"


def _wait_gone(pid_file: Path, timeout: float = 120) -> None:
    """Until the stopped engine has exited (a new one refuses to start beside its pid file)."""
    deadline = time.monotonic() + timeout
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)


def test_engine_restarted_mid_compile_is_a_clear_error_and_a_retry_succeeds(
    tmp_path: Path,
) -> None:
    """The arm64 builder's engine stops while it compiles: a clear error, no traceback, nothing
    corrupt or half-written; once the engine is back, the same command succeeds."""
    project = make_project(tmp_path / "project")
    (project / "pyproject.toml").write_text(
        f'[tool.nativebuild.builders]\narm64 = {{ host = "{SECOND_ENGINE}", network = "host" }}\n'
    )
    cache, output = tmp_path / "cache", tmp_path / "out"
    args = [*command(project, cache, output), "--project", str(project)]
    args[args.index("x86_64")] = "arm64"
    try:
        process = start(args)
        assert wait_for_line(process, "==> Compiling"), "the build never reached the compile"
        time.sleep(2)
        pid = int(Path("/run/docker2.pid").read_text().strip())
        os.kill(pid, signal.SIGTERM)  # dockerd stops its containers and exits
        _, err = process.communicate(timeout=300)
        assert process.returncode in (7, 12), err
        assert "error:" in err
        assert "Traceback" not in err
        assert check_cache(cache).corrupt == []
        assert [b for b in partial_outputs(output) if "temp file" not in b] == []
    finally:
        _wait_gone(pid_file=Path("/run/docker2.pid"))
        subprocess.run([str(SECOND_ENGINE_SCRIPT)], capture_output=True, check=True, timeout=300)
    again = subprocess.run(args, capture_output=True, text=True, check=False, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert partial_outputs(output) == []
    assert check_cache(cache).corrupt == []
    print("RELIABILITY engine-restart trials=1 corrupt=0 retry=ok")
