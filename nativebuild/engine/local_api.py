"""The few questions a warm build asks a local engine, over its unix socket.

A warm build starts no container; it only needs the build image's id (a cache key field) and,
on first contact, to remove what killed nativebuilds left behind; an image build also inspects
images and loads the one it wrote (``docker load``). Importing the docker SDK for that costs
more than the rest of a warm build, so a local engine (``unix://`` socket, the default) is asked
directly over HTTP with the standard library. The small questions go as one HTTP/1.0 request per
connection, read to its end (the engine then sends no chunked body), on a plain socket: importing
http.client (with ssl and email) would cost more than a quick answer's checks. Only a load,
whose body is streamed chunked, takes http.client. Anything else (a remote engine, an image to
pull, an unexpected answer) goes to :class:`nativebuild.engine.docker.DockerRunner`'s SDK path,
which knows every case.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from nativebuild.engine.api import api_error, unreachable_error
from nativebuild.engine.image_store import load_messages
from nativebuild.engine.orphans import OWNER_LABEL, orphaned
from nativebuild.engine.runner import architecture_mismatch

if TYPE_CHECKING:
    from nativebuild.reporting import Reporter

DEFAULT_SOCKET = "/var/run/docker.sock"
_TIMEOUT_S = 5.0
# A load answers once the engine has registered every layer sent: the runtime image's, the
# first time, can take a while (the docker SDK's default timeout is 60 s; a slow disk, more).
_LOAD_TIMEOUT_S = 600.0
_READ_SIZE = 1 << 16


class LocalEngineAPI:
    """HTTP over a local engine's unix socket; every failure is an OSError or None."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._reaped = False  # orphans are looked for once, on first contact

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalEngineAPI | None:
        """The local socket that DOCKER_HOST names (or the default), or None for anything
        the SDK must handle: tcp://, ssh://, TLS settings."""
        host = env.get("DOCKER_HOST", "")
        if env.get("DOCKER_TLS_VERIFY") or env.get("DOCKER_CERT_PATH"):
            return None
        if not host:
            return cls(DEFAULT_SOCKET)
        if host.startswith("unix://"):
            return cls(host.removeprefix("unix://"))
        return None

    def _request(self, method: str, path: str) -> tuple[int, Any]:
        """One small request on a connection of its own (so any thread may ask): the status
        and the decoded JSON body (None when empty)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(_TIMEOUT_S)
                sock.connect(self.socket_path)
                sock.sendall(f"{method} {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
                chunks = []
                while chunk := sock.recv(_READ_SIZE):
                    chunks.append(chunk)
        except OSError as err:
            raise OSError(str(err)) from err
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split()
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
            msg = f"unexpected answer from {self.socket_path}"
            raise OSError(msg)
        try:
            status = int(status_line[1])
        except ValueError as err:
            msg = f"unexpected answer from {self.socket_path}"
            raise OSError(msg) from err
        if not body:
            return status, None
        try:
            return status, json.loads(body)
        except ValueError as err:
            msg = f"unexpected answer from {self.socket_path}"
            raise OSError(msg) from err

    def image(self, ref: str) -> dict[str, Any] | None:
        """``docker image inspect`` of ``ref``, or None when the engine does not have it."""
        status, document = self._request("GET", f"/images/{quote(ref, safe='')}/json")
        if status == 404:
            return None
        if status != 200 or not isinstance(document, dict):
            msg = f"image inspect answered {status}"
            raise OSError(msg)
        return document

    def remove_orphans(self, *, host: str) -> int:
        """Remove the containers of nativebuilds on ``host`` that are gone (once per API
        object); how many."""
        if self._reaped:
            return 0
        query = urlencode({"all": "1", "filters": json.dumps({"label": [OWNER_LABEL]})})
        status, listed = self._request("GET", f"/containers/json?{query}")
        if status != 200 or not isinstance(listed, list):
            msg = f"container list answered {status}"
            raise OSError(msg)
        found = [
            (str(entry.get("Names", ["?"])[0]).lstrip("/"), entry.get("Labels") or {})
            for entry in listed
        ]
        names = orphaned(found, host=host)
        for name in names:
            self._request("DELETE", f"/containers/{quote(name, safe='')}?force=1")
        self._reaped = True
        return len(names)

    def load(self, data: Iterable[bytes]) -> tuple[int, list[dict[str, Any]]]:
        """``docker load`` of a docker-archive stream, sent as it is read: the status and the
        engine's messages (an error of the load itself comes inside a 200 answer). OSError
        when the engine cannot be reached."""
        import http.client  # only a load streams a body (chunked): the quick path never loads

        class UnixConnection(http.client.HTTPConnection):
            def __init__(self, path: str) -> None:
                super().__init__("localhost", timeout=_LOAD_TIMEOUT_S)
                self._path = path

            def connect(self) -> None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self._path)
                self.sock = sock

        connection = UnixConnection(self.socket_path)
        try:
            connection.request(
                "POST", "/images/load?quiet=1", body=data,
                headers={"Content-Type": "application/x-tar"},
            )  # fmt: skip
            response = connection.getresponse()
            status, body = response.status, response.read()
        except (OSError, http.client.HTTPException) as err:
            raise OSError(str(err)) from err
        finally:
            connection.close()
        return status, json_messages(body)


def json_messages(body: bytes) -> list[dict[str, Any]]:
    """The JSON objects of a streamed answer (one after another, newlines between); text that
    is not JSON comes back as a message of its own, never lost."""
    text = body.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    messages: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return messages
        try:
            found, position = decoder.raw_decode(text, position)
        except ValueError:
            messages.append({"message": text[position:].strip()})
            return messages
        messages.append(found if isinstance(found, dict) else {"message": str(found)})


def quick_image_id(
    api: LocalEngineAPI, image: str, platform: str | None, *, reporter: Reporter | None
) -> str | None:
    """``image``'s id when the local engine has it for ``platform``; None sends the caller to
    the SDK (no socket, an image to pull, the wrong architecture: it knows what to say).
    First contact with the engine, so what killed nativebuilds left behind goes first."""
    try:
        found = api.image(image)
        if found is None or not found.get("Id"):
            return None
        if architecture_mismatch(image, str(found.get("Architecture", "")), platform):
            return None
        removed = api.remove_orphans(host=socket.gethostname())
    except OSError:
        return None
    if removed and reporter is not None:
        reporter.detail(f"Removed {removed} container(s) left by a killed nativebuild")
    return str(found["Id"])


def load_over_socket(api: LocalEngineAPI, data: Iterable[bytes], *, engine: str) -> tuple[str, ...]:
    """``docker load`` through ``api``: the engine's messages, or the errors the SDK path
    raises (unreachable, refused)."""
    try:
        status, replies = api.load(data)
    except OSError as err:
        raise unreachable_error(engine, "load an image", str(err)) from err
    if status != 200:
        detail = "; ".join(str(r.get("message", r)) for r in replies) or f"HTTP {status}"
        action = "load an image"
        raise api_error(action, "", detail, pulling=False, not_found=False)
    return load_messages(replies)
