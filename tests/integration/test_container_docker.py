"""DockerRunner against the real engine and the locally built stand-in runtime image."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from nativebuild.engine.docker import DockerRunner
from nativebuild.engine.runner import ContainerSpec, Mount
from nativebuild.errors import DockerUnavailableError, ImageNotFoundError
from nativebuild.reporting import NullReporter

pytestmark = pytest.mark.docker

RUNTIME = "nativebuild-test/runtime-python3.9:x86_64"


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def image(client: docker.DockerClient) -> Iterator[str]:
    """The stand-in under a tag of this test's own, so that leftover containers can be told
    apart from those of other test runs sharing the engine."""
    tag = f"nativebuild-test/container-it:{uuid.uuid4().hex[:12]}"
    repository, _, version = tag.partition(":")
    client.images.get(RUNTIME).tag(repository, version)
    yield tag
    leftovers = [
        c.name
        for c in client.containers.list(all=True, filters={"label": "org.nativebuild"})
        if c.attrs["Config"]["Image"].startswith(tag)  # derived images too
    ]
    for name in leftovers:
        client.containers.get(name).remove(force=True)
    client.images.remove(tag)
    assert leftovers == [], "containers left behind"


def sh(script: str) -> tuple[str, ...]:
    return ("/bin/sh", "-c", script)


def test_writes_into_a_rw_mount_as_the_invoking_user(image: str, tmp_path: Path) -> None:
    runner = DockerRunner()
    spec = ContainerSpec(
        image=image,
        command=sh("echo built > /out/result.txt"),
        description="write a file",
        mounts=(Mount(source=tmp_path, target="/out", read_only=False),),
    )
    result = runner.run(spec, reporter=NullReporter())
    assert result.exit_code == 0
    written = tmp_path / "result.txt"
    assert written.read_text() == "built\n"
    assert (written.stat().st_uid, written.stat().st_gid) == (os.getuid(), os.getgid())
    assert runner.containers_started == 1


def test_runs_as_an_explicit_user(image: str, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    spec = ContainerSpec(
        image=image,
        command=sh("id -u; touch /out/mine"),
        description="write as 4321",
        mounts=(Mount(source=tmp_path, target="/out", read_only=False),),
        user="4321:4321",
    )
    result = DockerRunner().run(spec, reporter=NullReporter())
    assert result.exit_code == 0
    assert result.log_tail == ("4321",)
    assert (tmp_path / "mine").stat().st_uid == 4321


def test_read_only_mount_cannot_be_written(image: str, tmp_path: Path) -> None:
    spec = ContainerSpec(
        image=image,
        command=sh("touch /src/forbidden"),
        description="write to a read-only mount",
        mounts=(Mount(source=tmp_path, target="/src"),),
    )
    result = DockerRunner().run(spec, reporter=NullReporter())
    assert result.exit_code != 0
    assert any("Read-only file system" in line for line in result.log_tail)
    assert not (tmp_path / "forbidden").exists()


def test_nonzero_exit_comes_back_with_the_log_tail(image: str) -> None:
    spec = ContainerSpec(
        image=image,
        command=sh("echo first; sleep 0.2; echo 'error: gcc failed' >&2; exit 3"),
        description="fail",
    )
    result = DockerRunner().run(spec, reporter=NullReporter())
    assert result.exit_code == 3
    assert result.log_tail == ("first", "error: gcc failed")


def test_long_output_keeps_the_last_60_lines_and_streams_all(image: str) -> None:
    lines: list[str] = []

    class Collecting(NullReporter):
        def output(self, line: str) -> None:
            lines.append(line)

    script = "import sys\nfor i in range(3000): sys.stdout.write(f'line {i} ' + 'x' * 50 + '\\n')"
    spec = ContainerSpec(
        image=image, command=("/var/lang/bin/python3.9", "-c", script), description="print"
    )
    result = DockerRunner().run(spec, reporter=Collecting(), verbose=True)
    expected = [f"line {i} " + "x" * 50 for i in range(3000)]
    assert lines == expected
    assert result.log_tail == tuple(expected[-60:])


def test_environment_working_dir_and_platform(image: str) -> None:
    spec = ContainerSpec(
        image=image,
        command=sh('echo "$GREETING"; pwd'),
        description="read the environment",
        environment=(("GREETING", "hello there"),),
        working_dir="/tmp",
        platform="linux/amd64",
    )
    result = DockerRunner().run(spec, reporter=NullReporter())
    assert result.log_tail == ("hello there", "/tmp")


@pytest.fixture
def image_with_entrypoint(client: docker.DockerClient, image: str) -> Iterator[str]:
    tag = f"{image}-entrypoint"
    dockerfile = f'FROM {image}\nENTRYPOINT ["/bin/false"]\n'.encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False)
    yield tag
    client.images.remove(tag, force=True)  # even if a container was left: `image` reports it


def test_empty_entrypoint_overrides_the_images(image_with_entrypoint: str) -> None:
    spec = ContainerSpec(
        image=image_with_entrypoint, command=("echo", "no entrypoint"), description="echo"
    )
    result = DockerRunner().run(spec, reporter=NullReporter())
    assert (result.exit_code, result.log_tail) == (0, ("no entrypoint",))


def test_explicit_entrypoint_is_used(image_with_entrypoint: str) -> None:
    spec = ContainerSpec(
        image=image_with_entrypoint,
        entrypoint=("/bin/echo", "from-entrypoint"),
        command=("and-command",),
        description="echo",
    )
    result = DockerRunner().run(spec, reporter=NullReporter())
    assert result.log_tail == ("from-entrypoint and-command",)


def test_interrupt_while_running_removes_the_container(image: str) -> None:
    class Interrupting(NullReporter):
        def output(self, line: str) -> None:
            raise KeyboardInterrupt

    spec = ContainerSpec(image=image, command=sh("echo started; sleep 60"), description="sleep")
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        DockerRunner().run(spec, reporter=Interrupting(), verbose=True)
    assert time.monotonic() - began < 30  # the fixture checks nothing is left


def test_keep_containers_keeps_it(client: docker.DockerClient, image: str) -> None:
    kept: list[str] = []

    class Recording(NullReporter):
        def detail(self, message: str) -> None:
            kept.append(message)

    spec = ContainerSpec(image=image, command=("true",), description="keep")
    DockerRunner(keep_containers=True).run(spec, reporter=Recording())
    [mine] = [
        c
        for c in client.containers.list(all=True, filters={"label": "org.nativebuild"})
        if c.attrs["Config"]["Image"] == image
    ]
    assert mine.name in kept[0]
    mine.remove(force=True)


def test_image_id_of_a_local_image(client: docker.DockerClient) -> None:
    runner = DockerRunner()
    found = runner.image_id(RUNTIME, platform="linux/amd64")
    assert found == client.images.get(RUNTIME).id
    assert found.startswith("sha256:")


def test_image_id_of_a_missing_image_fails_quickly() -> None:
    began = time.monotonic()
    with pytest.raises(ImageNotFoundError, match="could not be pulled") as caught:
        DockerRunner().image_id("nativebuild-test/no-such-image:nope", platform="linux/amd64")
    assert "nativebuild-test/no-such-image:nope" in str(caught.value)
    assert time.monotonic() - began < 30


def test_image_id_of_the_other_architecture() -> None:
    with pytest.raises(ImageNotFoundError, match=r"only for linux/amd64"):
        DockerRunner().image_id(RUNTIME, platform="linux/arm64")


def test_engine_at_a_missing_socket_is_unavailable() -> None:
    runner = DockerRunner(lambda: docker.DockerClient(base_url="unix:///nonexistent.sock"))
    with pytest.raises(DockerUnavailableError) as caught:
        runner.check_engine()
    assert "systemctl start docker" in (caught.value.hint or "")

    from_env = DockerRunner.from_env({"DOCKER_HOST": "unix:///nonexistent.sock"})
    with pytest.raises(DockerUnavailableError, match=r"DOCKER_HOST=unix:///nonexistent\.sock"):
        from_env.check_engine()


def test_the_warm_path_asks_the_local_socket_and_gets_the_sdks_answer(
    client: docker.DockerClient, image: str
) -> None:
    """A warm build's image id comes over the socket without the SDK; it must be the id the
    SDK reports, and a runner whose engine knows the image never builds an SDK client."""
    env = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
    runner = DockerRunner.from_env(env)
    assert runner.image_id(image, platform="linux/amd64") == client.images.get(image).id
    assert runner._client is None
