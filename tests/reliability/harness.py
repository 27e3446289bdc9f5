"""Shared pieces of the reliability tests: a fake index on disk, a project, a build run as a
real subprocess (tests/reliability/fake_build.py), and checks of the cache and output directory
that count what they find."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import random
import subprocess
import sys
import zipfile
from pathlib import Path

from nativebuild.cache.local import LocalCache
from tests.fakes import FakeIndex, IndexFile
from tests.wheelfactory import make_tree, make_wheel

DRIVER = Path(__file__).with_name("fake_build.py")
REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = "markupsafe==2.1.5\nsix==1.16.0\nrequests==2.31.0\nbigdata==1.0\n"


class Warnings:
    """A Reporter that keeps the warnings (each one is a corrupt entry the cache evicted)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def step(self, message: str) -> None: ...
    def detail(self, message: str) -> None: ...
    def command(self, argv: list[str]) -> None: ...
    def output(self, line: str) -> None: ...

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def make_index(root: Path) -> Path:
    """A fake index (wheels, an sdist, one 3 MB incompressible wheel so that copies, hashes and
    deflate take long enough to be interrupted), pickled for the driver; returns the pickle."""
    index = FakeIndex(root / "index")
    index.add_wheel("six", "1.16.0")
    index.add_wheel("requests", "2.31.0", deps=("idna>=2",))
    index.add_wheel("idna", "3.6")
    index.add_sdist("markupsafe", "2.1.5")
    payload = random.Random(7).randbytes(3 * 1024 * 1024)  # noqa: S311 - test data
    path = make_wheel(
        index.root, "bigdata", "1.0", {"bigdata/__init__.py": "", "bigdata/blob.bin": payload}
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    index.files["bigdata"] = IndexFile("bigdata", "1.0", path, digest, ())
    pickled = root / "index.pkl"
    pickled.write_bytes(pickle.dumps(index))
    return pickled


def make_project(root: Path, requirements: str = REQUIREMENTS) -> Path:
    make_tree(
        root,
        {"requirements.txt": requirements, "app/handler.py": "def handler(e, c):\n    return 1\n"},
    )
    return root


def build_args(project: Path, cache: Path, output: Path, *extra: str) -> list[str]:
    return [
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        "--runtime", "python3.9", "--arch", "x86_64", "--build-image", "example/build:{arch}",
        "--glibc", "2.31", "--cache-dir", str(cache), "-o", str(output),
        "--project", str(project), "--json", *extra,
    ]  # fmt: skip


def driver_env(**extra: str) -> dict[str, str]:
    # No host pip configuration: what the build sees is what the test sets.
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {**keep, "PIP_CONFIG_FILE": os.devnull, "SOURCE_DATE_EPOCH": "", **extra}


def driver_command(index: Path, args: list[str]) -> list[str]:
    return [sys.executable, str(DRIVER), str(index), *args]


def run_fake(index: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        driver_command(index, args), capture_output=True, text=True, env=driver_env(**env),
        cwd=REPO, check=False, timeout=120,
    )  # fmt: skip


@dataclasses.dataclass
class CacheCheck:
    entries: int
    corrupt: list[str]


def check_cache(root: Path) -> CacheCheck:
    """Read every entry through LocalCache's getters, which re-hash; count what they evict."""
    reporter = Warnings()
    cache = LocalCache(root, reporter=reporter)
    data = root / "v1"
    entries = 0
    if not data.exists():
        return CacheCheck(0, [])
    for path in sorted(data.glob("files/*/*/*")):
        entries += 1
        if cache.get_file(path.parent.name, path.name) is None:
            reporter.warnings.append(f"{path} vanished")
    for path in sorted(data.glob("built/*/*")):
        entries += 1
        if cache.get_built(path.name) is None:
            reporter.warnings.append(f"{path} vanished")
    for path in sorted(data.glob("json/*/*/*.json")):
        entries += 1
        if cache.get_json(path.parent.parent.name, path.stem) is None:
            reporter.warnings.append(f"{path} vanished")
    return CacheCheck(entries, reporter.warnings)


def partial_outputs(output: Path) -> list[str]:
    """Temp files left in the output directory and zips that are not complete and valid."""
    bad: list[str] = []
    if not output.exists():
        return bad
    for path in sorted(output.iterdir()):
        if path.name.endswith(".tmp"):
            bad.append(f"{path.name}: temp file left behind")
        elif path.suffix == ".zip":
            try:
                with zipfile.ZipFile(path) as zf:
                    if zf.testzip() is not None:
                        bad.append(f"{path.name}: bad CRC")
            except (zipfile.BadZipFile, OSError) as err:
                bad.append(f"{path.name}: {err}")
    return bad
