"""uv on the host: the one module that runs it.

We use uv for what it does best and safely on any host: resolving for a *target* platform
(markers and wheel tags of Lambda, not of this machine) without building anything
(``--no-build``: no package code runs on the host), and exporting ``uv.lock`` to PEP 751.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from nativebuild.index.pip_config import IndexSettings

TIMEOUT_S = 300


@dataclasses.dataclass(frozen=True, kw_only=True)
class UvResult:
    returncode: int
    stdout: str
    stderr: str


class UvRunner(Protocol):
    def available(self) -> bool: ...

    def run(self, args: Sequence[str], *, cwd: Path | None, env: Mapping[str, str]) -> UvResult: ...


class HostUv:
    """The uv binary shipped by the ``uv`` package from PyPI."""

    def __init__(self, binary: str | None = None) -> None:
        self._binary = binary

    def _find(self) -> str | None:
        if self._binary is None:
            try:
                from uv import find_uv_bin
            except ImportError:
                return None
            try:
                self._binary = find_uv_bin()
            except FileNotFoundError:
                return None
        return self._binary

    def available(self) -> bool:
        return self._find() is not None

    def run(self, args: Sequence[str], *, cwd: Path | None, env: Mapping[str, str]) -> UvResult:
        binary = self._find()
        if binary is None:
            return UvResult(returncode=127, stdout="", stderr="uv is not installed")
        try:
            done = subprocess.run(
                [binary, *args],
                cwd=cwd,
                env=dict(env),
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return UvResult(returncode=126, stdout="", stderr=str(err))
        return UvResult(returncode=done.returncode, stdout=done.stdout, stderr=done.stderr)


def host_python() -> str | None:
    """The interpreter running nativebuild, for uv's ``--python``: uv then asks that one file
    instead of searching PATH for the target's version (which a resolution for another
    Python never finds, and which costs a second or so behind pyenv's shims). uv only reads
    its version and tags: with ``--python-version``, ``--python-platform`` and
    ``--no-build`` nothing runs in it. None when frozen into an executable of its own."""
    if getattr(sys, "frozen", False) or not sys.executable:
        return None
    return sys.executable


def uv_environment(
    host_env: Mapping[str, str], index: IndexSettings, cache_dir: Path
) -> dict[str, str]:
    """A clean environment for uv: no user uv config, no Python downloads, our CA bundle."""
    keep = ("PATH", "HOME", "NETRC", "TMPDIR", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {name: host_env[name] for name in keep if name in host_env}
    env.update(dict(index.proxies))
    env.update(
        {
            "UV_NO_CONFIG": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_CACHE_DIR": str(cache_dir),
            "NO_COLOR": "1",
        }
    )
    if index.ca_bundle is not None:
        env["SSL_CERT_FILE"] = str(index.ca_bundle)
    if index.netrc is not None:
        env["NETRC"] = str(index.netrc)
    return env


def index_arguments(index: IndexSettings) -> list[str]:
    """Index options for uv, local indexes and find-links folders included: uv reads them on
    the host, as they are."""
    args = ["--no-index"] if index.no_index else ["--index-url", index.index_url]
    for url in () if index.no_index else index.extra_index_urls:
        args += ["--extra-index-url", url]
    for link in index.find_links:
        args += ["--find-links", link]
    for host in index.trusted_hosts:
        args += ["--allow-insecure-host", host]
    return args
