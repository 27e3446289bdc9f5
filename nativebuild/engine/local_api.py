"""The few read-mostly questions a warm build asks a local engine, over its unix socket.

A warm build starts no container; it only needs the build image's id (a cache key field) and,
on first contact, to remove what killed nativebuilds left behind. Importing the docker SDK for
that costs more than the rest of a warm build, so a local engine (``unix://`` socket, the
default) is asked directly over HTTP with the standard library. Anything else (a remote engine,
an image to pull, an unexpected answer) goes to :class:`nativebuild.engine.docker.DockerRunner`'s
SDK path, which knows every case.
"""

from __future__ import annotations

import http.client
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


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=_TIMEOUT_S)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_TIMEOUT_S)
        sock.connect(self._path)
        self.sock = sock


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
        connection = _UnixConnection(self.socket_path)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as err:
            raise OSError(str(err)) from err
        finally:
            connection.close()
        if not body:
            return response.status, None
        try:
            return response.status, json.loads(body)
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
