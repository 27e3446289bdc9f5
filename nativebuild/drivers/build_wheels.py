"""Runs INSIDE the build container, with the target's Python (3.9 or newer): no nativebuild
imports, standard library only.

For each job it unpacks an sdist at a fixed path (so compiled objects never embed a random
temporary directory) and builds it with ``pip wheel --no-deps``, several jobs at once (one per
CPU). It writes one result per job to results.json and keeps going after a failure, so that
what did build can be cached.

``--resolve-first PLAN RESULTS``: one container resolves, then builds. It runs the resolution
command of PLAN (pip's dry run, which writes its report), says RESOLVED_MARKER, and waits for
the host to read the report, fetch and verify the sdists that must be compiled, and put their
jobs in PLAN's ``jobs`` file (then ``ready``); pip's cache, with the build dependencies the
resolution already fetched, serves the builds. PLAN's ``first`` jobs, the sdists the host knew
before resolving, are built before the resolution, which finds their wheels (``--find-links``)
instead of preparing their metadata.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

BUILD_ROOT = "/tmp/nativebuild-build"
RESOLVED_MARKER = "@@nativebuild:resolved@@"
POLL_SECONDS = 0.05
TAIL_LINES = 60
_PRINT_LOCK = threading.Lock()


def say(line: str) -> None:
    with _PRINT_LOCK:
        print(line, flush=True)


def _inside(path: str, root: str) -> bool:
    target = os.path.realpath(os.path.join(root, path))
    return target == root or target.startswith(root + os.sep)


def _safe_members(names: list[str], root: str) -> None:
    for name in names:
        if not _inside(name, root):
            raise ValueError("unsafe path in sdist: %r" % name)


def _safe_link(member: tarfile.TarInfo, root: str) -> None:
    """A link must point inside too; the refusal names the link, not only where it points."""
    if member.issym():
        target = os.path.join(os.path.dirname(member.name), member.linkname)
    else:  # a hard link names its target from the archive root
        target = member.linkname
    if not _inside(target, root):
        raise ValueError("unsafe link in sdist: %r points to %r" % (member.name, member.linkname))


def unpack(sdist: str, dest: str) -> str:
    os.makedirs(dest)
    root = os.path.realpath(dest)
    if sdist.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            _safe_members(archive.namelist(), root)
            archive.extractall(dest)
    else:
        with tarfile.open(sdist) as archive:
            members = archive.getmembers()
            _safe_members([m.name for m in members], root)
            for member in members:
                if member.issym() or member.islnk():
                    _safe_link(member, root)
                if member.isdev():
                    raise ValueError("device file in sdist: %r" % member.name)
            if hasattr(tarfile, "data_filter"):
                # Python 3.12+ and patched 3.9-3.11: also refuses writes through a symlink the
                # archive itself made (``link -> .`` then ``link/../x``), which names alone miss.
                archive.extractall(dest, filter="data")
            else:
                # One member at a time, each checked again once the links before it exist:
                # realpath() then follows them as the write would.
                for member in members:
                    _safe_members([member.name], root)
                    archive.extract(member, dest)
    entries = os.listdir(dest)
    # An sdist holds one top-level directory, NAME-VERSION.
    if len(entries) == 1 and os.path.isdir(os.path.join(dest, entries[0])):
        return os.path.join(dest, entries[0])
    return dest


def build(job: dict[str, Any]) -> dict[str, object]:
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    result: dict[str, object] = {"name": job["name"], "ok": False, "wheel": None}
    try:
        source = unpack(job["sdist"], os.path.join(BUILD_ROOT, job["name"]))
        os.makedirs(job["out"], exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            job["out"],
            source,
        ]
        say("[%s] + %s" % (job["name"], " ".join(command)))
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=source
        )
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            tail.append(line)
            say("[%s] %s" % (job["name"], line))
        code = process.wait()
        wheels = [f for f in os.listdir(job["out"]) if f.endswith(".whl")]
        if code == 0 and len(wheels) == 1:
            if job.get("repair") is not None:
                result.update(repair(job, os.path.join(job["out"], wheels[0]), tail))
            result["ok"] = True
            result["wheel"] = wheels[0]
        elif code == 0:
            tail.append("expected one wheel, pip wrote: %r" % wheels)
    except Exception as err:  # noqa: BLE001 - reported to the host, never swallowed
        tail.append("%s: %s" % (type(err).__name__, err))
    result["seconds"] = round(time.monotonic() - started, 3)
    result["log_tail"] = list(tail)
    return result


def repair(job: dict[str, Any], wheel: str, tail: deque[str]) -> dict[str, object]:
    """Vendor the libraries the runtime lacks into ``wheel`` (``_repair.py``, mounted beside
    this file)."""
    import nativebuild_repair  # mounted only for builds that repair

    def report(line: str) -> None:
        tail.append(line)
        say("[%s] %s" % (job["name"], line))

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    done: dict[str, object] = nativebuild_repair.repair_wheel(
        wheel, job["repair"]["provided"], epoch, report
    )
    return done


def main(jobs_file: str, results_file: str, results: list[dict[str, object]] | None = None) -> int:
    """Build the jobs of ``jobs_file``; their results join ``results`` (those of the jobs
    built before, in the same file)."""
    with open(jobs_file) as handle:
        jobs = json.load(handle)
    results = [] if results is None else results
    lock = threading.Lock()

    def run(job: dict[str, Any]) -> None:
        say("=== building %s %s" % (job["name"], job["version"]))
        result = build(job)
        # Read by the host (nativebuild.sdists.logs): the package's row ends, its log too.
        say("=== %s %s %s" % ("built" if result["ok"] else "failed", job["name"], job["version"]))
        with lock:
            results.append(result)
            partial = results_file + ".part"
            with open(partial, "w") as handle:
                json.dump(results, handle)
            os.replace(partial, results_file)

    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, jobs))
    if not jobs:  # the host reads a result list whatever happened
        with open(results_file + ".part", "w") as handle:
            json.dump(results, handle)
        os.replace(results_file + ".part", results_file)
    return 0 if all(r["ok"] for r in results) else 1


def resolve_first(plan_file: str, results_file: str) -> int:
    with open(plan_file) as handle:
        plan = json.load(handle)
    results: list[dict[str, object]] = []
    if plan.get("first") and main(plan["first"], results_file, results) != 0:
        return 1  # a known sdist failed to build: the host reports it, nothing is resolved
    say("+ " + " ".join(plan["resolve"]))
    process = subprocess.Popen(plan["resolve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    for raw in process.stdout:
        say(raw.decode("utf-8", "replace").rstrip("\n"))
    code = process.wait()
    if code != 0:
        return code
    say(RESOLVED_MARKER)
    deadline = time.monotonic() + float(plan.get("wait_seconds", 3600))
    while not os.path.exists(plan["ready"]):
        if time.monotonic() > deadline:
            say("the host never said which sdists to build")
            return 3
        time.sleep(POLL_SECONDS)
    with open(plan["ready"]) as handle:
        if json.load(handle).get("abort"):
            return 0  # the host stopped: nothing to build, nothing to report
    return main(plan["jobs"], results_file, results)


if __name__ == "__main__":
    if sys.argv[1] == "--resolve-first":
        sys.exit(resolve_first(sys.argv[2], sys.argv[3]))
    sys.exit(main(sys.argv[1], sys.argv[2]))
