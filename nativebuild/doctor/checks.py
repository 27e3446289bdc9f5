"""``nativebuild doctor``: can this machine build for the configured targets, and if not, why?

Each check is a record (ok / problem / skipped, what was found, how to fix it). The
``check_*`` functions decide from facts and are pure; :mod:`nativebuild.doctor.run` gathers the facts
(engine, images, binfmt, cache directory, disk, a container fetching from the index).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nativebuild.engine.api import MIN_PLATFORM_API
from nativebuild.engine.runner import ContainerSpec, read_only_mounts
from nativebuild.errors import NativebuildError
from nativebuild.index.pip_config import IndexSettings
from nativebuild.redact import redact
from nativebuild.targets import Architecture, Target

if TYPE_CHECKING:
    from nativebuild.engine.runner import ContainerResult, EngineInfo, ImageInfo
    from nativebuild.reporting import Reporter

GIB = 1024**3
MIN_FREE_CACHE = 1 * GIB
MIN_FREE_ENGINE = 4 * GIB  # a build image and its base take 1-2 GB per runtime and arch
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
PROBE_URL_VARIABLE = "NATIVEBUILD_PROBE_URL"
_BINFMT_FIX = (
    "Register QEMU with the kernel: `docker run --privileged --rm tonistiigi/binfmt --install "
    "all` (Linux; Docker Desktop has it built in), or build on a machine of that architecture."
)
# Runs in the container with the target's Python (3.9+): fetches the index's page for pip, with
# the forwarded CA bundle, trusted hosts, proxies (urllib reads them) and netrc credentials.
PROBE_SCRIPT = r"""
import base64, json, netrc, os, ssl, sys, urllib.error, urllib.parse, urllib.request
parts = urllib.parse.urlsplit(os.environ["NATIVEBUILD_PROBE_URL"])
host = parts.hostname or ""
user, password = parts.username, parts.password
if user is None and os.environ.get("NETRC"):
    try:
        found = netrc.netrc(os.environ["NETRC"]).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        found = None
    if found:
        user, password = found[0], found[2]
netloc = host + (":%d" % parts.port if parts.port else "")
page = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/pip/", "", ""))
request = urllib.request.Request(page)
if user is not None:
    token = base64.b64encode(("%s:%s" % (user, password or "")).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
if host in os.environ.get("PIP_TRUSTED_HOST", "").split():
    context = ssl._create_unverified_context()
else:
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
try:
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        result = {"status": response.status}
except urllib.error.HTTPError as err:
    result = {"status": err.code}
except Exception as err:
    result = {"error": "%s: %s" % (type(err).__name__, getattr(err, "reason", err))}
print(json.dumps(result))
"""


class Status(enum.StrEnum):
    OK = "ok"
    PROBLEM = "problem"
    SKIPPED = "skipped"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    needed: bool = True  # False: informational (another architecture than the configured ones)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self) | {"status": self.status.value}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not any(c.status is Status.PROBLEM and c.needed for c in self.checks)

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}


class DoctorRunner(Protocol):
    def engine_info(self) -> EngineInfo: ...

    def local_image(self, image: str) -> ImageInfo | None: ...

    def registry_digest(self, image: str) -> str: ...

    def run(
        self, spec: ContainerSpec, *, reporter: Reporter, verbose: bool = False
    ) -> ContainerResult: ...


# --- decisions ------------------------------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def check_engine(info: EngineInfo | None, error: NativebuildError | None) -> Check:
    name = "docker engine"
    if info is None:
        detail = str(error) if error is not None else "no answer"
        fix = (error.hint if error is not None else None) or "Start a Docker engine."
        return Check(name=name, status=Status.PROBLEM, detail=detail, fix=fix)
    wanted = ".".join(map(str, MIN_PLATFORM_API))
    detail = f"Docker {info.version}, API {info.api_version}, {info.architecture}"
    if _version(info.api_version) < MIN_PLATFORM_API:
        return Check(
            name=name,
            status=Status.PROBLEM,
            detail=f"{detail}: choosing a platform per container needs API {wanted}",
            fix="Upgrade Docker Engine to 20.10 or newer.",
        )
    return Check(name=name, status=Status.OK, detail=detail)


def check_emulation(
    arch: Architecture,
    *,
    engine_machine: str,
    binfmt: bool | None,
    probe: str | None,
    probe_image: str | None,
    needed: bool,
) -> Check:
    """``binfmt``: a QEMU handler is registered on this host (None: cannot tell, the engine is
    elsewhere). ``probe``: ``uname -m`` in ``probe_image`` under the target platform, or the
    error it gave (None: not tried, no local image)."""
    name = f"run {arch.value} containers"
    if engine_machine == arch.machine:
        return Check(name=name, status=Status.OK, detail="native", needed=needed)
    if probe is not None:
        if probe == arch.machine:
            detail = f"emulated: `uname -m` in {probe_image} says {probe}"
            return Check(name=name, status=Status.OK, detail=detail, needed=needed)
        detail = f"`uname -m` in {probe_image} under {arch.docker_platform} failed: {probe}"
        return Check(
            name=name, status=Status.PROBLEM, detail=detail, fix=_BINFMT_FIX, needed=needed
        )
    handler = f"qemu-{arch.machine}"
    if binfmt:
        detail = f"binfmt handler {handler} is registered (not tried: no local {arch.value} image)"
        return Check(name=name, status=Status.OK, detail=detail, needed=needed)
    if binfmt is None:
        detail = f"cannot tell: the engine is not on this machine and no local {arch.value} image"
        return Check(name=name, status=Status.SKIPPED, detail=detail, needed=needed)
    detail = f"the engine runs {engine_machine} and no binfmt handler {handler} is registered"
    return Check(name=name, status=Status.PROBLEM, detail=detail, fix=_BINFMT_FIX, needed=needed)


def check_image(
    role: str, ref: str, *, local: ImageInfo | None, registry: str | None, error: str | None
) -> Check:
    name = f"{role} image"
    if local is not None:
        return Check(name=name, status=Status.OK, detail=f"{ref} present ({local.id[:19]})")
    if registry is not None:
        return Check(name=name, status=Status.OK, detail=f"{ref} pullable ({registry[:19]})")
    fix = (
        f"`docker pull {ref}` from a registry you can reach, build it locally, or pass "
        f"--{role}-image to use another image."
    )
    detail = f"{ref} is not present locally and the registry does not serve it: {error}"
    return Check(name=name, status=Status.PROBLEM, detail=detail, fix=fix)


def check_cache(path: Path, *, error: str | None, size: int, files: int, exists: bool) -> Check:
    name = "cache directory"
    if error is not None:
        fix = "Make it writable, or choose another with --cache-dir / NATIVEBUILD_CACHE_DIR."
        return Check(name=name, status=Status.PROBLEM, detail=f"{path}: {error}", fix=fix)
    if not exists:
        return Check(name=name, status=Status.OK, detail=f"{path} (created on first build)")
    detail = f"{path} writable, {size / GIB:.2f} GiB in {files} files"
    return Check(name=name, status=Status.OK, detail=detail)


def check_disk(what: str, path: Path, *, free: int | None, minimum: int) -> Check:
    name = f"disk space ({what})"
    if free is None:
        return Check(name=name, status=Status.SKIPPED, detail=f"{path} is not on this machine")
    detail = f"{free / GIB:.1f} GiB free at {path}"
    if free < minimum:
        fix = f"Free at least {minimum / GIB:.0f} GiB (`docker system prune`, an older cache)."
        return Check(name=name, status=Status.PROBLEM, detail=detail, fix=fix)
    return Check(name=name, status=Status.OK, detail=detail)


def check_remote_cache(url: str | None, error: NativebuildError | None) -> Check:
    name = "remote cache"
    if url is None:
        return Check(name=name, status=Status.SKIPPED, detail="none configured", needed=False)
    if error is not None:
        fix = error.hint or "Check the bucket, the endpoint and the AWS credentials."
        return Check(name=name, status=Status.PROBLEM, detail=f"{url}: {error}", fix=fix)
    return Check(name=name, status=Status.OK, detail=f"{url} answers")


def parse_probe(result: ContainerResult) -> dict[str, object]:
    for line in reversed(result.log_tail):
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                return parsed
    tail = " | ".join(result.log_tail[-5:])
    return {"error": f"the probe exited with {result.exit_code}: {tail}"}


def check_index(url: str, image: str, outcome: Mapping[str, object]) -> Check:
    name = "package index from a container"
    where = f"{redact(url)} from {image}"
    status = outcome.get("status")
    if isinstance(status, int) and status in (200, 404):
        detail = f"{where}: HTTP {status}"
        return Check(name=name, status=Status.OK, detail=detail)
    if isinstance(status, int):
        fix = {
            401: "Give credentials in ~/.netrc or the index URL; nativebuild forwards both.",
            403: "The index refuses these credentials: check them in ~/.netrc or the index URL.",
            407: "The proxy wants credentials: put them in HTTPS_PROXY (user:pass@host).",
        }.get(status, "The index answered with an error: try again, or check its status.")
        return Check(name=name, status=Status.PROBLEM, detail=f"{where}: HTTP {status}", fix=fix)
    error = str(outcome.get("error", "no answer"))
    if "CERTIFICATE_VERIFY_FAILED" in error:
        fix = (
            "A proxy re-signs TLS: point PIP_CERT (or `pip config set global.cert`) at your "
            "organisation's CA bundle; nativebuild mounts it into its containers."
        )
    else:
        fix = (
            "Set HTTPS_PROXY / NO_PROXY as your network needs (nativebuild forwards them), or "
            "point PIP_INDEX_URL at an index the containers can reach."
        )
    return Check(name=name, status=Status.PROBLEM, detail=f"{where}: {error}", fix=fix)


# --- facts ----------------------------------------------------------------------------------


def probe_index_spec(target: Target, image: str, url: str, index: IndexSettings) -> ContainerSpec:
    environment = {**index.container_environment(), PROBE_URL_VARIABLE: url}
    return ContainerSpec(
        image=image,
        command=(target.runtime.interpreter_path, "-c", PROBE_SCRIPT),
        description=f"reach the package index from {image}",
        platform=target.arch.docker_platform,
        mounts=read_only_mounts(index.container_files()),
        environment=tuple(sorted(environment.items())),
        working_dir="/tmp",
    )


def uname_spec(target: Target, image: str) -> ContainerSpec:
    return ContainerSpec(
        image=image,
        command=("uname", "-m"),
        description=f"run {image} for {target.arch.docker_platform}",
        platform=target.arch.docker_platform,
    )


def binfmt_registered(arch: Architecture, directory: Path) -> bool | None:
    if not directory.is_dir():
        return None
    try:
        text = (directory / f"qemu-{arch.machine}").read_text()
    except OSError:
        return False
    return text.startswith("enabled")
