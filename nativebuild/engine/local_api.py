"""The few read-mostly questions a warm build asks a local engine, over its unix socket.

A warm build starts no container; it only needs the build image's id (a cache key field) and,
on first contact, to remove what killed nativebuilds left behind. Importing the docker SDK for
that costs more than the rest of a warm build, so a local engine (``unix://`` socket, the
default) is asked directly over HTTP with the standard library: one HTTP/1.0 request per
connection, read to its end (the engine then sends no chunked body), on a plain socket (not
http.client, whose import with ssl and email would cost more than a quick answer's checks).
Anything else (a remote engine,
an image to pull, an unexpected answer) goes to :class:`nativebuild.engine.docker.DockerRunner`'s
SDK path, which knows every case.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from nativebuild.engine.orphans import OWNER_LABEL, orphaned
from nativebuild.engine.runner import architecture_mismatch

if TYPE_CHECKING:
    from nativebuild.reporting import Reporter

DEFAULT_SOCKET = "/var/run/docker.sock"
_TIMEOUT_S = 5.0
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
