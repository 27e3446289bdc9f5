"""DockerRunner against a hand-written fake docker client: no engine needed."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from nativebuild.engine.docker import DockerRunner
from nativebuild.engine.orphans import OWNER_LABEL, owner
from nativebuild.engine.runner import (
    LOG_TAIL_LINES,
    ContainerSpec,
    Mount,
    architecture_mismatch,
    host_user,
    iter_lines,
)
from nativebuild.errors import (
    ContainerError,
    DockerUnavailableError,
    ImageNotFoundError,
)

IMAGE = "nativebuild-test/runtime-python3.9:x86_64"
SECRET = "s3cr3t-token-value"  # noqa: S105


class RecordingReporter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def step(self, message: str) -> None:
        self.calls.append(("step", message))

    def detail(self, message: str) -> None:
        self.calls.append(("detail", message))

    def command(self, argv: list[str]) -> None:
        self.calls.append(("command", argv))

    def output(self, line: str) -> None:
        self.calls.append(("output", line))

    def warning(self, message: str) -> None:
        self.calls.append(("warning", message))

    def of(self, kind: str) -> list[object]:
        return [value for k, value in self.calls if k == kind]


class FakeContainer:
    def __init__(self, client: FakeClient, name: str, labels: dict[str, str] | None = None) -> None:
        self.client = client
        self.name = name
        self.id = f"id-{name}"
        self.started = False
        self.labels = labels or {}

    def start(self) -> None:
        self.started = True

    def logs(self, *, stream: bool, follow: bool) -> Iterator[bytes]:
        assert stream
        assert follow
        return iter(self.client.log_source())

    def wait(self) -> dict[str, Any]:
        return {"StatusCode": self.client.exit_code, "Error": None}

    def remove(self, *, force: bool = False) -> None:
        if self.client.remove_error is not None:
            raise self.client.remove_error
        self.client.removed.append((self.name, force))
        del self.client.live[self.name]


class FakeContainers:
    def __init__(self, client: FakeClient) -> None:
        self.client = client

    def create(self, image: str, **kwargs: Any) -> FakeContainer:
        self.client.created.append({"image": image, **kwargs})
        if self.client.create_error is not None:
            if self.client.create_makes_container:  # the engine made it, then the call broke
                self.client.live[kwargs["name"]] = FakeContainer(self.client, kwargs["name"])
            raise self.client.create_error
        container = FakeContainer(self.client, kwargs["name"], kwargs.get("labels"))
        self.client.live[container.name] = container
        return container

    def list(self, *, all: bool, filters: dict[str, str]) -> list[FakeContainer]:
        assert all
        return [c for c in self.client.live.values() if filters["label"] in c.labels]

    def get(self, name: str) -> FakeContainer:
        if name not in self.client.live:
            msg = f"No such container: {name}"
            raise docker.errors.NotFound(msg)
        return self.client.live[name]


class FakeImage:
    def __init__(self, image_id: str, architecture: str) -> None:
        self.id = image_id
        self.attrs = {"Id": image_id, "Architecture": architecture, "Os": "linux"}


class FakeImages:
    def __init__(self, client: FakeClient) -> None:
        self.client = client

    def get(self, name: str) -> FakeImage:
        if name not in self.client.local_images:
            msg = f"No such image: {name}"
            raise docker.errors.ImageNotFound(msg)
        return self.client.local_images[name]

    def pull(self, name: str, *, platform: str | None = None) -> FakeImage:
        self.client.pulls.append((name, platform))
        if name not in self.client.registry:
            msg = f"pull access denied for {name}, repository does not exist"
            raise docker.errors.APIError(msg, explanation=msg)
        self.client.local_images[name] = self.client.registry[name]
        return self.client.registry[name]


class FakeClient:
    """What DockerRunner uses of docker.DockerClient, recording the calls."""

    def __init__(
        self,
        *,
        chunks: Iterable[bytes] = (),
        exit_code: int = 0,
        api_version: str = "1.41",
    ) -> None:
        self.log_source: Callable[[], Iterable[bytes]] = lambda: list(chunks)
        self.exit_code = exit_code
        self.api = SimpleNamespace(api_version=api_version)
        self.containers = FakeContainers(self)
        self.images = FakeImages(self)
        self.created: list[dict[str, Any]] = []
        self.live: dict[str, FakeContainer] = {}
        self.removed: list[tuple[str, bool]] = []
        self.pulls: list[tuple[str, str | None]] = []
        self.local_images = {IMAGE: FakeImage("sha256:" + "a" * 64, "amd64")}
        self.registry: dict[str, FakeImage] = {}
        self.create_error: BaseException | None = None
        self.create_makes_container = False
        self.remove_error: BaseException | None = None
        self.ping_error: BaseException | None = None
        self.closed = False

    def ping(self) -> bool:
        if self.ping_error is not None:
            raise self.ping_error
        return True

    def close(self) -> None:
        self.closed = True


def make_runner(client: FakeClient, **kwargs: Any) -> DockerRunner:
    return DockerRunner(lambda: client, **kwargs)  # type: ignore[arg-type, return-value]


def spec(**overrides: Any) -> ContainerSpec:
    fields: dict[str, Any] = {
        "image": IMAGE,
        "command": ("python3.9", "-c", "print('hi')"),
        "description": "compile markupsafe 2.1.5",
    }
    return ContainerSpec(**(fields | overrides))


# --- iter_lines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"one\ntwo\n"], ["one", "two"]),
        ([b"on", b"e\ntw", b"o\n"], ["one", "two"]),
        ([b"one\n", b"", b"two"], ["one", "two"]),  # last line without a newline
        ([b"a\r\nb\r", b"\n"], ["a", "b"]),
        ([b"\n\n"], ["", ""]),
        (["é\n".encode()[:1], "é\n".encode()[1:]], ["é"]),  # a UTF-8 sequence split in two
        ([b"bad \xff byte\n"], ["bad \ufffd byte"]),
        ([], []),
    ],
)
def test_iter_lines_joins_chunks_that_split_lines(chunks: list[bytes], lines: list[str]) -> None:
    assert list(iter_lines(chunks)) == lines


@given(
    text=st.text(alphabet=st.characters(blacklist_characters="\r", blacklist_categories=("Cs",))),
    cuts=st.lists(st.integers(min_value=0, max_value=200)),
)
def test_iter_lines_is_independent_of_where_chunks_break(text: str, cuts: list[int]) -> None:
    data = text.encode()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    expected = text.split("\n")
    if expected[-1] == "":
        expected.pop()
    assert list(iter_lines(chunks)) == expected


# --- run --------------------------------------------------------------------------------------


def test_run_returns_exit_code_and_lines_split_across_chunks() -> None:
    client = FakeClient(chunks=[b"Building wh", b"eel\nDone", b"\n"], exit_code=0)
    result = make_runner(client).run(spec(), reporter=RecordingReporter())
    assert result.exit_code == 0
    assert result.log_tail == ("Building wheel", "Done")
    assert result.duration_s >= 0


def test_run_keeps_only_the_last_lines() -> None:
    chunks = [f"line {i}\n".encode() for i in range(150)]
    result = make_runner(FakeClient(chunks=chunks)).run(spec(), reporter=RecordingReporter())
    assert LOG_TAIL_LINES == 60
    assert result.log_tail == tuple(f"line {i}" for i in range(90, 150))


@pytest.mark.parametrize("verbose", [True, False])
def test_every_line_reaches_the_reporter_which_decides_what_to_show(verbose: bool) -> None:
    """The pipeline watches container output (the resolution's marker, progress); -v is the
    console's business, not the runner's."""
    reporter = RecordingReporter()
    client = FakeClient(chunks=[b"a\nb", b"\nc\n"])
    make_runner(client).run(spec(), reporter=reporter, verbose=verbose)
    assert reporter.of("output") == ["a", "b", "c"]


@pytest.mark.parametrize(("verbose", "shown"), [(True, True), (False, False)])
def test_the_console_shows_container_output_only_with_verbose(verbose: bool, shown: bool) -> None:
    import io

    from rich.console import Console

    from nativebuild.cli.common import ConsoleReporter

    out = io.StringIO()
    ConsoleReporter(Console(file=out), verbose=verbose, quiet=False).output("compiler says hi")
    assert ("compiler says hi" in out.getvalue()) is shown


def test_run_echoes_the_command() -> None:
    reporter = RecordingReporter()
    make_runner(FakeClient()).run(spec(), reporter=reporter)
    assert reporter.of("command") == [["python3.9", "-c", "print('hi')"]]


def test_container_removed_after_success() -> None:
    client = FakeClient()
    runner = make_runner(client)
    runner.run(spec(), reporter=RecordingReporter())
    assert runner.containers_started == 1
    assert client.removed == [(client.created[0]["name"], True)]
    assert client.live == {}


def test_container_removed_after_nonzero_exit() -> None:
    client = FakeClient(chunks=[b"error: command 'gcc' failed\n"], exit_code=1)
    result = make_runner(client).run(spec(), reporter=RecordingReporter())
    assert result.exit_code == 1
    assert result.log_tail == ("error: command 'gcc' failed",)
    assert client.live == {}


def test_container_removed_when_interrupted_while_streaming_logs() -> None:
    client = FakeClient()

    def interrupted() -> Iterator[bytes]:
        yield b"compiling...\n"
        raise KeyboardInterrupt

    client.log_source = interrupted
    with pytest.raises(KeyboardInterrupt):
        make_runner(client).run(spec(), reporter=RecordingReporter(), verbose=True)
    assert len(client.removed) == 1
    assert client.live == {}


def test_container_removed_when_interrupted_during_create() -> None:
    client = FakeClient()
    client.create_error = KeyboardInterrupt()
    client.create_makes_container = True
    runner = make_runner(client)
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec(), reporter=RecordingReporter())
    assert client.live == {}
    assert runner.containers_started == 0


def test_keep_containers_leaves_the_container_and_says_so() -> None:
    client = FakeClient()
    reporter = RecordingReporter()
    make_runner(client, keep_containers=True).run(spec(), reporter=reporter)
    name = client.created[0]["name"]
    assert client.removed == []
    assert list(client.live) == [name]
    assert any(name in str(message) for message in reporter.of("detail"))


def test_failed_removal_warns_and_keeps_the_result() -> None:
    client = FakeClient(chunks=[b"ok\n"])
    client.remove_error = requests.exceptions.ConnectionError("connection reset")
    reporter = RecordingReporter()
    result = make_runner(client).run(spec(), reporter=reporter)
    assert result.log_tail == ("ok",)
    [warning] = reporter.of("warning")
    assert f"docker rm -f {client.created[0]['name']}" in str(warning)


def test_create_arguments(tmp_path: Path) -> None:
    client = FakeClient()
    (tmp_path / "src").mkdir()
    (tmp_path / "out").mkdir()
    mounts = (
        Mount(source=tmp_path / "src", target="/src"),
        Mount(source=tmp_path / "out", target="/out", read_only=False),
    )
    make_runner(client).run(
        spec(
            platform="linux/arm64",
            mounts=mounts,
            environment=(("HOME", "/tmp"),),
            working_dir="/src",
            network_mode="host",
        ),
        reporter=RecordingReporter(),
    )
    [created] = client.created
    assert created["image"] == IMAGE
    assert created["command"] == ["python3.9", "-c", "print('hi')"]
    assert created["entrypoint"] == [""]  # what `--entrypoint ''` sends: clears the image's
    assert created["platform"] == "linux/arm64"
    assert created["environment"] == {"HOME": "/tmp"}
    assert created["working_dir"] == "/src"
    assert created["network_mode"] == "host"
    assert created["user"] == host_user()
    assert created["labels"] == {"org.nativebuild": "1", OWNER_LABEL: owner()}
    assert created["detach"] is True
    assert "auto_remove" not in created
    assert created["name"].startswith("nativebuild-")
    assert [(m["Type"], m["Source"], m["Target"], m["ReadOnly"]) for m in created["mounts"]] == [
        ("bind", str(tmp_path / "src"), "/src", True),
        ("bind", str(tmp_path / "out"), "/out", False),
    ]
    assert "volumes" not in created


def test_explicit_entrypoint_and_user_are_passed_through() -> None:
    client = FakeClient()
    runner = make_runner(client)
    runner.run(spec(entrypoint=("/bin/sh", "-c"), user="0:0"), reporter=RecordingReporter())
    runner.run(spec(), reporter=RecordingReporter())
    assert client.created[0]["entrypoint"] == ["/bin/sh", "-c"]
    assert client.created[0]["user"] == "0:0"
    assert client.created[0]["name"] != client.created[1]["name"]
    assert runner.containers_started == 2


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ids")
def test_host_user_is_the_invoking_uid_and_gid() -> None:
    assert host_user() == f"{os.getuid()}:{os.getgid()}"


def test_missing_mount_source_is_refused_before_creating(tmp_path: Path) -> None:
    client = FakeClient()
    missing = tmp_path / "nope"
    with pytest.raises(ContainerError, match="nope"):
        make_runner(client).run(
            spec(mounts=(Mount(source=missing, target="/x"),)), reporter=RecordingReporter()
        )
    assert client.created == []


def test_environment_values_never_reach_the_reporter_or_messages() -> None:
    client = FakeClient(chunks=[b"fine\n"])
    reporter = RecordingReporter()
    env = (("PIP_INDEX_URL", f"https://user:{SECRET}@pypi.example/simple"),)
    make_runner(client).run(spec(environment=env), reporter=reporter, verbose=True)
    assert client.created[0]["environment"] == dict(env)
    assert SECRET not in repr(reporter.calls)

    refusing = FakeClient()
    explanation = f"invalid environment variable: {env[0][0]}={env[0][1]}"
    refusing.create_error = docker.errors.APIError("400", explanation=explanation)
    with pytest.raises(ContainerError) as caught:
        make_runner(refusing).run(spec(environment=env), reporter=reporter)
    assert SECRET not in str(caught.value)
    assert IMAGE in str(caught.value)
    assert "compile markupsafe 2.1.5" in str(caught.value)


def test_create_api_error_becomes_container_error() -> None:
    client = FakeClient()
    client.create_error = docker.errors.APIError("500", explanation="no space left on device")
    runner = make_runner(client)
    with pytest.raises(ContainerError, match="no space left on device"):
        runner.run(spec(), reporter=RecordingReporter())
    assert runner.containers_started == 0


def test_create_with_missing_image_becomes_image_not_found() -> None:
    client = FakeClient()
    client.create_error = docker.errors.ImageNotFound("404", explanation="No such image: x")
    with pytest.raises(ImageNotFoundError, match=IMAGE) as caught:
        make_runner(client).run(spec(), reporter=RecordingReporter())
    assert "--build-image" in (caught.value.hint or "")


def test_engine_lost_while_streaming_logs_is_docker_unavailable() -> None:
    client = FakeClient()

    def broken() -> Iterator[bytes]:
        yield b"half"
        msg = "Connection aborted"
        raise requests.exceptions.ConnectionError(msg)

    client.log_source = broken
    with pytest.raises(DockerUnavailableError, match="Connection aborted"):
        make_runner(client).run(spec(), reporter=RecordingReporter())
    assert client.live == {}


def test_engine_lost_when_opening_the_log_stream_is_docker_unavailable() -> None:
    client = FakeClient()

    def unreachable() -> Iterator[bytes]:
        msg = "Connection refused"
        raise requests.exceptions.ConnectionError(msg)

    client.log_source = lambda: list(unreachable())
    with pytest.raises(DockerUnavailableError, match="Connection refused"):
        make_runner(client).run(spec(), reporter=RecordingReporter())
    assert client.live == {}


def test_reporter_failures_are_not_blamed_on_docker() -> None:
    class BrokenPipeReporter(RecordingReporter):
        def output(self, line: str) -> None:
            raise BrokenPipeError

    client = FakeClient(chunks=[b"x\n"])
    with pytest.raises(BrokenPipeError):
        make_runner(client).run(spec(), reporter=BrokenPipeReporter(), verbose=True)
    assert client.live == {}


# --- engine checks ----------------------------------------------------------------------------


def test_constructing_a_runner_does_not_touch_the_engine() -> None:
    calls: list[int] = []

    def factory() -> FakeClient:
        calls.append(1)
        return FakeClient()

    runner = DockerRunner(factory)  # type: ignore[arg-type]
    assert calls == []
    runner.check_engine()
    runner.check_engine()
    assert calls == [1]


@pytest.mark.parametrize(
    "error",
    [
        docker.errors.DockerException("Error while fetching server API version"),
        FileNotFoundError(2, "No such file or directory"),
        requests.exceptions.ConnectionError("Connection refused"),
        ConnectionRefusedError("refused"),
    ],
)
def test_client_creation_failure_is_docker_unavailable(error: Exception) -> None:
    def factory() -> FakeClient:
        raise error

    runner = DockerRunner(factory, docker_host="unix:///run/elsewhere.sock")  # type: ignore[arg-type]
    with pytest.raises(DockerUnavailableError) as caught:
        runner.check_engine()
    assert "DOCKER_HOST=unix:///run/elsewhere.sock" in str(caught.value)
    assert "systemctl start docker" in (caught.value.hint or "")
    assert caught.value.__cause__ is error


def test_default_message_names_the_default_socket() -> None:
    def factory() -> FakeClient:
        msg = "nope"
        raise docker.errors.DockerException(msg)

    with pytest.raises(DockerUnavailableError, match=r"/var/run/docker\.sock"):
        DockerRunner(factory).check_engine()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ConnectionError("Connection refused"),
        docker.errors.APIError("502 Bad Gateway"),
    ],
)
def test_ping_failure_is_docker_unavailable_and_closes_the_client(error: Exception) -> None:
    client = FakeClient()
    client.ping_error = error
    with pytest.raises(DockerUnavailableError):
        make_runner(client).check_engine()
    assert client.closed


def test_permission_denied_hints_at_the_docker_group() -> None:
    def factory() -> FakeClient:
        msg = "('Connection aborted.', PermissionError(13, 'Permission denied'))"
        raise docker.errors.DockerException(msg)

    with pytest.raises(DockerUnavailableError) as caught:
        DockerRunner(factory).check_engine()  # type: ignore[arg-type]
    assert "`docker` group" in (caught.value.hint or "")


def test_platform_needs_api_1_41() -> None:
    runner = make_runner(FakeClient(api_version="1.40"))
    runner.check_engine()  # no platform: fine
    with pytest.raises(DockerUnavailableError, match=r"1\.41"):
        runner.run(spec(platform="linux/amd64"), reporter=RecordingReporter())
    with pytest.raises(DockerUnavailableError, match=r"1\.41"):
        runner.image_id(IMAGE, platform="linux/amd64")


def test_keep_containers_from_env() -> None:
    assert DockerRunner.from_env({"NATIVEBUILD_KEEP_CONTAINER": "1"}).keep_containers
    assert not DockerRunner.from_env({}).keep_containers


# --- image_id ---------------------------------------------------------------------------------


def test_image_id_of_a_local_image_does_not_pull() -> None:
    client = FakeClient()
    assert make_runner(client).image_id(IMAGE, platform="linux/amd64") == "sha256:" + "a" * 64
    assert client.pulls == []


def test_image_id_pulls_a_missing_image_for_the_platform() -> None:
    client = FakeClient()
    client.registry["example/build:arm64"] = FakeImage("sha256:" + "b" * 64, "arm64")
    reporter = RecordingReporter()
    runner = DockerRunner(lambda: client, reporter=reporter)  # type: ignore[arg-type, return-value]
    assert runner.image_id("example/build:arm64", platform="linux/arm64") == "sha256:" + "b" * 64
    assert client.pulls == [("example/build:arm64", "linux/arm64")]
    assert any("example/build:arm64" in str(m) for m in reporter.of("step"))


def test_image_id_of_an_image_that_cannot_be_pulled() -> None:
    with pytest.raises(ImageNotFoundError, match="could not be pulled") as caught:
        make_runner(FakeClient()).image_id("example/missing:1", platform=None)
    assert "example/missing:1" in str(caught.value)
    assert "docker pull example/missing:1" in (caught.value.hint or "")


def test_image_id_refuses_a_local_image_of_the_other_architecture() -> None:
    client = FakeClient()
    with pytest.raises(ImageNotFoundError, match=r"only for linux/amd64.*linux/arm64"):
        make_runner(client).image_id(IMAGE, platform="linux/arm64")
    assert client.pulls == []


@pytest.mark.parametrize(
    ("architecture", "platform", "mismatch"),
    [
        ("amd64", "linux/amd64", False),
        ("amd64", None, False),
        ("arm64", "linux/arm64/v8", False),
        ("aarch64", "linux/arm64", False),
        ("x86_64", "linux/amd64", False),
        ("amd64", "linux/arm64", True),
        ("arm64", "linux/amd64", True),
        ("", "linux/arm64", False),  # unknown: let the engine decide
    ],
)
def test_architecture_mismatch(architecture: str, platform: str | None, mismatch: bool) -> None:
    assert (architecture_mismatch(IMAGE, architecture, platform) is not None) is mismatch


def test_first_contact_removes_containers_of_killed_builds_on_this_host() -> None:
    client = FakeClient()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    host = socket.gethostname()
    for name, label in [("orphan", f"{host}/{dead}/"), ("mine", owner()),
                        ("other-host", f"elsewhere/{dead}/")]:  # fmt: skip
        client.live[name] = FakeContainer(client, name, {OWNER_LABEL: label})
    reporter = RecordingReporter()
    make_runner(client, reporter=reporter).run(spec(), reporter=reporter)
    assert ("orphan", True) in client.removed
    assert "mine" in client.live
    assert "other-host" in client.live
    assert any("left by a killed nativebuild" in str(line) for line in reporter.of("detail"))
    created = client.created[-1]["labels"]
    assert created[OWNER_LABEL] == owner()  # so that the next run can tell
