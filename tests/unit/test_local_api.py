"""The warm path's questions to a local engine, over a real unix socket and real HTTP: a small
server plays the engine's answers (the integration tier asks the real engine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nativebuild.engine.docker import DockerRunner
from nativebuild.engine.local_api import (
    LocalEngineAPI,
    json_messages,
    load_over_socket,
    quick_image_id,
)
from nativebuild.engine.orphans import OWNER_LABEL, owner
from nativebuild.errors import ContainerError, DockerUnavailableError
from tests.engine_socket import Engine, serve_engine
from tests.fakes import RecordingReporter

pytestmark = pytest.mark.local_api

IMAGE_ID = "sha256:" + "ab" * 32


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Engine, LocalEngineAPI]]:
    path = str(tmp_path / "engine.sock")
    with serve_engine(path) as state:
        yield state, LocalEngineAPI(path)


def test_from_env_takes_local_sockets_only() -> None:
    assert LocalEngineAPI.from_env({}).socket_path == "/var/run/docker.sock"  # type: ignore[union-attr]
    found = LocalEngineAPI.from_env({"DOCKER_HOST": "unix:///run/podman.sock"})
    assert found is not None
    assert found.socket_path == "/run/podman.sock"
    assert LocalEngineAPI.from_env({"DOCKER_HOST": "tcp://h:2376"}) is None
    assert LocalEngineAPI.from_env({"DOCKER_HOST": "ssh://u@h"}) is None
    assert LocalEngineAPI.from_env({"DOCKER_TLS_VERIFY": "1"}) is None


def test_an_image_the_engine_has_gives_its_id_in_one_request(
    engine: tuple[Engine, LocalEngineAPI],
) -> None:
    state, api = engine
    state.images["example/build:x86_64"] = {"Id": IMAGE_ID, "Architecture": "amd64"}
    reporter = RecordingReporter()
    assert quick_image_id(api, "example/build:x86_64", "linux/amd64", reporter=reporter) == IMAGE_ID
    assert [r for r in state.requests if r[0] == "GET" and r[1].startswith("/images/")] == [
        ("GET", "/images/example%2Fbuild%3Ax86_64/json")
    ]


@pytest.mark.parametrize(
    ("images", "platform"),
    [
        ({}, "linux/amd64"),  # to pull: the SDK's job
        ({"img": {"Id": IMAGE_ID, "Architecture": "amd64"}}, "linux/arm64"),  # wrong machine
        ({"img": {"Architecture": "amd64"}}, "linux/amd64"),  # no id: not an answer we know
    ],
)
def test_anything_else_goes_to_the_sdk(
    engine: tuple[Engine, LocalEngineAPI], images: dict[str, Any], platform: str
) -> None:
    state, api = engine
    state.images.update(images)
    assert quick_image_id(api, "img", platform, reporter=None) is None


def test_no_engine_at_the_socket_goes_to_the_sdk(tmp_path: Path) -> None:
    api = LocalEngineAPI(str(tmp_path / "nothing.sock"))
    assert quick_image_id(api, "img", None, reporter=None) is None


def test_first_contact_removes_what_killed_builds_left_once(
    engine: tuple[Engine, LocalEngineAPI],
) -> None:
    state, api = engine
    state.images["img"] = {"Id": IMAGE_ID, "Architecture": "amd64"}
    host = owner().split("/")[0]
    state.containers = [
        {"Names": ["/dead"], "Labels": {OWNER_LABEL: f"{host}/999999999/1"}},
        {"Names": ["/mine"], "Labels": {OWNER_LABEL: owner()}},  # this live process
        {"Names": ["/other-host"], "Labels": {OWNER_LABEL: "elsewhere/1/1"}},
    ]
    reporter = RecordingReporter()
    assert quick_image_id(api, "img", None, reporter=reporter) == IMAGE_ID
    assert [c["Names"][0] for c in state.containers] == ["/mine", "/other-host"]
    assert quick_image_id(api, "img", None, reporter=reporter) == IMAGE_ID
    listings = [r for r in state.requests if r[1].startswith("/containers/json")]
    assert len(listings) == 1


def test_a_load_streams_the_archive_as_it_comes_and_returns_the_engine_lines(
    engine: tuple[Engine, LocalEngineAPI],
) -> None:
    state, api = engine
    parts = [b"a" * 70000, b"", b"tail"]  # several chunks, an empty one among them
    lines = load_over_socket(api, iter(parts), engine="test")
    assert state.loaded == [b"".join(parts)]
    assert state.requests == [("POST", "/images/load?quiet=1")]
    assert lines == ("Loaded image: x:y",)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, b'{"errorDetail":{"message":"no space left"},"error":"no space left"}'), "no space"),
        ((500, b'{"message":"invalid tar header"}'), "invalid tar header"),
        ((500, b"plain text"), "plain text"),
    ],
)
def test_a_refused_load_is_a_container_error_with_the_engine_words(
    engine: tuple[Engine, LocalEngineAPI], answer: tuple[int, bytes], expected: str
) -> None:
    state, api = engine
    state.load_answer = answer
    with pytest.raises(ContainerError, match=expected):
        load_over_socket(api, iter([b"x"]), engine="test")


def test_a_load_with_no_engine_at_the_socket_says_the_engine_is_unreachable(
    tmp_path: Path,
) -> None:
    api = LocalEngineAPI(str(tmp_path / "nothing.sock"))
    with pytest.raises(DockerUnavailableError, match="load an image"):
        load_over_socket(api, iter([b"x"]), engine="test")


def test_streamed_json_answers_are_split_into_their_messages() -> None:
    body = b'{"stream":"a"}\r\n{"stream":"b"}\n  {"status":"c"}'
    assert json_messages(body) == [{"stream": "a"}, {"stream": "b"}, {"status": "c"}]
    assert json_messages(b"") == []
    assert json_messages(b'{"stream":"a"}\nnot json') == [{"stream": "a"}, {"message": "not json"}]
    assert json_messages(b"[1]") == [{"message": "[1]"}]


def test_a_runner_inspects_and_loads_over_the_socket_without_the_sdk(
    engine: tuple[Engine, LocalEngineAPI],
) -> None:
    state, api = engine
    layer = "sha256:" + "1" * 64
    state.images["img:x"] = {"Id": IMAGE_ID, "RepoDigests": ["img@sha256:" + "2" * 64],
                             "RootFS": {"Type": "layers", "Layers": [layer]}}  # fmt: skip

    def no_sdk() -> Any:
        msg = "the docker SDK was asked"
        raise AssertionError(msg)

    runner = DockerRunner(no_sdk, local_api=api)
    found = runner.local_image("img:x")
    assert found is not None
    assert (found.id, found.layers, found.repo_digests) == (
        IMAGE_ID,
        (layer,),
        ("img@sha256:" + "2" * 64,),
    )
    assert runner.local_image("other:x") is None
    assert runner.load_image(iter([b"tar bytes"])) == ("Loaded image: x:y",)
    assert state.loaded == [b"tar bytes"]
