"""Git servers a test starts on 127.0.0.1 and stops: sshd with its own host key and one
throwaway client key, and a dumb HTTP server that wants Basic credentials (netrc or URL).

Nothing here touches the machine's ssh set-up: every file lives in the test's folder, and
git is pointed at it with GIT_SSH_COMMAND and a known_hosts of its own. Debian's
openssh-server provides sshd (tests/setup-machine installs it).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import getpass
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"sshd exited with {process.returncode}: {log.read_text(errors='replace')}"
            raise AssertionError(msg)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    msg = f"sshd did not listen on 127.0.0.1:{port}: {log.read_text(errors='replace')}"
    raise AssertionError(msg)


@dataclasses.dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    client_key: Path  # the private key: a secret that must appear nowhere but here
    env: dict[str, str]  # GIT_SSH_COMMAND for the host's git

    def url(self, repository: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repository}"

    def key_material(self) -> list[str]:
        """The private key's base64 lines: none may show up in any output."""
        lines = self.client_key.read_text().splitlines()
        return [line for line in lines if line and not line.startswith("-----")]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nativebuild-test", "-f", str(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@contextlib.contextmanager
def ssh_server(folder: Path) -> Iterator[SshServer]:
    """sshd on a free port of 127.0.0.1, for the current user and one throwaway key."""
    sshd = next((c for c in SSHD_CANDIDATES if Path(c).is_file()), shutil.which("sshd"))
    if sshd is None:
        msg = "sshd is missing: tests/setup-machine installs Debian's openssh-server"
        raise AssertionError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    host_key, client_key = folder / "host_key", folder / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    (folder / "authorized_keys").chmod(0o600)
    port, user = free_port(), getpass.getuser()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel ERROR\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    known_hosts = folder / "known_hosts"
    host_public = (folder / "host_key.pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public[0]} {host_public[1]}\n")
    ssh = (
        f"ssh -F /dev/null -i {client_key} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
    )
    log = folder / "sshd.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=out, stderr=out)
    try:
        _wait_for_port(port, process, log)
        yield SshServer(port=port, user=user, client_key=client_key, env={"GIT_SSH_COMMAND": ssh})
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclasses.dataclass(frozen=True)
class HttpServer:
    port: int
    requests: list[str]  # "GET /path 200", for the test to see what was asked

    def url(self, name: str, *, credentials: str = "") -> str:
        at = f"{credentials}@" if credentials else ""
        return f"http://{at}127.0.0.1:{self.port}/{name}"


class _AuthHandler(http.server.SimpleHTTPRequestHandler):
    expected = ""
    seen: list[str]

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.seen.append(f"GET {self.path} 401")
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.seen.append(f"GET {self.path} 200")
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_git_server(root: Path, *, login: str, password: str) -> Iterator[HttpServer]:
    """Git's dumb HTTP protocol for the bare repositories under ``root``, behind Basic auth."""
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    seen: list[str] = []
    handler = type("Handler", (_AuthHandler,), {"expected": f"Basic {token}", "seen": seen})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpServer(port=int(server.server_address[1]), requests=seen)
    finally:
        server.shutdown()
        server.server_close()
