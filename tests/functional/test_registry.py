"""``publish --image`` against a registry on 127.0.0.1 that speaks the distribution API with
token auth (Docker Hub's and GHCR's scheme; Debian's docker-registry, in the integration tier,
does Basic), and docker's credentials as ``docker login`` leaves them."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import re
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.aws.docker_auth import credentials_for
from nativebuild.aws.registry import ImageRef
from nativebuild.errors import ConfigError, PublishError
from tests.fakes import FakeIndex, FakeRunner
from tests.functional.image_project import build, fake_engine, image_index, make_project, ok

TOKEN = "t0ken"  # noqa: S105 - the fake registry's


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    return image_index(tmp_path)


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    return fake_engine(index, monkeypatch)


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """Blobs and manifests in memory; every /v2/ call needs ``Bearer t0ken``, which /token
    gives for Basic ``nb:secret``."""

    blobs: dict[str, bytes]
    manifests: dict[str, tuple[str, bytes]]
    uploads: list[str]
    token_requests: list[dict[str, list[str]]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        realm = f"http://{self.headers['Host']}/token"
        challenge = f'Bearer realm="{realm}",service="fake",scope="repository:app:pull,push"'
        self._reply(401, {"WWW-Authenticate": challenge})
        return False

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/token":
            self.token_requests.append(urllib.parse.parse_qs(url.query))
            if (
                self.headers.get("Authorization")
                != "Basic " + base64.b64encode(b"nb:secret").decode()
            ):
                self._reply(401)
                return
            self._reply(200, body=json.dumps({"token": TOKEN}).encode())
            return
        self._reply(404)

    def do_HEAD(self) -> None:
        if not self._authorized():
            return
        found = re.fullmatch(r"/v2/(.+)/(blobs|manifests)/(.+)", self.path)
        if found and found[2] == "blobs" and found[3] in self.blobs:
            self._reply(200, {"Docker-Content-Digest": found[3]})
        elif found and found[2] == "manifests" and f"{found[1]}:{found[3]}" in self.manifests:
            digest, _ = self.manifests[f"{found[1]}:{found[3]}"]
            self._reply(200, {"Docker-Content-Digest": digest})
        else:
            self._reply(404)

    def do_POST(self) -> None:
        if self._authorized():
            self._reply(202, {"Location": "/v2/app/blobs/uploads/u1?_state=x"})

    def do_PUT(self) -> None:
        if not self._authorized():
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        url = urllib.parse.urlsplit(self.path)
        found = re.fullmatch(r"/v2/(.+)/manifests/(.+)", url.path)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if found:
            self.manifests[f"{found[1]}:{found[2]}"] = (digest, body)
            self._reply(201, {"Docker-Content-Digest": digest})
            return
        wanted = urllib.parse.parse_qs(url.query)["digest"][0]
        if wanted != digest:
            self._reply(400, body=b"DIGEST_INVALID")
            return
        self.blobs[digest] = body
        self.uploads.append(digest)
        self._reply(201, {"Docker-Content-Digest": digest})


@contextlib.contextmanager
def fake_registry() -> Iterator[tuple[str, type[FakeRegistry]]]:
    handler = type(
        "Handler",
        (FakeRegistry,),
        {"blobs": {}, "manifests": {}, "uploads": [], "token_requests": []},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def docker_login(directory: Path, host: str, user: str = "nb", password: str = "secret") -> Path:  # noqa: S107
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(
        json.dumps({"auths": {f"https://{host}": {"auth": auth}}})
    )
    return directory


def publish(project: Path, image: str, docker_config: Path, *extra: str) -> Any:
    args = [
        "publish",
        "--manifest",
        str(project / "dist" / "manifest.json"),
        "--image",
        image,
        "--json",
        *extra,
    ]
    return CliRunner().invoke(cli.app, args, env={"DOCKER_CONFIG": str(docker_config)})


def test_push_sends_each_blob_once_and_nothing_the_second_time(
    tmp_path: Path, fake: FakeRunner
) -> None:
    project = make_project(tmp_path / "project")
    built = ok(build(project, tmp_path / "cache"))["archives"][0]["image"]
    with fake_registry() as (host, registry):
        login = docker_login(tmp_path / "docker", host)
        first = publish(project, f"{host}/app:{{runtime}}-{{arch}}", login)
        assert first.exit_code == 0, first.stderr
        (pushed,) = json.loads(first.stdout)["published"]
        assert pushed["action"] == "push"
        assert pushed["arn"] == f"{host}/app@{built['manifest_digest']}"
        assert pushed["target"] == f"image:{host}/app:python3.9-x86_64"
        blobs = 1 + len(built["base"]["layers"]) + len(built["layers"])  # config and layers
        assert len(registry.uploads) == blobs
        digest, manifest = registry.manifests["app:python3.9-x86_64"]
        assert digest == built["manifest_digest"]
        assert json.loads(manifest)["config"]["digest"] == built["id"]
        assert registry.token_requests[0]["scope"] == ["repository:app:pull,push"]

        second = publish(project, f"{host}/app:{{runtime}}-{{arch}}", login)
        assert second.exit_code == 0, second.stderr
        assert json.loads(second.stdout)["skipped"][0]["reason"].endswith("is this image already")
        assert len(registry.uploads) == blobs

        # A code change: only the new code layer and config go; the rest is there already.
        (project / "app" / "handler.py").write_text("def handler(event, context):\n    return 9\n")
        ok(build(project, tmp_path / "cache"))
        third = publish(project, f"{host}/app:{{runtime}}-{{arch}}", login)
        assert third.exit_code == 0, third.stderr
        assert len(registry.uploads) == blobs + 2
        assert json.loads(third.stdout)["published"][0]["reason"].startswith("2 of ")


def test_build_publish_pushes_what_it_built(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    with fake_registry() as (host, registry):
        login = docker_login(tmp_path / "docker", host)
        result = build(
            project, tmp_path / "cache", "--publish", "--image", f"{host}/app:{{arch}}",
            env={"DOCKER_CONFIG": str(login)},
        )  # fmt: skip
        image = ok(result)["archives"][0]["image"]  # stdout stays one JSON object
        assert registry.manifests["app:x86_64"][0] == image["manifest_digest"]
        assert f"{host}/app@{image['manifest_digest']}" in result.stderr


def test_dry_run_sends_nothing(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    ok(build(project, tmp_path / "cache"))
    with fake_registry() as (host, registry):
        result = publish(
            project, f"{host}/app:v1", docker_login(tmp_path / "docker", host), "--dry-run"
        )
        assert result.exit_code == 0, result.stderr
        document = json.loads(result.stdout)
        assert document["dry_run"] is True
        assert "to send" in document["published"][0]["reason"]
        assert registry.uploads == []
        assert registry.manifests == {}


def test_refused_login_is_a_publish_error(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    ok(build(project, tmp_path / "cache"))
    with fake_registry() as (host, registry):
        wrong = docker_login(tmp_path / "docker", host, password="wrong")  # noqa: S106
        result = publish(project, f"{host}/app:v1", wrong)
        assert result.exit_code == 16
        assert "token service refused" in result.stderr
        assert "docker login" in result.stderr
        assert "wrong" not in result.stderr  # no secret in messages
        none = tmp_path / "nobody"
        none.mkdir()
        assert publish(project, f"{host}/app:v1", none).exit_code == 16
        assert registry.uploads == []


def test_two_architectures_need_their_own_tags(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    ok(build(project, tmp_path / "cache", "--arch", "arm64"))
    with fake_registry() as (host, _):
        result = publish(project, f"{host}/app:latest", docker_login(tmp_path / "docker", host))
        assert result.exit_code == 2
        assert "Put {arch}" in result.stderr


def test_a_manifest_without_images_is_refused(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    ok(build(project, tmp_path / "cache", "--kind", "function"))
    result = publish(project, "127.0.0.1:1/app:v1", tmp_path)
    assert result.exit_code == 2
    assert "has no image" in result.stderr


# --- references and credentials ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/app:v1", ("127.0.0.1:5000", "app", "v1")),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/orders:python3.12-arm64",
         ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "team/orders", "python3.12-arm64")),
        ("localhost/a.b_c-d:latest", ("localhost", "a.b_c-d", "latest")),
    ],
)  # fmt: skip
def test_image_references(text: str, expected: tuple[str, str, str]) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag) == expected
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "app:v1",
        "docker.io/App:v1",
        "127.0.0.1:5000/app",
        "host.io/app:",
        "host.io/:v1",
        "host.io/app:v 1",
    ],
)
def test_bad_image_references(text: str) -> None:
    with pytest.raises(ConfigError, match="REGISTRY/REPOSITORY:TAG"):
        ImageRef.parse(text)


def test_credentials_from_a_helper_then_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helpers = tmp_path / "bin"
    helpers.mkdir()
    helper = helpers / "docker-credential-fake"
    helper.write_text(
        "#!/bin/sh\nread host\n"
        'if [ "$host" = "ecr.example.com" ]; then echo \'{"Username": "AWS", "Secret": "tok"}\'; '
        'else echo "credentials not found in native keychain"; exit 1; fi\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{helpers}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(b"me:pw").decode()
    (config / "config.json").write_text(
        json.dumps({"credsStore": "fake", "auths": {"other.example.com": {"auth": auth},
                    "https://token.example.com/v1/": {"identitytoken": "refresh"}}})
    )  # fmt: skip
    env = {"DOCKER_CONFIG": str(config)}
    found = credentials_for("ecr.example.com", env)
    assert (found.username, found.secret) == ("AWS", "tok")  # type: ignore[union-attr]
    found = credentials_for("other.example.com", env)
    assert (found.username, found.secret) == ("me", "pw")  # type: ignore[union-attr]
    assert credentials_for("token.example.com", env).identity_token  # type: ignore[union-attr]
    assert credentials_for("nowhere.example.com", env) is None
    assert "pw" not in repr(credentials_for("other.example.com", env))


def test_unreadable_docker_config_is_a_publish_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(PublishError, match="Cannot read docker's credentials"):
        credentials_for("host.example.com", {"DOCKER_CONFIG": str(tmp_path)})
    assert credentials_for("host.example.com", {"DOCKER_CONFIG": str(tmp_path / "none")}) is None
