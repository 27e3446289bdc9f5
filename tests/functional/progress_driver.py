"""Run a real ``nativebuild build`` in this process, with fakes at the system seams and compiles
that take a while: what the output tests watch, on a terminal and off one.

Usage: ``python progress_driver.py INDEX_PICKLE nativebuild-args...``. The build reads a pickled
:class:`tests.fakes.FakeIndex` (see :func:`make_index`); each compile container prints build-log
lines the way nativebuild's own driver does (``=== building NAME VERSION``, ``[NAME] line``,
``=== built NAME VERSION``): ``NB_COMPILE_LINES`` lines per package (default 8) spread over
``NB_COMPILE_SECONDS`` (default 2) before its wheels appear. ``NB_HEARTBEAT_SECONDS``
shortens the heartbeat interval of the line-by-line output, so a test sees heartbeats without
waiting 30 s; ``NB_FAIL_COMPILE`` names packages whose compile fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nativebuild.engine.runner import ContainerResult, ContainerSpec
from nativebuild.reporting import Reporter
from tests.fakes import FakeIndex, FakeRunner, FakeUv, IndexFile, NoIndexPages
from tests.wheelfactory import make_wheel

REQUIREMENTS = "markupsafe==2.1.5\nujson==3.0.0\nsix==1.16.0\nrequests==2.31.0\nbigdata==1.0\n"


# Resolved on the host (every package has a wheel), the sdists compiled after planning: the
# targets compile at the same time (-j 2).
HOST_RESOLVED = "psutil==5.7.0\n--no-binary psutil\nnetifaces==0.10.9\n--no-binary netifaces\n"


def make_world(root: Path, requirements: str = REQUIREMENTS) -> tuple[Path, Path]:
    """The pickled index and a project (requirements and source) under ``root``."""
    from tests.wheelfactory import make_tree

    project = root / "project"
    make_tree(
        project,
        {"requirements.txt": requirements, "app/handler.py": "def handler(e, c):\n    return 1\n"},
    )
    return make_index(root), project


def build_command(index: Path, project: Path, root: Path, *extra: str) -> list[str]:
    """Both architectures (arm64 under emulation), one after the other unless ``extra`` says
    otherwise, with a custom runtime image (probed) and sdists resolved in the image."""
    return [
        sys.executable, __file__, str(index),
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        "--runtime", "python3.9", "--arch", "x86_64", "--arch", "arm64", "-j", "1",
        "--build-image", "example/build:{arch}", "--runtime-image", "example/runtime:{arch}",
        "--glibc", "2.31", "--cache-dir", str(root / "cache"), "-o", str(root / "dist"),
        "--project", str(project), *extra,
    ]  # fmt: skip


def driver_env(**extra: str) -> dict[str, str]:
    """No host pip configuration, no colour settings from the caller's terminal."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {**keep, "PIP_CONFIG_FILE": os.devnull, "SOURCE_DATE_EPOCH": "", **extra}


_TIMES = re.compile(r"\b\d+(?:\.\d+)?s\b")


def normalise(text: str, root: Path) -> str:
    """``text`` with ``root`` as ``<root>``, durations as ``<t>``, and each run of download
    lines, or of container output lines, sorted (four downloads run at once, and so do the
    compiles of one container: they finish, and print, in any order)."""
    lines = _TIMES.sub("<t>", text.replace(str(root), "<root>")).splitlines()
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if line.startswith(("    downloaded ", "    | ")):
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        out.append(line)
    return "\n".join(out[:-1]) + "\n"


def make_index(root: Path) -> Path:
    """Wheels, two sdists (compiled, so resolved in the image), and a 3 MB wheel to download;
    pickled for the driver. Returns the pickle."""
    index = FakeIndex(root / "index")
    index.add_wheel("six", "1.16.0")
    index.add_wheel("requests", "2.31.0", deps=("idna>=2",))
    index.add_wheel("idna", "3.6")
    index.add_sdist("markupsafe", "2.1.5")
    index.add_sdist("ujson", "3.0.0")
    index.add_both("psutil", "5.7.0")
    index.add_both("netifaces", "0.10.9")
    payload = random.Random(24).randbytes(3 * 1024 * 1024)  # noqa: S311 - test data
    path = make_wheel(
        index.root, "bigdata", "1.0", {"bigdata/__init__.py": "", "bigdata/blob.bin": payload}
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    index.files["bigdata"] = IndexFile("bigdata", "1.0", path, digest, ())
    pickled = root / "index.pkl"
    pickled.write_bytes(pickle.dumps(index))
    return pickled


class SlowCompileRunner(FakeRunner):
    """FakeRunner whose compiles (in a compile container, or in the resolution container that
    goes on to compile) take a while and stream a build log, one thread per package as the real
    driver does. Like DockerRunner, it passes every line to the reporter, which decides."""

    def __init__(self, index: FakeIndex, *, seconds: float, lines: int) -> None:
        super().__init__(index)
        self.seconds = seconds
        self.lines = lines
        self._current = threading.local()  # targets compile on threads of their own

    def run(
        self, spec: ContainerSpec, *, reporter: Reporter, verbose: bool = False
    ) -> ContainerResult:
        reporter.command(list(spec.command))  # as DockerRunner does
        # Containers run inside others' runs (the runtime probe while the resolution container
        # waits for its plan): the compile streams to its own container's reporter.
        outer = getattr(self._current, "reporter", None)
        self._current.reporter = reporter
        try:
            return super().run(spec, reporter=reporter, verbose=verbose)
        finally:
            self._current.reporter = outer

    def _compile(
        self,
        mounts: dict[str, Path],
        machine: str,
        *,
        jobs_file: Path | None = None,
        results: list[dict[str, object]] | None = None,
    ) -> ContainerResult:
        jobs = json.loads((jobs_file or mounts["/nativebuild/in"] / "jobs.json").read_text())
        reporter: Reporter = self._current.reporter
        lock = threading.Lock()

        def say(line: str) -> None:
            with lock:
                reporter.output(line)

        def build_log(job: dict[str, str]) -> None:
            name = job["name"]
            say(f"=== building {name} {job['version']}")
            for step in range(self.lines):
                time.sleep(self.seconds / self.lines)
                say(f"[{name}] gcc -c src/{name}_{step}.c -o build/{name}_{step}.o")
            failed = name in self.fail_compile
            if failed:
                say(f"[{name}] src/{name}.c:1:10: fatal error: Python.h: No such file or directory")
            say(f"=== {'failed' if failed else 'built'} {name} {job['version']}")

        threads = [threading.Thread(target=build_log, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return super()._compile(mounts, machine, jobs_file=jobs_file, results=results)


def main() -> None:
    index = pickle.loads(Path(sys.argv[1]).read_bytes())  # noqa: S301 - the test's own file
    runner = SlowCompileRunner(
        index,
        seconds=float(os.environ.get("NB_COMPILE_SECONDS", "2")),
        lines=int(os.environ.get("NB_COMPILE_LINES", "8")),
    )
    runner.fail_compile = set(filter(None, os.environ.get("NB_FAIL_COMPILE", "").split(",")))
    uv = FakeUv(index)
    from nativebuild import cli
    from nativebuild.engine import docker as container
    from nativebuild.pipeline import context, resolve_then_compile

    container.DockerRunner.from_env = lambda env, **_: runner  # type: ignore[method-assign,assignment]
    context.HostUv = lambda: uv  # type: ignore[attr-defined,assignment,misc]
    resolve_then_compile.SimpleIndex = NoIndexPages  # type: ignore[misc,assignment]
    if "NB_HEARTBEAT_SECONDS" in os.environ:
        from nativebuild.cli import progress

        progress.HEARTBEAT_SECONDS = float(os.environ["NB_HEARTBEAT_SECONDS"])
    sys.argv = ["nativebuild", *sys.argv[2:]]
    cli.main()


if __name__ == "__main__":
    main()
