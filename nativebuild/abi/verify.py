"""Prove an archive in its runtime: import every top-level module inside the runtime image.

The archive is extracted read-only at /var/task (its layers, merged in order, at /opt), the
image of the target's architecture is started as a non-root user without network, and
``drivers/verify.py`` imports each module in a fresh interpreter, then optionally calls a
handler with an event. The archive's binaries are also checked statically against the
image's own (probed) libraries, so a failure comes with its cause.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nativebuild.abi.check import Finding, Severity, check_mounts
from nativebuild.abi.runtime_facts import RuntimeFacts, probe_facts
from nativebuild.abi.scan import merge_layers, scan_zip, zip_owners
from nativebuild.archive.layout import FUNCTION_ROOT, LAYER_ROOT
from nativebuild.archive.wheels import unsafe_reason
from nativebuild.drivers import script
from nativebuild.engine.runner import ContainerSpec, Mount
from nativebuild.errors import ArchiveError, ContainerError
from nativebuild.targets import Target

if TYPE_CHECKING:
    from nativebuild.cache.local import LocalCache
    from nativebuild.engine.runner import ContainerRunner
    from nativebuild.reporting import Reporter

__all__ = [
    "HandlerResult",
    "ModuleResult",
    "VerifyReport",
    "modules_to_import",
    "verify_archive",
    "verify_spec",
]

DRIVER = script("verify")
DRIVER_IN_CONTAINER = "/nativebuild/verify.py"
IN_DIR = "/nativebuild/in"
OUT_DIR = "/nativebuild/out"
# Lambda runs functions as sbx_user1051 (uid 993): never root, /var/task read-only.
VERIFY_USER = "993:990"
IMPORT_TIMEOUT_S = 300  # per module: numpy under QEMU takes tens of seconds
# Top-level names of a source tree that are tooling, not function code.
_NOT_FUNCTION_CODE = frozenset({"setup", "conftest", "noxfile", "tasks", "test", "tests"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModuleResult:
    name: str
    package: str | None  # "numpy 2.0.1"; None: the user's source
    ok: bool
    seconds: float
    error: str | None = None  # the last line of the traceback
    detail: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class HandlerResult:
    handler: str
    ok: bool
    seconds: float
    result: str | None = None  # the JSON the handler returned
    error: str | None = None
    detail: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifyReport:
    archive: Path
    image: str
    platform: str
    machine: str  # `uname -m` inside the container that imported the modules
    runtime: str  # what the probe found: "image X (Debian ..., glibc 2.31, probed)"
    modules: tuple[ModuleResult, ...]
    handler: HandlerResult | None
    findings: tuple[Finding, ...]

    @property
    def failed_modules(self) -> list[ModuleResult]:
        return [m for m in self.modules if not m.ok]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def ok(self) -> bool:
        handler_ok = self.handler is None or self.handler.ok
        return not self.failed_modules and handler_ok and not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "image": self.image,
            "platform": self.platform,
            "machine": self.machine,
            "runtime": self.runtime,
            "ok": self.ok,
            "modules": [dataclasses.asdict(m) for m in self.modules],
            "handler": dataclasses.asdict(self.handler) if self.handler else None,
            "findings": [f.to_json() for f in self.findings],
        }


# --- what to import ----------------------------------------------------------------------------


def _module_name(top: str, is_dir: bool) -> str | None:
    name = top if is_dir else top.split(".", 1)[0]
    if not is_dir and not top.endswith((".py", ".so")):
        return None
    return name if name.isidentifier() else None


def modules_to_import(names: Sequence[str], owners: dict[str, str]) -> list[tuple[str, str | None]]:
    """(module, package) for every top-level module of an archive's file ``names``.

    Distributions contribute what their RECORD installs at the top (``owners``: path →
    package); the source contributes top-level ``.py`` files and packages with an
    ``__init__.py``, minus tooling (setup.py, conftest.py, tests).
    """
    found: dict[str, str | None] = {}
    for name in sorted(names):
        top, sep, rest = name.partition("/")
        if top.endswith((".dist-info", ".data", ".libs")) or top in {"bin", "__pycache__"}:
            continue
        module = _module_name(top, is_dir=bool(sep))
        if module is None or module in found:
            continue
        package = owners.get(name)
        if package is None:  # the user's source
            if module in _NOT_FUNCTION_CODE or module.startswith("test_"):
                continue
            if sep and rest != "__init__.py" and f"{top}/__init__.py" not in names:
                continue  # a data directory, not a package
        elif sep and not rest.endswith((".py", ".so")) and not _has_code(names, top):
            continue
        found[module] = package
    return sorted(found.items())


def layer_modules(layer: Path) -> dict[str, str | None]:
    """The top-level modules a layer puts on ``sys.path`` (from ``python/`` or
    ``python/lib/python3.X/site-packages/``), with their packages."""
    try:
        with zipfile.ZipFile(layer) as zf:
            names = [info.filename for info in zf.infolist() if not info.is_dir()]
            owners = zip_owners(zf)
    except (OSError, zipfile.BadZipFile) as err:
        msg = f"Cannot read the layer {layer}: {err}."
        raise ArchiveError(msg, hint="Pass a layer .zip that `nativebuild build` wrote.") from err
    modules: dict[str, str | None] = {}
    prefixes = {n.split("/site-packages/", 1)[0] + "/site-packages/" for n in names
                if n.startswith("python/lib/python") and "/site-packages/" in n}  # fmt: skip
    for prefix in [*sorted(prefixes), "python/"]:
        inside = [
            n[len(prefix) :]
            for n in names
            if n.startswith(prefix) and not (prefix == "python/" and n.startswith("python/lib/"))
        ]
        own = {k[len(prefix) :]: v for k, v in owners.items() if k.startswith(prefix)}
        for module, package in modules_to_import(inside, own):
            modules.setdefault(module, package)
    return modules


def _has_code(names: Sequence[str], top: str) -> bool:
    return any(n.startswith(f"{top}/") and n.endswith((".py", ".so")) for n in names)


# --- running -----------------------------------------------------------------------------------


def _extract(archive: Path, dest: Path) -> None:
    """Unpack with 0o644/0o755 modes, refusing names that would leave ``dest``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                reason = unsafe_reason(info.filename)
                if reason is not None:
                    msg = f"{archive.name} has a member {info.filename!r} that {reason}."
                    raise ArchiveError(msg, hint="Only verify archives you trust.")
                target = dest / info.filename
                if info.is_dir():
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    link = zf.read(info).decode()
                    resolved = posixpath.normpath(posixpath.join(info.filename, "..", link))
                    if link.startswith("/") or resolved.startswith(".."):
                        msg = f"{archive.name} has a symlink {info.filename} leaving the archive."
                        raise ArchiveError(msg)
                    target.unlink(missing_ok=True)
                    target.symlink_to(link)
                    continue
                target.unlink(missing_ok=True)  # a later layer replaces an earlier one's file
                target.write_bytes(zf.read(info))
                target.chmod(0o755 if mode & 0o111 else 0o644)
    except (OSError, zipfile.BadZipFile) as err:
        msg = f"Cannot extract {archive}: {err}."
        raise ArchiveError(msg, hint="Check that it is a readable zip archive.") from err
    dest.chmod(0o755)


def verify_spec(target: Target, *, image: str, work: Path, has_layers: bool) -> ContainerSpec:
    python = target.runtime.python
    mounts = [
        Mount(source=DRIVER, target=DRIVER_IN_CONTAINER),
        Mount(source=work / "in", target=IN_DIR),
        Mount(source=work / "out", target=OUT_DIR, read_only=False),
        Mount(source=work / "task", target=FUNCTION_ROOT),
    ]
    if has_layers:
        mounts.append(Mount(source=work / "opt", target=LAYER_ROOT))
    # sys.path as Lambda has it: the function, the layers, then the runtime's own libraries.
    pythonpath = ":".join(
        [
            FUNCTION_ROOT,
            f"/opt/python/lib/python{python}/site-packages",
            "/opt/python",
            "/var/runtime",
        ]
    )
    environment = {
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",
        "LAMBDA_TASK_ROOT": FUNCTION_ROOT,
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_LAMBDA_FUNCTION_NAME": "nativebuild-verify",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return ContainerSpec(
        image=image,
        command=(
            target.runtime.interpreter_path,
            DRIVER_IN_CONTAINER,
            f"{IN_DIR}/request.json",
            f"{OUT_DIR}/results.json",
        ),
        description=f"verify the archive in {image}",
        platform=target.arch.docker_platform,
        mounts=tuple(mounts),
        environment=tuple(sorted(environment.items())),
        working_dir=FUNCTION_ROOT,
        user=VERIFY_USER,
        network_mode="none",
    )


def _read_results(path: Path, result_tail: Sequence[str], exit_code: int, image: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        tail = "\n".join(result_tail[-20:])
        msg = (
            f"The verification in {image} ended (exit status {exit_code}) without results.\n{tail}"
        )
        hint = "Run with -v to see the container's output."
        raise ContainerError(msg, hint=hint) from err


def verify_archive(
    archive: Path,
    target: Target,
    *,
    runner: ContainerRunner,
    cache: LocalCache,
    reporter: Reporter,
    layers: Sequence[Path] = (),
    handler: str | None = None,
    event: Any = None,
    verbose: bool = False,
    facts: RuntimeFacts | None = None,
) -> VerifyReport:
    """Check ``archive`` (and ``layers``) against ``target``'s runtime image, then import every
    top-level module in it and call ``handler`` with ``event`` if given."""
    image, platform = target.runtime_image, target.arch.docker_platform
    if facts is None:
        facts = probe_facts(
            image, platform=platform, interpreter=target.runtime.interpreter_path,
            runner=runner, cache=cache, reporter=reporter, verbose=verbose,
        )  # fmt: skip
    reporter.step(f"Checking the binaries of {archive.name} against {facts.description}")
    mounts = [scan_zip(archive, root=FUNCTION_ROOT)]
    if layers:
        mounts.append(merge_layers([scan_zip(layer, root=LAYER_ROOT) for layer in layers]))
    findings = check_mounts(mounts, target, facts)
    with zipfile.ZipFile(archive) as zf:
        names = [info.filename for info in zf.infolist() if not info.is_dir()]
        packages = dict(modules_to_import(names, zip_owners(zf)))
    for layer in layers:
        for module, package in layer_modules(layer).items():
            packages.setdefault(module, package)
    if handler is not None:
        packages.setdefault(handler.rpartition(".")[0].replace("/", "."), None)

    reporter.step(f"Importing {len(packages)} modules in {image} ({platform})")
    with cache.scratch_dir() as work:
        for sub in ("in", "out", "task", "opt"):
            (work / sub).mkdir()
        (work / "out").chmod(0o777)  # written by the container's non-root user
        _extract(archive, work / "task")
        for layer in layers:
            _extract(layer, work / "opt")
        request = {"modules": sorted(packages), "handler": handler, "event": event,
                   "timeout": IMPORT_TIMEOUT_S}  # fmt: skip
        (work / "in" / "request.json").write_text(json.dumps(request), encoding="utf-8")
        spec = verify_spec(target, image=image, work=work, has_layers=bool(layers))
        result = runner.run(spec, reporter=reporter, verbose=verbose)
        document = _read_results(
            work / "out" / "results.json", result.log_tail, result.exit_code, image
        )

    modules = tuple(
        dataclasses.replace(_module_result(m), package=packages.get(m["name"]))
        for m in document["modules"]
    )
    called = document.get("handler")
    handler_result = None if called is None else _handler_result(called)
    return VerifyReport(
        archive=archive, image=image, platform=platform, machine=str(document["machine"]),
        runtime=facts.description,
        modules=modules, handler=handler_result, findings=tuple(findings),
    )  # fmt: skip


def _module_result(raw: dict[str, Any]) -> ModuleResult:
    return ModuleResult(
        name=raw["name"], package=None, ok=bool(raw["ok"]), seconds=float(raw["seconds"]),
        error=raw["error"], detail=tuple(raw["detail"]),
    )  # fmt: skip


def _handler_result(raw: dict[str, Any]) -> HandlerResult:
    return HandlerResult(
        handler=raw["handler"], ok=bool(raw["ok"]), seconds=float(raw["seconds"]),
        result=raw["result"], error=raw["error"], detail=tuple(raw["detail"]),
    )  # fmt: skip
