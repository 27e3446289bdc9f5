"""Several processes share one cache: entries stay write-once, complete and verified.

Workers are separate interpreters (``python -c``), so locks and renames are exercised across
processes exactly as concurrent ``nativebuild`` runs would.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import nativebuild
from nativebuild.cache.keys import build_key
from nativebuild.cache.local import LocalCache
from tests.fakes import RecordingReporter

REPO = Path(nativebuild.__file__).resolve().parents[1]
WORKERS = 4
ROUNDS = 25

RACE_WORKER = """
import hashlib, json, sys, time
from pathlib import Path
from nativebuild.cache.local import LocalCache
from nativebuild.cache.keys import build_key
from nativebuild.reporting import NullReporter

root, worker, rounds, go = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
cache = LocalCache(root, reporter=NullReporter())
work = root.parent / f"work-{worker}"
work.mkdir()
wheel = work / "pkg-1.0-py3-none-any.whl"
while not go.exists():
    time.sleep(0.002)
for r in range(rounds):
    shared = build_key({"round": str(r)})
    wheel.write_bytes(f"{worker}-{r};".encode() * 40000)
    got = cache.put_built(shared, wheel, {"worker": worker})
    own = cache.put_built(build_key({"round": str(r), "worker": str(worker)}), wheel, {})
    locked_key = build_key({"round": str(r), "locked": "yes"})
    built = False
    with cache.lock(locked_key):  # the pipeline's check -> build -> put
        if cache.get_built(locked_key) is None:
            time.sleep(0.005)
            cache.put_built(locked_key, wheel, {"worker": worker})
            built = True
    sdist = work / "pkg-1.0.tar.gz"
    sdist.write_bytes(b"shared sdist;" * 40000 + str(r).encode())
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    cache.put_file(sdist, sha256=digest, filename=sdist.name, move=worker % 2 == 0)
    cache.put_json("resolution", shared, {"worker": worker})
    print(json.dumps({
        "round": r, "worker": worker, "shared_sha": got.wheel.sha256,
        "shared_worker": got.manifest["worker"], "own_sha": own.wheel.sha256,
        "locked_built": built, "json": cache.get_json("resolution", shared),
    }), flush=True)
"""

KILLED_WORKER = """
import hashlib, os, random, sys, time
from pathlib import Path
import nativebuild.cache.local as cache_module
from nativebuild.cache.local import LocalCache
from nativebuild.cache.keys import build_key
from nativebuild.reporting import NullReporter

root, trial = Path(sys.argv[1]), sys.argv[2]
# Slow the writes down so that the kill lands inside a put most of the time.
cache_module._CHUNK = 16 * 1024
dump = cache_module._dump_json
def slow_dump(document):
    time.sleep(random.uniform(0, 0.01))
    return dump(document)
cache_module._dump_json = slow_dump

cache = LocalCache(root, reporter=NullReporter())
cache.ensure()
wheel = root.parent / f"work-{trial}" / "pkg-1.0-py3-none-any.whl"
wheel.parent.mkdir()
base = os.urandom(2 * 1024 * 1024)
print("ready", flush=True)
i = 0
while True:
    key = build_key({"trial": trial, "i": str(i)})
    wheel.write_bytes(base + key.encode())
    cache.put_built(key, wheel, {"i": i})
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    cache.put_file(wheel, sha256=digest, filename=wheel.name)
    cache.put_json("resolution", key, {"i": i, "pad": "x" * 200000})
    i += 1
"""


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", script, *map(str, args)]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def verify_everything(root: Path) -> dict[str, int]:
    """Read every visible entry through a fresh cache; all must be complete and valid."""
    reporter = RecordingReporter()
    cache = LocalCache(root, reporter=reporter)
    counts = {"built": 0, "files": 0, "json": 0}
    for entry_dir in sorted((root / "v1/built").glob("*/*")):
        entry = cache.get_built(entry_dir.name)
        assert entry is not None, f"partial entry visible: {entry_dir}"
        assert sorted(p.name for p in entry_dir.iterdir()) == sorted(
            ["manifest.json", entry.wheel.path.name]
        )
        counts["built"] += 1
    for path in sorted((root / "v1/files").glob("*/*/*")):
        assert cache.get_file(path.parent.name, path.name) is not None, path
        counts["files"] += 1
    for path in sorted((root / "v1/json").glob("*/*/*.json")):
        assert cache.get_json(path.parent.parent.name, path.stem) is not None, path
        counts["json"] += 1
    assert reporter.warnings == []
    return counts


def test_processes_racing_on_the_same_keys_agree_on_one_entry(tmp_path: Path) -> None:
    root, go = tmp_path / "cache", tmp_path / "go"
    procs = [spawn(RACE_WORKER, root, w, ROUNDS, go) for w in range(WORKERS)]
    go.touch()
    results: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        for line in out.splitlines():
            record = json.loads(line)
            results[record["round"]].append(record)

    assert sorted(results) == list(range(ROUNDS))
    cache = LocalCache(root, reporter=RecordingReporter())
    for r, records in results.items():
        assert len(records) == WORKERS
        # Write-once: every worker got back the one entry that won, with the winner's bytes.
        entry = cache.get_built(build_key({"round": str(r)}))
        assert entry is not None
        assert {rec["shared_sha"] for rec in records} == {entry.wheel.sha256}
        winner = entry.manifest["worker"]
        assert {rec["shared_worker"] for rec in records} == {winner}
        assert entry.wheel.path.read_bytes() == f"{winner}-{r};".encode() * 40000
        assert [rec["json"] for rec in records] == [records[0]["json"]] * WORKERS
        # Holding lock() around check -> build -> put: exactly one process did the work.
        assert sum(rec["locked_built"] for rec in records) == 1
        for rec in records:
            own = cache.get_built(build_key({"round": str(r), "worker": str(rec["worker"])}))
            assert own is not None
            assert own.wheel.sha256 == rec["own_sha"]

    counts = verify_everything(root)
    assert counts == {"built": ROUNDS * (WORKERS + 2), "files": ROUNDS, "json": ROUNDS}
    assert list((root / "tmp").iterdir()) == []


def test_sigkill_mid_put_never_leaves_a_visible_partial_entry(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    rng = random.Random(20240601)  # noqa: S311 - timing jitter, not security
    leftovers_seen = 0
    for trial in range(20):
        proc = spawn(KILLED_WORKER, root, trial)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate()[1]
        time.sleep(rng.uniform(0.02, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        leftovers_seen += bool(list((root / "tmp").iterdir()))
        verify_everything(root)

    # The kills did land mid-write (half-written temp files exist), yet nothing leaked.
    assert leftovers_seen > 0
    counts = verify_everything(root)
    assert counts["built"] > 0
    # Locks held by killed processes died with them: the same keys can still be written.
    cache = LocalCache(root, reporter=RecordingReporter())
    key = build_key({"trial": "0", "i": "0"})
    (tmp_path / "again.whl").write_bytes(b"again")
    assert cache.put_built(key, tmp_path / "again.whl", {}).key == key
