"""A container engine's HTTP API on a real unix socket, playing the few answers the warm path
asks for (image inspect, the container list, container removal) and an image load (a chunked
tar body): for the socket client's tests and for quick answers checked in a subprocess."""

from __future__ import annotations

import contextlib
import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class Engine:
    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {}
        self.containers: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.loaded: list[bytes] = []  # the bodies of /images/load, as received
        self.load_answer: tuple[int, bytes] = (200, b'{"stream":"Loaded image: x:y\\n"}\r\n')


def _handler(engine: Engine) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def address_string(self) -> str:
            return "unix"

        def _answer(self, status: int, document: object) -> None:
            body = b"" if document is None else json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            engine.requests.append(("GET", self.path))
            parts = urlsplit(self.path)
            if parts.path.startswith("/images/") and parts.path.endswith("/json"):
                ref = unquote(parts.path[len("/images/") : -len("/json")])
                found = engine.images.get(ref)
                self._answer(200 if found else 404, found or {"message": "No such image"})
            elif parts.path == "/containers/json":
                wanted = json.loads(parse_qs(parts.query)["filters"][0])["label"]
                listed = [c for c in engine.containers if set(wanted) <= set(c["Labels"])]
                self._answer(200, listed)
            else:
                self._answer(500, {"message": "unexpected"})

        def do_POST(self) -> None:
            engine.requests.append(("POST", self.path))
            assert self.headers["Transfer-Encoding"] == "chunked"
            assert self.headers["Content-Type"] == "application/x-tar"
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            engine.loaded.append(body)
            status, answer = engine.load_answer
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_DELETE(self) -> None:
            engine.requests.append(("DELETE", self.path))
            name = unquote(urlsplit(self.path).path.removeprefix("/containers/"))
            engine.containers = [c for c in engine.containers if c["Names"] != [f"/{name}"]]
            self._answer(204, None)

    return Handler


@contextlib.contextmanager
def serve_engine(path: str) -> Iterator[Engine]:
    """Serve an :class:`Engine` on the unix socket ``path`` while the block runs."""
    state = Engine()
    server = socketserver.ThreadingUnixStreamServer(path, _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
