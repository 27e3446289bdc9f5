"""`nativebuild doctor`: each decision from facts, the executor against a fake engine, and the
index probe script against a local HTTP server."""

from __future__ import annotations

import dataclasses
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from nativebuild.config.settings import Settings
from nativebuild.doctor import checks as doctor
from nativebuild.doctor import run as doctor_run
from nativebuild.doctor.checks import Status
from nativebuild.engine.runner import ContainerResult, ContainerSpec, EngineInfo, ImageInfo
from nativebuild.errors import CacheError, DockerUnavailableError, ImageNotFoundError
from nativebuild.index.pip_config import CA_BUNDLE_IN_CONTAINER, IndexSettings
from nativebuild.reporting import NullReporter, Reporter
from nativebuild.targets import Architecture

ENGINE = EngineInfo(
    version="20.10.24", api_version="1.41", architecture="x86_64", root_dir="/var/lib/docker"
)
X86, ARM = Architecture.X86_64, Architecture.ARM64


def image(ref: str) -> ImageInfo:
    return ImageInfo(
        id="sha256:" + "a" * 64, tags=(ref,), repo_digests=(), labels={},
        architecture="amd64", created="", size=1,
    )  # fmt: skip


class FakeEngine:
    """An engine with some local images, a registry, and containers whose output is scripted
    by their command's first word."""

    def __init__(
        self,
        *,
        engine: EngineInfo | None = ENGINE,
        local: tuple[str, ...] = (),
        registry: Mapping[str, str] | None = None,
        outputs: Mapping[str, ContainerResult] | None = None,
    ) -> None:
        self.engine = engine
        self.local = set(local)
        self.registry = dict(registry or {})
        self.outputs = dict(outputs or {})
        self.specs: list[ContainerSpec] = []

    def engine_info(self) -> EngineInfo:
        if self.engine is None:
            msg = "Cannot reach the Docker engine at unix:///nowhere"
            raise DockerUnavailableError(msg, hint="Start a Docker engine.")
        return self.engine

    def local_image(self, image_ref: str) -> ImageInfo | None:
        return image(image_ref) if image_ref in self.local else None

    def registry_digest(self, image_ref: str) -> str:
        if image_ref in self.registry:
            return self.registry[image_ref]
        msg = f"no such host for {image_ref}"
        raise ImageNotFoundError(msg)

    def run(
        self, spec: ContainerSpec, *, reporter: Reporter, verbose: bool = False
    ) -> ContainerResult:
        self.specs.append(spec)
        key = "uname" if spec.command[0] == "uname" else "probe"
        return self.outputs[key]


def result(*lines: str, code: int = 0) -> ContainerResult:
    return ContainerResult(exit_code=code, log_tail=lines, duration_s=0.1)


def settings(tmp_path: Path, *archs: Architecture) -> Settings:
    return Settings(
        runtime="python3.9",
        archs=archs or (X86,),
        build_image="local/build:{arch}",
        runtime_image="local/runtime:{arch}",
        cache_dir=tmp_path / "cache",
    )


def by_name(report: doctor.DoctorReport) -> dict[str, doctor.Check]:
    return {check.name: check for check in report.checks}


# --- decisions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "status"), [("1.41", Status.OK), ("1.43", Status.OK), ("1.40", Status.PROBLEM)]
)
def test_engine_api_must_allow_choosing_a_platform(api: str, status: Status) -> None:
    info = EngineInfo(version="x", api_version=api, architecture="x86_64", root_dir="/")
    check = doctor.check_engine(info, None)
    assert check.status is status
    assert ("20.10" in check.fix) is (status is Status.PROBLEM)


def test_engine_down_carries_the_error_and_its_hint() -> None:
    error = DockerUnavailableError("Cannot reach the engine", hint="Start dockerd.")
    check = doctor.check_engine(None, error)
    assert check.status is Status.PROBLEM
    assert check.detail == "Cannot reach the engine"
    assert check.fix == "Start dockerd."


@pytest.mark.parametrize(
    ("arch", "binfmt", "probe", "status", "words"),
    [
        (X86, None, None, Status.OK, "native"),
        (ARM, True, "aarch64", Status.OK, "says aarch64"),
        (ARM, False, "aarch64", Status.OK, "says aarch64"),  # a builder without binfmt here
        (ARM, True, "exit 1: exec format error", Status.PROBLEM, "exec format error"),
        (ARM, True, None, Status.OK, "qemu-aarch64 is registered"),
        (ARM, False, None, Status.PROBLEM, "no binfmt handler qemu-aarch64"),
        (ARM, None, None, Status.SKIPPED, "cannot tell"),
    ],
)
def test_emulation(
    arch: Architecture, binfmt: bool | None, probe: str | None, status: Status, words: str
) -> None:
    check = doctor.check_emulation(
        arch, engine_machine="x86_64", binfmt=binfmt, probe=probe, probe_image="img",
        needed=True,
    )  # fmt: skip
    assert check.status is status
    assert words in check.detail
    assert ("tonistiigi/binfmt" in check.fix) is (status is Status.PROBLEM)


def test_image_present_pullable_or_neither() -> None:
    local = doctor.check_image("build", "a:1", local=image("a:1"), registry=None, error=None)
    pullable = doctor.check_image("build", "a:1", local=None, registry="sha256:ff", error=None)
    missing = doctor.check_image("runtime", "a:1", local=None, registry=None, error="no host")
    assert (local.status, pullable.status, missing.status) == (
        Status.OK, Status.OK, Status.PROBLEM,
    )  # fmt: skip
    assert "present" in local.detail
    assert "pullable" in pullable.detail
    assert "no host" in missing.detail
    assert "--runtime-image" in missing.fix


@pytest.mark.parametrize(
    ("free", "status"), [(None, Status.SKIPPED), (10 * doctor.GIB, Status.OK), (1, Status.PROBLEM)]
)
def test_disk(free: int | None, status: Status) -> None:
    check = doctor.check_disk("cache", Path("/x"), free=free, minimum=doctor.GIB)
    assert check.status is status


@pytest.mark.parametrize(
    ("outcome", "status", "fix"),
    [
        ({"status": 200}, Status.OK, ""),
        ({"status": 404}, Status.OK, ""),
        ({"status": 401}, Status.PROBLEM, "netrc"),
        ({"status": 407}, Status.PROBLEM, "HTTPS_PROXY"),
        ({"status": 503}, Status.PROBLEM, "try again"),
        ({"error": "URLError: [SSL: CERTIFICATE_VERIFY_FAILED] ..."}, Status.PROBLEM, "PIP_CERT"),
        ({"error": "URLError: [Errno -2] Name or service not known"}, Status.PROBLEM, "PROXY"),
    ],
)
def test_index_outcomes(outcome: dict[str, object], status: Status, fix: str) -> None:
    check = doctor.check_index("https://user:secret@mirror.example/simple", "img", outcome)
    assert check.status is status
    assert fix in check.fix
    assert "secret" not in check.detail


def test_probe_output_is_read_from_the_last_json_line() -> None:
    assert doctor.parse_probe(result("noise", '{"status": 200}')) == {"status": 200}
    failed = doctor.parse_probe(result("python3.9: not found", code=127))
    assert "exited with 127" in str(failed["error"])
    assert "not found" in str(failed["error"])


def test_probe_spec_forwards_ca_and_keeps_credentials_out_of_the_command(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("CA")
    index = IndexSettings(index_url="https://u:secret@mirror.example/simple", ca_bundle=bundle)
    target = settings(tmp_path).targets()[0]
    spec = doctor.probe_index_spec(target, "img", index.index_url, index)
    env = dict(spec.environment)
    assert env[doctor.PROBE_URL_VARIABLE] == "https://u:secret@mirror.example/simple"
    assert env["PIP_CERT"] == CA_BUNDLE_IN_CONTAINER
    assert [m.target for m in spec.mounts] == [CA_BUNDLE_IN_CONTAINER]
    assert not any("secret" in part for part in spec.command)
    assert spec.command[0] == "/var/lang/bin/python3.9"
    assert spec.platform == "linux/amd64"


def test_binfmt_registration(tmp_path: Path) -> None:
    assert doctor.binfmt_registered(ARM, tmp_path / "absent") is None
    assert doctor.binfmt_registered(ARM, tmp_path) is False
    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /usr/bin/qemu-aarch64\n")
    assert doctor.binfmt_registered(ARM, tmp_path) is False
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64\n")
    assert doctor.binfmt_registered(ARM, tmp_path) is True


def test_cache_directory_size_and_writability(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert "created on first build" in doctor_run.cache_facts(cache).detail
    (cache / "wheels").mkdir(parents=True)
    (cache / "wheels" / "a.whl").write_bytes(b"x" * 1000)
    (cache / "b.json").write_bytes(b"{}")
    check = doctor_run.cache_facts(cache)
    assert check.status is Status.OK
    assert "in 2 files" in check.detail
    assert list(cache.glob(".doctor-*")) == [], "the probe file is removed"


def test_a_cache_path_that_is_a_file_is_a_problem(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a directory")
    check = doctor_run.cache_facts(cache)
    assert check.status is Status.PROBLEM
    assert "--cache-dir" in check.fix


@pytest.mark.parametrize(
    ("host", "local"),
    [("", True), ("unix:///run/user/1000/docker.sock", True), ("tcp://10.0.0.2:2376", False),
     ("ssh://builder", False)],
)  # fmt: skip
def test_engine_locality(host: str, local: bool) -> None:
    assert doctor_run.engine_is_local({"DOCKER_HOST": host} if host else {}) is local


# --- run_doctor -----------------------------------------------------------------------------


def test_all_good_on_x86_with_arm64_emulated(tmp_path: Path) -> None:
    engine = FakeEngine(
        local=("local/build:x86_64", "local/runtime:x86_64", "local/runtime:arm64"),
        outputs={"uname": result("aarch64"), "probe": result('{"status": 200}')},
    )
    report = doctor_run.run_doctor(
        settings(tmp_path), runner=engine, env={}, reporter=NullReporter(), binfmt_dir=tmp_path
    )
    checks = by_name(report)
    assert report.ok, report.to_json()
    assert checks["docker engine"].status is Status.OK
    assert checks["build image (x86_64)"].status is Status.OK
    assert checks["run x86_64 containers"].detail == "native"
    arm = checks["run arm64 containers"]
    assert (arm.status, arm.needed) == (Status.OK, False)
    assert checks["package index from a container"].status is Status.OK
    assert checks["remote cache"].status is Status.SKIPPED
    uname = next(s for s in engine.specs if s.command[0] == "uname")
    assert (uname.image, uname.platform) == ("local/runtime:arm64", "linux/arm64")
    probe = next(s for s in engine.specs if s.command[0] != "uname")
    assert probe.image == "local/build:x86_64"
    assert json.loads(json.dumps(report.to_json()))["ok"] is True


def test_an_unconfigured_arch_problem_does_not_fail_the_report(tmp_path: Path) -> None:
    engine = FakeEngine(
        local=("local/build:x86_64", "local/runtime:x86_64"),
        outputs={"probe": result('{"status": 200}')},
    )
    report = doctor_run.run_doctor(
        settings(tmp_path), runner=engine, env={}, reporter=NullReporter(), binfmt_dir=tmp_path
    )
    arm = by_name(report)["run arm64 containers"]
    assert arm.status is Status.PROBLEM
    assert report.ok


def test_a_configured_arch_that_cannot_run_fails_the_report(tmp_path: Path) -> None:
    engine = FakeEngine(
        local=("local/build:x86_64", "local/runtime:x86_64", "local/build:arm64"),
        outputs={"uname": result("exec /usr/bin/uname: exec format error", code=1),
                 "probe": result('{"status": 200}')},
    )  # fmt: skip
    report = doctor_run.run_doctor(
        settings(tmp_path, X86, ARM), runner=engine, env={}, reporter=NullReporter(),
        binfmt_dir=tmp_path,
    )  # fmt: skip
    arm = by_name(report)["run arm64 containers"]
    assert (arm.status, arm.needed) == (Status.PROBLEM, True)
    assert "exec format error" in arm.detail
    assert not report.ok


def test_pullable_images_pass_and_the_probe_is_skipped_without_a_local_image(
    tmp_path: Path,
) -> None:
    engine = FakeEngine(
        registry={"local/build:x86_64": "sha256:" + "1" * 64,
                  "local/runtime:x86_64": "sha256:" + "2" * 64},
    )  # fmt: skip
    report = doctor_run.run_doctor(
        settings(tmp_path), runner=engine, env={}, reporter=NullReporter(), binfmt_dir=tmp_path
    )
    checks = by_name(report)
    assert "pullable" in checks["build image (x86_64)"].detail
    assert checks["package index from a container"].status is Status.SKIPPED
    assert engine.specs == [], "nothing is pulled or run"
    assert report.ok


def test_engine_down_skips_container_checks_and_fails(tmp_path: Path) -> None:
    engine = FakeEngine(engine=None)
    report = doctor_run.run_doctor(
        settings(tmp_path), runner=engine, env={}, reporter=NullReporter(), binfmt_dir=tmp_path
    )
    checks = by_name(report)
    assert checks["docker engine"].status is Status.PROBLEM
    assert checks["container checks"].status is Status.SKIPPED
    assert checks["cache directory"].status is Status.OK
    assert not report.ok
    assert report.to_json()["ok"] is False


def test_a_missing_build_image_fails(tmp_path: Path) -> None:
    engine = FakeEngine(
        local=("local/runtime:x86_64",), outputs={"probe": result('{"status": 200}')}
    )
    report = doctor_run.run_doctor(
        settings(tmp_path), runner=engine, env={}, reporter=NullReporter(), binfmt_dir=tmp_path
    )
    assert by_name(report)["build image (x86_64)"].status is Status.PROBLEM
    assert not report.ok


def test_a_remote_engine_gets_no_host_binfmt_or_disk_answers(tmp_path: Path) -> None:
    (tmp_path / "qemu-aarch64").write_text("enabled\n")
    engine = FakeEngine(
        local=("local/build:x86_64", "local/runtime:x86_64"),
        outputs={"probe": result('{"status": 200}')},
    )
    report = doctor_run.run_doctor(
        settings(tmp_path), runner=engine, env={"DOCKER_HOST": "tcp://remote:2376"},
        reporter=NullReporter(), binfmt_dir=tmp_path,
    )  # fmt: skip
    checks = by_name(report)
    assert checks["run arm64 containers"].status is Status.SKIPPED
    assert checks["disk space (docker engine)"].status is Status.SKIPPED


# --- the probe script, for real, against a local server -------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        _Handler.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200 if self.path == "/simple/pip/" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def run_probe(url: str, **env: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", doctor.PROBE_SCRIPT],
        env={doctor.PROBE_URL_VARIABLE: url, "NO_PROXY": "*", **env},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    parsed: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed


def test_probe_fetches_the_pip_page_with_url_credentials(server: str) -> None:
    assert run_probe(f"http://alice:s3cret@{server}/simple") == {"status": 200}
    path, auth = _Handler.seen[-1]
    assert path == "/simple/pip/"
    assert auth == "Basic YWxpY2U6czNjcmV0"  # alice:s3cret


def test_probe_uses_netrc_credentials(server: str, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login bob password pw\n")
    netrc.chmod(0o600)
    assert run_probe(f"http://{server}/other/", NETRC=str(netrc)) == {"status": 404}
    assert _Handler.seen[-1] == ("/other/pip/", "Basic Ym9iOnB3")  # bob:pw


def test_probe_reports_a_connection_failure() -> None:
    outcome = run_probe("http://127.0.0.1:9/simple")
    assert "error" in outcome


def test_remote_cache_is_checked_only_when_configured(tmp_path: Path) -> None:
    probed: list[str | None] = []

    def probe(checked: Settings) -> None:
        probed.append(checked.cache)
        if checked.cache == "s3://denied/x":
            msg = "Cannot read s3://denied/x/v1/json/...: AccessDenied"
            raise CacheError(msg, hint="Check the AWS credentials.")

    def run(cache: str | None) -> doctor.Check:
        chosen = dataclasses.replace(settings(tmp_path), cache=cache)
        report = doctor_run.run_doctor(
            chosen, runner=FakeEngine(engine=None), env={}, reporter=NullReporter(),
            binfmt_dir=tmp_path, remote_probe=probe,
        )  # fmt: skip
        return by_name(report)["remote cache"]

    unset, good, denied = run(None), run("s3://good/x"), run("s3://denied/x")
    assert probed == ["s3://good/x", "s3://denied/x"]
    assert (unset.status, unset.needed) == (Status.SKIPPED, False)
    assert good.status is Status.OK
    assert (denied.status, denied.needed) == (Status.PROBLEM, True)
    assert "AccessDenied" in denied.detail
    assert denied.fix == "Check the AWS credentials."
