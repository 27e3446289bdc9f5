"""Debian's ``docker-registry`` (the CNCF distribution registry) on 127.0.0.1, for tests that
push real images over the real HTTP API. Installed by tests/setup-machine; each test starts its
own on a free port, with its own storage, config and log (the access log counts the uploads).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.moto_server import free_port

BINARY = "docker-registry"
# htpasswd entry for user "nb" with password "secret" (bcrypt, made once with crypt(3)).
HTPASSWD = "nb:$2b$12$z18ZN64x8wEl1eDVOFU7kuKKxQ52juU8ox2ZbGaJtBcoC8x86PY8u\n"
USER, PASSWORD = "nb", "secret"


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    log: Path

    def uploads(self) -> list[str]:
        """Every blob upload and manifest write the registry has logged, in order."""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return [
            line
            for line in lines
            if ('"PUT ' in line or '"PATCH ' in line or '"POST ' in line) and "/v2/" in line
        ]


def available() -> bool:
    return shutil.which(BINARY) is not None


@contextlib.contextmanager
def registry(root: Path, *, auth: bool = False) -> Iterator[Registry]:
    """Serve a registry storing under ``root``; with ``auth``, Basic auth (nb / secret)."""
    if not available():
        pytest.fail(
            f"{BINARY} is missing: run tests/setup-machine (apt-get install docker-registry)"
        )
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: false",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root / 'storage'}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if auth:
        (root / "htpasswd").write_text(HTPASSWD, encoding="utf-8")
        lines += [
            "auth:",
            "  htpasswd:",
            "    realm: nativebuild-test",
            f"    path: {root / 'htpasswd'}",
        ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = root / "registry.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([BINARY, "serve", str(config)], stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except urllib.error.HTTPError as err:
                if err.code == 401 and auth:
                    break
                raise
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"{BINARY} did not start: {log.read_text(errors='replace')[-2000:]}"
                    )
                time.sleep(0.1)
        yield Registry(host=f"127.0.0.1:{port}", log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
