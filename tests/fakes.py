"""Fakes at the system seams: a package index of real files on disk, and a container runner
that does what pip would do in the build image, writing real reports and real wheels."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nativebuild.container import ContainerResult, ContainerSpec
from nativebuild.reporting import Reporter
from tests.wheelfactory import make_wheel

TARGET_ENV = {"python_version": "3.9", "platform_machine": "x86_64", "sys_platform": "linux"}


@dataclasses.dataclass(frozen=True)
class IndexFile:
    name: str
    version: str
    path: Path
    sha256: str
    dependencies: tuple[str, ...]

    @property
    def url(self) -> str:
        return self.path.as_uri()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeIndex:
    """Real wheel and sdist files in a directory, served through file:// URLs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, IndexFile] = {}

    def add_wheel(
        self, name: str, version: str, *, deps: tuple[str, ...] = (), tag: str = "py3-none-any"
    ) -> IndexFile:
        module = canonicalize_name(name).replace("-", "_")
        path = make_wheel(
            self.root, name, version, {f"{module}/__init__.py": f"VERSION = {version!r}\n"}, tag=tag
        )
        entry = IndexFile(name, version, path, _sha256(path), deps)
        self.files[canonicalize_name(name)] = entry
        return entry

    def add_sdist(self, name: str, version: str, *, deps: tuple[str, ...] = ()) -> IndexFile:
        path = self.root / f"{canonicalize_name(name).replace('-', '_')}-{version}.tar.gz"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            data = b"from setuptools import setup\nsetup()\n"
            info = tarfile.TarInfo(f"{name}-{version}/setup.py")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        path.write_bytes(buffer.getvalue())
        entry = IndexFile(name, version, path, _sha256(path), deps)
        self.files[canonicalize_name(name)] = entry
        return entry


class FakeRunner:
    """Stands in for DockerRunner: resolves against a FakeIndex and 'compiles' sdists into
    real cp39 wheels, writing into the output mount exactly as the real containers do."""

    def __init__(self, index: FakeIndex, *, image_id: str = "sha256:" + "1" * 64) -> None:
        self.index = index
        self.image = image_id
        self.containers_started = 0
        self.specs: list[ContainerSpec] = []
        self.fail_compile: set[str] = set()
        self.engine_down = False

    def check_engine(self) -> None:
        pass

    def image_id(self, image: str, *, platform: str | None) -> str:
        from nativebuild.errors import DockerUnavailableError

        if self.engine_down:
            msg = "engine down (fake)"
            raise DockerUnavailableError(msg)
        return self.image

    def run(
        self, spec: ContainerSpec, *, reporter: Reporter, verbose: bool = False
    ) -> ContainerResult:
        if self.engine_down:
            from nativebuild.errors import DockerUnavailableError

            msg = "engine down (fake)"
            raise DockerUnavailableError(msg)
        self.containers_started += 1
        self.specs.append(spec)
        mounts = {m.target: m.source for m in spec.mounts}
        if "--dry-run" in spec.command:
            return self._resolve(mounts)
        return self._compile(mounts)

    def _resolve(self, mounts: dict[str, Path]) -> ContainerResult:
        lines = (mounts["/nativebuild/in"] / "requirements.txt").read_text().splitlines()
        wanted = [
            Requirement(line.split(" --hash")[0])
            for line in lines
            if line and not line.startswith("-")
        ]
        chosen: dict[str, IndexFile] = {}
        while wanted:
            req = wanted.pop()
            if req.marker is not None and not Marker(str(req.marker)).evaluate(TARGET_ENV):
                continue
            name = canonicalize_name(req.name)
            entry = self.index.files.get(name)
            if entry is None or entry.version not in req.specifier:
                tail = (f"ERROR: Could not find a version that satisfies the requirement {req}",
                        f"ERROR: No matching distribution found for {req}")  # fmt: skip
                return ContainerResult(exit_code=1, log_tail=tail, duration_s=0.1)
            if name not in chosen:
                chosen[name] = entry
                wanted.extend(Requirement(d) for d in entry.dependencies)
        report = {
            "version": "1",
            "install": [
                {
                    "metadata": {"name": e.name, "version": e.version},
                    "download_info": {
                        "url": e.url,
                        "archive_info": {"hashes": {"sha256": e.sha256}},
                    },
                }
                for e in chosen.values()
            ],
        }
        (mounts["/nativebuild/out"] / "report.json").write_text(json.dumps(report))
        return ContainerResult(exit_code=0, log_tail=(), duration_s=0.1)

    def _compile(self, mounts: dict[str, Path]) -> ContainerResult:
        jobs = json.loads((mounts["/nativebuild/in"] / "jobs.json").read_text())
        out_root = mounts["/nativebuild/out"]
        results = []
        for job in jobs:
            assert job["sdist"] in mounts, "the sdist must be mounted into the container"
            if job["name"] in self.fail_compile:
                tail = ["src/_speedups.c:1:10: fatal error: Python.h: No such file or directory",
                        "error: command 'gcc' failed with exit status 1"]  # fmt: skip
                results.append(
                    {
                        "name": job["name"],
                        "ok": False,
                        "wheel": None,
                        "seconds": 0.2,
                        "log_tail": tail,
                    }
                )
                continue
            out = out_root / job["name"]
            out.mkdir(parents=True)
            module = job["name"].replace("-", "_")
            wheel = make_wheel(
                out, job["name"], job["version"],
                {f"{module}/__init__.py": "COMPILED = True\n", f"{module}/_speedups.so": b"\x7fELF fake"},
                tag="cp39-cp39-linux_x86_64",
            )  # fmt: skip
            results.append(
                {
                    "name": job["name"],
                    "ok": True,
                    "wheel": wheel.name,
                    "seconds": 0.2,
                    "log_tail": [],
                }
            )
        (out_root / "results.json").write_text(json.dumps(results))
        ok = all(r["ok"] for r in results)
        return ContainerResult(exit_code=0 if ok else 1, log_tail=(), duration_s=0.3)
