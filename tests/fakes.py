"""Fakes at the system seams: a package index of real files on disk, and a container runner
that does what pip would do in the build image, writing real reports and real wheels."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from nativebuild.abi.runtime_facts import PROBE_IN_CONTAINER
from nativebuild.abi.verify import DRIVER_IN_CONTAINER as VERIFY_IN_CONTAINER
from nativebuild.engine.runner import ContainerResult, ContainerSpec, ImageInfo
from nativebuild.index import simple_api
from nativebuild.index.containers import is_distribution
from nativebuild.index.uv import UvResult
from nativebuild.pipeline.resolve_then_compile import RESOLVED_MARKER
from nativebuild.reporting import NullReporter, Reporter
from nativebuild.sdists.build import DRIVER_IN_CONTAINER as COMPILE_IN_CONTAINER
from tests.elffixtures import elf_header
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


def _is_local(line: str) -> bool:
    return " @ file://" in line


def local_lines(lines: list[str], machine: str) -> list[tuple[str, str]]:
    """(name, file URL) of each ``name @ file://...`` line whose marker holds on ``machine``."""
    found = []
    for line in lines:
        if not _is_local(line):
            continue
        req = Requirement(line.split(" --hash")[0])
        environment = {**TARGET_ENV, "platform_machine": machine}
        if req.marker is None or Marker(str(req.marker)).evaluate(environment):
            found.append((canonicalize_name(req.name), str(req.url)))
    return found


def file_entry(path: Path) -> IndexFile:
    """A wheel or sdist file found in a folder, as the index entry of its name and version."""
    if path.name.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
    else:
        name, version = parse_sdist_filename(path.name)
    return IndexFile(str(name), str(version), path, _sha256(path), ())


def folder_entries(paths: list[Path]) -> dict[str, IndexFile]:
    return {canonicalize_name(entry.name): entry for entry in map(file_entry, sorted(paths))}


class NoIndexPages:
    """Stands in for index.simple_api.SimpleIndex where a test gives no index pages: a cold
    build then reads no sdist as known before resolving, and resolves as it would without."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def files(self, name: str) -> list[simple_api.IndexFile]:
        msg = f"no index pages in this test ({name})"
        raise OSError(msg)


class FakeIndex:
    """Real wheel and sdist files in a directory, served through file:// URLs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, IndexFile] = {}
        self.sdists: dict[str, IndexFile] = {}  # an sdist beside a wheel of the same version
        self.page_reads = 0  # SimpleIndex objects made by simple_index()

    def resolve(
        self,
        lines: list[str],
        *,
        links: Mapping[str, IndexFile] | None = None,
        use_index: bool = True,
        machine: str = "x86_64",
    ) -> tuple[dict[str, IndexFile], str | None]:
        """What pip or uv would pick for ``lines`` on python3.9 (x86_64 unless said); an error
        text instead when a requirement cannot be met. ``links`` are find-links files, which
        win over the index; ``use_index=False`` is --no-index."""
        environment = {**TARGET_ENV, "platform_machine": machine}
        candidates = {**(self.files if use_index else {}), **(links or {})}
        wanted = [
            Requirement(line.split(" --hash")[0])
            for line in lines
            if line and not line.startswith("-") and not _is_local(line)
        ]
        chosen: dict[str, IndexFile] = {}
        while wanted:
            req = wanted.pop()
            if req.marker is not None and not Marker(str(req.marker)).evaluate(environment):
                continue
            name = canonicalize_name(req.name)
            entry = candidates.get(name)
            if entry is None or entry.version not in req.specifier:
                return {}, f"No matching distribution found for {req}"
            if name not in chosen:
                chosen[name] = entry
                wanted.extend(Requirement(d) for d in entry.dependencies)
        return chosen, None

    def simple_index(self) -> Callable[..., object]:
        """A stand-in for index.simple_api.SimpleIndex over this index's files: what the
        index lists of each name (its wheel or sdist, and an sdist beside a wheel)."""
        index = self

        class Pages:
            def __init__(self, *args: object, **kwargs: object) -> None:
                index.page_reads += 1

            def files(self, name: str) -> list[simple_api.IndexFile]:
                key = canonicalize_name(name)
                entries = [e for e in (index.files.get(key), index.sdists.get(key)) if e]
                return [
                    simple_api.IndexFile(
                        filename=e.path.name,
                        url=e.url,
                        sha256=e.sha256,
                        requires_python=None,
                        yanked=False,
                    )
                    for e in entries
                ]

        return Pages

    def add_both(self, name: str, version: str) -> IndexFile:
        """A wheel and an sdist of one version (the usual case on PyPI)."""
        sdist = self.add_sdist(name, version)
        wheel = self.add_wheel(name, version)
        self.sdists[canonicalize_name(name)] = sdist
        return wheel

    def add_wheel(
        self,
        name: str,
        version: str,
        *,
        deps: tuple[str, ...] = (),
        tag: str = "py3-none-any",
        files: Mapping[str, bytes] | None = None,
    ) -> IndexFile:
        module = canonicalize_name(name).replace("-", "_")
        members: dict[str, str | bytes] = {f"{module}/__init__.py": f"VERSION = {version!r}\n"}
        members.update(files or {})
        path = make_wheel(self.root, name, version, members, tag=tag)
        entry = IndexFile(name, version, path, _sha256(path), deps)
        self.files[canonicalize_name(name)] = entry
        return entry

    def adopt(self, path: Path, name: str, version: str) -> IndexFile:
        """Serve a file that already exists (written by an earlier run) as it is."""
        entry = IndexFile(name, version, path, _sha256(path), ())
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
        self.machine = "x86_64"
        self.emulates: set[str] = {"aarch64"}  # what binfmt lets the fake engine run
        self.cancelled = False
        self.verify_requests: list[dict[str, object]] = []
        self.resolved_then_compiled = 0  # resolution containers that went on to compile
        self.compiled_first: list[str] = []  # jobs built before resolving, in that container
        self.compiled_jobs = 0  # sdists built, in either kind of container
        self.images: dict[str, ImageInfo] = {}  # what `docker image inspect` knows, by name
        self.held: set[tuple[str, ...]] = set()  # layer chains the engine's store holds
        self.loads: list[dict[str, object]] = []  # each `docker load`: tags and layers sent
        self.saves: list[str] = []
        self.resolved_texts: list[str] = []  # the requirements each resolution container read
        # (container path, bytes) of each small file mounted, kept: some live only while the
        # container runs (a trimmed netrc)
        self.mounted_files: list[tuple[str, bytes]] = []

    def check_engine(self) -> None:
        pass

    def engine_architecture(self) -> str:
        return self.machine

    def cancel(self) -> None:
        self.cancelled = True

    def image_id(self, image: str, *, platform: str | None) -> str:
        from nativebuild.errors import DockerUnavailableError

        if self.engine_down:
            msg = "engine down (fake)"
            raise DockerUnavailableError(msg)
        if is_runtime_image(image):
            return self.local_image(image).id  # type: ignore[union-attr]
        return self.image

    # Images (nativebuild.engine.image_store.ImageStore): runtime images exist, with one layer.

    def local_image(self, image: str) -> ImageInfo | None:
        if image not in self.images and is_runtime_image(image):
            config, layer = fake_runtime_image(image)
            diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
            self.images[image] = ImageInfo(
                id="sha256:" + hashlib.sha256(config).hexdigest(), tags=(image,),
                repo_digests=(), labels={}, architecture=json.loads(config)["architecture"],
                created="", size=len(layer), layers=(diff_id,),
            )  # fmt: skip
            self.held.add((diff_id,))
        return self.images.get(image)

    def save_image(self, image: str) -> Iterator[bytes]:
        """``docker save`` in the classic layout: ``<id>/layer.tar``, ``<id>.json``."""
        info = self.local_image(image)
        assert info is not None, f"the fake engine has no image {image}"
        self.saves.append(image)
        config, layer = fake_runtime_image(image)
        config_name = info.id.removeprefix("sha256:") + ".json"
        members = {
            "abc123/VERSION": b"1.0", "abc123/layer.tar": layer, config_name: config,
            "manifest.json": json.dumps(
                [{"Config": config_name, "RepoTags": [image], "Layers": ["abc123/layer.tar"]}]
            ).encode(),
        }  # fmt: skip
        data = tar_of(members)
        yield from (data[i : i + 4096] for i in range(0, len(data), 4096))

    def load_image(self, data: Iterable[bytes]) -> tuple[str, ...]:
        """``docker load``: layers the store holds (by chain) are not read, as on 20.10; any
        other must be in the stream and match its diff_id."""
        from nativebuild.errors import ContainerError

        with tarfile.open(fileobj=io.BytesIO(b"".join(data)), mode="r:") as archive:
            files = {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}  # type: ignore[union-attr]
        (entry,) = json.loads(files["manifest.json"])
        config = files[entry["Config"]]
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        sent = 0
        for depth, (name, diff_id) in enumerate(zip(entry["Layers"], diff_ids, strict=True)):
            chain = tuple(diff_ids[: depth + 1])
            if chain in self.held:
                continue
            if name not in files:
                msg = f"open /var/lib/docker/tmp/docker-import-1/{name}: no such file or directory"
                raise ContainerError(msg)
            plain = gzip.decompress(files[name])
            if "sha256:" + hashlib.sha256(plain).hexdigest() != diff_id:
                msg = f"invalid diffID for layer {depth}"
                raise ContainerError(msg)
            self.held.add(chain)
            sent += 1
        image_id = "sha256:" + hashlib.sha256(config).hexdigest()
        for tag in entry["RepoTags"]:
            self.images[tag] = ImageInfo(
                id=image_id, tags=(tag,), repo_digests=(), labels={}, architecture="",
                created="", size=0, layers=tuple(diff_ids),
            )  # fmt: skip
        self.loads.append({"tags": entry["RepoTags"], "layers_sent": sent})
        return tuple(f"Loaded image: {tag}" for tag in entry["RepoTags"])

    def run(
        self, spec: ContainerSpec, *, reporter: Reporter, verbose: bool = False
    ) -> ContainerResult:
        if self.engine_down:
            from nativebuild.errors import DockerUnavailableError

            msg = "engine down (fake)"
            raise DockerUnavailableError(msg)
        self.containers_started += 1
        self.specs.append(spec)
        self.mounted_files += [
            (m.target, m.source.read_bytes())
            for m in spec.mounts
            if m.source.is_file() and m.source.stat().st_size < 1 << 20
        ]
        if spec.command == ("uname", "-m"):
            machine = "aarch64" if spec.platform == "linux/arm64" else "x86_64"
            if machine == self.machine or machine in self.emulates:
                return ContainerResult(exit_code=0, log_tail=(machine,), duration_s=0.1)
            return ContainerResult(
                exit_code=1, log_tail=("exec /usr/bin/uname: exec format error",), duration_s=0.1
            )
        mounts = {m.target: m.source for m in spec.mounts}
        if "--dry-run" in spec.command:
            return self._resolve(spec, mounts)
        if spec.command[1:2] == (PROBE_IN_CONTAINER,):
            return self._probe_runtime(spec, mounts)
        if spec.command[1:2] == (VERIFY_IN_CONTAINER,):
            return self._verify(spec, mounts)
        machine = "aarch64" if spec.platform == "linux/arm64" else "x86_64"
        if spec.command[1:3] == (COMPILE_IN_CONTAINER, "--resolve-first"):
            return self._resolve_then_compile(spec, mounts, machine, reporter)
        if spec.command[1:2] == (COMPILE_IN_CONTAINER,):
            return self._compile(mounts, machine)
        # A container this fake does not know must fail the test loudly, never pass as a compile.
        msg = f"the fake engine does not know this container: {spec.command!r}"
        raise AssertionError(msg)

    def _verify(self, spec: ContainerSpec, mounts: dict[str, Path]) -> ContainerResult:
        """What drivers/verify.py reports when every module imports and the handler returns."""
        request = json.loads((mounts["/nativebuild/in"] / "request.json").read_text())
        self.verify_requests.append(request)
        machine = "aarch64" if spec.platform == "linux/arm64" else "x86_64"
        ok = {"ok": True, "seconds": 0.01, "error": None, "detail": []}
        handler = request.get("handler")
        document = {
            "python": "3.9.2", "machine": machine, "uid": 993,
            "modules": [{"name": name, **ok} for name in request["modules"]],
            "handler": None if not handler else {"handler": handler, **ok, "result": "1"},
        }  # fmt: skip
        (mounts["/nativebuild/out"] / "results.json").write_text(json.dumps(document))
        return ContainerResult(exit_code=0, log_tail=(), duration_s=0.1)

    def _probe_runtime(self, spec: ContainerSpec, mounts: dict[str, Path]) -> ContainerResult:
        """What drivers/runtime_probe.py finds in a glibc 2.31 image: glibc's own libraries."""
        machine = "aarch64" if spec.platform == "linux/arm64" else "x86_64"
        glibc = [f"GLIBC_2.{minor}" for minor in range(2, 32)]
        libraries = ("libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1")
        document = {
            "machine": machine, "glibc": "2.31", "os": "Debian GNU/Linux 11 (bullseye)",
            "libraries": {name: ["/lib64"] for name in libraries},
            "versions": dict.fromkeys(libraries, glibc), "ld_library_path": [],
        }  # fmt: skip
        (mounts["/nativebuild/out"] / "facts.json").write_text(json.dumps(document))
        return ContainerResult(exit_code=0, log_tail=(), duration_s=0.1)

    def _resolve(
        self, spec: ContainerSpec, mounts: dict[str, Path], find_links: Sequence[str] = ()
    ) -> ContainerResult:
        """pip --dry-run --report: the index, the find-links folders of PIP_FIND_LINKS (the
        files mounted in them) and the local files named on lines; the report names what it
        took by container URL, as pip does."""
        text = (mounts["/nativebuild/in"] / "requirements.txt").read_text()
        self.resolved_texts.append(text)
        lines = text.splitlines()
        env = dict(spec.environment)
        machine = "aarch64" if spec.platform == "linux/arm64" else "x86_64"
        folders = env.get("PIP_FIND_LINKS", "").split()
        inside = {
            target: source
            for target, source in mounts.items()
            if any(target.startswith(folder + "/") for folder in folders)
        }
        for folder in find_links:  # --find-links on pip's command line: a folder's wheels
            on_host = _on_host(mounts, folder)
            for wheel in sorted(on_host.glob("*.whl")) if on_host is not None else []:
                inside[f"{folder}/{wheel.name}"] = wheel
        links = {
            name: dataclasses.replace(entry, path=Path(target))
            for target, source in inside.items()
            for name, entry in folder_entries([source]).items()
        }
        chosen, error = self.index.resolve(
            lines, links=links, use_index="PIP_NO_INDEX" not in env, machine=machine
        )
        if error is not None:
            tail = (f"ERROR: {error}",)
            return ContainerResult(exit_code=1, log_tail=tail, duration_s=0.1)
        no_binary = {canonicalize_name(l.split()[1]) for l in lines if l.startswith("--no-binary")}
        entries = []
        for e in chosen.values():
            f = (
                self.index.sdists.get(canonicalize_name(e.name), e)
                if canonicalize_name(e.name) in no_binary
                else e
            )
            if str(f.path) in inside:  # a find-links file: pip reports where it read it
                sha256 = _sha256(inside[str(f.path)])
                entries.append((e.name, e.version, f"file://{f.path}", sha256))
            else:
                entries.append((e.name, e.version, f.url, f.sha256))
        for name, url in local_lines(lines, machine):
            local = mounts[url.removeprefix("file://")]
            entries.append((name, file_entry(local).version, url, _sha256(local)))
        report = {
            "version": "1",
            "install": [
                {
                    "metadata": {"name": name, "version": version},
                    "download_info": {"url": url, "archive_info": {"hashes": {"sha256": sha}}},
                }
                for name, version, url, sha in entries
            ],
        }
        (mounts["/nativebuild/out"] / "report.json").write_text(json.dumps(report))
        return ContainerResult(exit_code=0, log_tail=(), duration_s=0.1)

    def _resolve_then_compile(
        self, spec: ContainerSpec, mounts: dict[str, Path], machine: str, reporter: Reporter
    ) -> ContainerResult:
        """drivers/build_wheels.py --resolve-first: the report, the marker (the host chooses on
        the log thread, as it reads this line), then the builds the host put in go/."""
        plan = json.loads((mounts["/nativebuild/in"] / "plan.json").read_text())
        results: list[dict[str, object]] = []
        if "first" in plan:  # the known sdists, built before resolving; a failure stops it
            first = _on_host(mounts, plan["first"])
            assert first is not None, "the first jobs must be in the container"
            built = self._compile(mounts, machine, jobs_file=first, results=results)
            self.compiled_first += [str(job["name"]) for job in json.loads(first.read_text())]
            if built.exit_code != 0:
                return built
        command = plan["resolve"]
        links = [command[i + 1] for i, arg in enumerate(command) if arg == "--find-links"]
        resolved = self._resolve(spec, mounts, find_links=links)
        if resolved.exit_code != 0:
            return resolved
        self.resolved_then_compiled += 1
        reporter.output(RESOLVED_MARKER)
        go = mounts["/nativebuild/in"] / "go"
        if json.loads((go / "ready").read_text())["abort"]:
            return resolved
        return self._compile(mounts, machine, jobs_file=go / "jobs.json", results=results)

    def _compile(
        self,
        mounts: dict[str, Path],
        machine: str,
        *,
        jobs_file: Path | None = None,
        results: list[dict[str, object]] | None = None,
    ) -> ContainerResult:
        """The jobs' wheels; their results join ``results`` (the jobs built before, in the
        same container), all written to results.json as the driver does."""
        jobs = json.loads((jobs_file or mounts["/nativebuild/in"] / "jobs.json").read_text())
        out_root = mounts["/nativebuild/out"]
        results = [] if results is None else results
        for job in jobs:
            sdist = _on_host(mounts, job["sdist"])
            assert sdist is not None, "the sdist must be mounted into the container"
            assert sdist.is_file(), f"the sdist {job['sdist']} is not there"
            self.compiled_jobs += 1
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
                {f"{module}/__init__.py": "COMPILED = True\n", f"{module}/_speedups.so": _elf(machine)},
                tag=f"cp39-cp39-linux_{machine}",
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


def _on_host(mounts: dict[str, Path], container_path: str) -> Path | None:
    """The host file a container path reaches through ``mounts`` (a file or a directory's)."""
    for target, source in mounts.items():
        if container_path == target:
            return source
        if container_path.startswith(target + "/"):
            return source / container_path[len(target) + 1 :]
    return None


def _elf(machine: str) -> bytes:
    """A shared object header for ``machine``: the build's ABI check reads it as one."""
    return elf_header(machine={"x86_64": 62, "aarch64": 183}[machine])


def is_runtime_image(image: str) -> bool:
    return "lambda/python" in image or "runtime" in image


def tar_of(members: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            if name.endswith("/"):
                info = tarfile.TarInfo(name.rstrip("/"))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
                continue
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name.endswith("python3.9") else 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_runtime_image(image: str) -> tuple[bytes, bytes]:
    """A runtime image's config and its one layer (uncompressed): Lambda's layout in small."""
    arch = "arm64" if image.endswith("arm64") else "amd64"
    layer = tar_of(
        {"var/": b"", "var/lang/": b"", "var/lang/bin/": b"", "var/task/": b"",
         "var/lang/bin/python3.9": f"#!fake python for {image}\n".encode()}
    )  # fmt: skip
    config = {
        "architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
        "container": "f00d", "docker_version": "20.10.24",
        "config": {"Env": ["LAMBDA_TASK_ROOT=/var/task"], "Entrypoint": ["/lambda-entrypoint.sh"],
                   "WorkingDir": "/var/task", "Cmd": None},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "ADD rootfs.tar /"}],
    }  # fmt: skip
    return json.dumps(config, sort_keys=True).encode(), layer


class RecordingReporter(NullReporter):
    """Says nothing, but keeps the warnings."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


class FakeUv:
    """Stands in for uv on the host: ``pip compile --no-build`` against a FakeIndex, answering
    in PEP 751; refuses (as uv does) when only an sdist could satisfy a requirement."""

    def __init__(self, index: FakeIndex) -> None:
        self.index = index
        self.calls: list[list[str]] = []
        self.installed = True

    def available(self) -> bool:
        return self.installed

    def run(self, args: Sequence[str], *, cwd: Path | None, env: Mapping[str, str]) -> UvResult:
        self.calls.append(list(args))
        assert args[:2] == ["pip", "compile"], args
        assert "--no-build" in args, "uv must never build on the host"
        machine = str(args[args.index("--python-platform") + 1]).split("-", 1)[0]
        lines = Path(args[2]).read_text().splitlines()
        links: dict[str, IndexFile] = {}
        for position, arg in enumerate(args):
            if arg == "--find-links":
                folder = Path(args[position + 1])
                links.update(
                    folder_entries([p for p in folder.iterdir() if is_distribution(p.name)])
                )
        chosen, error = self.index.resolve(
            lines, links=links, use_index="--no-index" not in args, machine=machine
        )
        if error is not None:
            return UvResult(returncode=1, stdout="", stderr=f"error: {error}")
        packages = []
        for entry in chosen.values():
            name = canonicalize_name(entry.name)
            sdist = self.index.sdists.get(name)
            if entry.path.name.endswith(".tar.gz"):
                return UvResult(returncode=1, stdout="", stderr=_needs_build(name, entry.version))
            lines_out = [f'[[packages]]\nname = "{name}"\nversion = "{entry.version}"']
            if sdist is not None:
                lines_out.append(
                    f'sdist = {{ url = "{sdist.url}", hashes = {{ sha256 = "{sdist.sha256}" }} }}'
                )
            lines_out.append(
                f'wheels = [{{ url = "{entry.url}", hashes = {{ sha256 = "{entry.sha256}" }} }}]'
            )
            packages.append("\n".join(lines_out))
        for name, url in local_lines(lines, machine):
            path = Path(url.removeprefix("file://"))
            if path.is_dir():
                packages.append(f'[[packages]]\nname = "{name}"\ndirectory = {{ path = "{path}" }}')
                continue
            entry = file_entry(path)
            if not path.name.endswith(".whl"):  # an sdist: only building it tells its metadata
                return UvResult(returncode=1, stdout="", stderr=_needs_build(name, entry.version))
            packages.append(
                f'[[packages]]\nname = "{name}"\nversion = "{entry.version}"\n'
                f'archive = {{ path = "{path}", hashes = {{ sha256 = "{entry.sha256}" }} }}'
            )
        output = Path(args[args.index("--output-file") + 1])
        output.write_text(
            'lock-version = "1.0"\ncreated-by = "fake-uv"\n\n' + "\n\n".join(packages) + "\n"
        )
        return UvResult(returncode=0, stdout="", stderr="")


def _needs_build(name: str, version: str) -> str:
    return (
        f"error: Because {name}=={version} has no usable wheels ...\n"
        f"hint: Wheels are required for `{name}` because building from source is "
        "disabled for all packages (i.e., with `--no-build`)"
    )


class ArchiveJobsRunner(FakeRunner):
    """FakeRunner that also runs nativebuild's archive jobs (bytecode, strip) on the host.

    Bytecode is compiled by the real in-container driver, with the host's Python (so with the
    host's bytecode version: enough to test everything but the version). Stripping shortens each
    file, as ``strip`` would, since FakeRunner's "shared objects" are not real ELF files."""

    def __init__(self, index: FakeIndex, *, image_id: str = "sha256:" + "1" * 64) -> None:
        super().__init__(index, image_id=image_id)
        self.archive_jobs: list[dict[str, list[dict[str, str]]]] = []

    def run(
        self, spec: ContainerSpec, *, reporter: Reporter, verbose: bool = False
    ) -> ContainerResult:
        from nativebuild.archive.jobs import DRIVER_IN_CONTAINER

        if spec.command[1:2] != (DRIVER_IN_CONTAINER,):
            return super().run(spec, reporter=reporter, verbose=verbose)
        self.containers_started += 1
        self.specs.append(spec)
        return self._archive_job(spec)

    def _archive_job(self, spec: ContainerSpec) -> ContainerResult:
        from nativebuild.archive.jobs import IN_DIR, OUT_DIR
        from nativebuild.drivers.archive_jobs import compile_all

        mounts = {m.target: m.source for m in spec.mounts}
        roots = {IN_DIR: mounts[IN_DIR], OUT_DIR: mounts[OUT_DIR]}

        def host(path: str) -> str:
            for prefix, root in roots.items():
                if path.startswith(prefix + "/"):
                    return str(root / path[len(prefix) + 1 :])
            msg = f"{path} is not under a mounted directory"
            raise AssertionError(msg)

        jobs = json.loads((roots[IN_DIR] / "jobs.json").read_text())
        self.archive_jobs.append(jobs)
        results: dict[str, list[object]] = {
            "compiled": [], "compile_failed": [], "stripped": [], "strip_failed": [],
        }  # fmt: skip
        translated = [
            {"src": host(j["src"]), "out": host(j["out"]), "dfile": j["dfile"]}
            for j in jobs.get("compile", [])
        ]
        compile_all(translated, results)
        back = {host(j["out"]): j["out"] for j in jobs.get("compile", [])}
        results["compiled"] = [back[str(out)] for out in results["compiled"]]
        for job in jobs.get("strip", []):
            data = Path(host(job["src"])).read_bytes()
            out = Path(host(job["out"]))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data[: max(4, len(data) // 2)])
            results["stripped"].append(job["out"])
        (roots[OUT_DIR] / "results.json").write_text(json.dumps(results))
        return ContainerResult(exit_code=0, log_tail=(), duration_s=0.1)
