"""Containers left behind by a nativebuild that was killed (SIGKILL, a CI runner's timeout):
it could not remove them, so the next run on the same host does.

Each container is labelled with its owner, ``host/pid/start`` (the process start time guards
against a reused pid); a container whose owner lived on this host and is gone is an orphan.
Containers of other hosts sharing an engine, and of live processes, are never touched.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = ["OWNER_LABEL", "orphaned", "owner", "process_alive", "start_time_of"]

OWNER_LABEL = "org.nativebuild.owner"


def start_time_of(stat: bytes) -> str:
    """Field 22 of a ``/proc/PID/stat`` (the start time, in clock ticks since boot), else ""."""
    # The command name (field 2) may hold spaces, ')' and any bytes: count the fields after
    # its last ')'.
    fields = stat.rpartition(b")")[2].split()
    return fields[19].decode("ascii", "replace") if len(fields) > 19 else ""


def _start_time(pid: int) -> str:
    """The process's start time (Linux), else "" (unknown)."""
    try:
        return start_time_of(Path(f"/proc/{pid}/stat").read_bytes())
    except OSError:
        return ""


def owner(pid: int | None = None) -> str:
    """This process's owner label."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{pid}/{_start_time(pid)}"


def process_alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return not start or _start_time(pid) in ("", start)


def orphaned(
    containers: Iterable[tuple[str, Mapping[str, str]]],
    *,
    host: str,
    alive: Callable[[int, str], bool] = process_alive,
) -> list[str]:
    """Names of the containers (name, labels) whose owner on ``host`` is gone."""
    names = []
    for name, labels in containers:
        owner_host, _, rest = labels.get(OWNER_LABEL, "").partition("/")
        pid_text, _, start = rest.partition("/")
        if owner_host != host or not pid_text.isdigit():
            continue
        if not alive(int(pid_text), start):
            names.append(name)
    return sorted(names)
