"""Which containers a killed nativebuild left behind: only this host's, only dead owners'."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nativebuild.engine.orphans import (
    OWNER_LABEL,
    _start_time,
    orphaned,
    owner,
    process_alive,
    start_time_of,
)


def _labels(value: str) -> dict[str, str]:
    return {"org.nativebuild": "1", OWNER_LABEL: value}


def test_only_dead_owners_on_this_host_are_orphans() -> None:
    containers = [
        ("dead", _labels("here/100/5")),
        ("alive", _labels("here/200/7")),
        ("reused-pid", _labels("here/300/1")),  # pid 300 alive, but started at another time
        ("elsewhere", _labels("there/100/5")),  # another host sharing the engine
        ("old", {"org.nativebuild": "1"}),  # before owners were labelled
        ("garbled", _labels("here/x/1")),
    ]
    running = {200: "7", 300: "9"}

    def alive(pid: int, start: str) -> bool:
        return pid in running and running[pid] == start

    assert orphaned(containers, host="here", alive=alive) == ["dead", "reused-pid"]


def test_this_process_is_alive_and_an_exited_one_is_not() -> None:
    label = owner()
    host, pid, start = label.split("/")
    assert host == socket.gethostname()
    assert int(pid) == os.getpid()
    assert start.isdigit()  # Linux: the start time guards against pid reuse
    assert process_alive(os.getpid(), start)
    assert not process_alive(os.getpid(), str(int(start) + 1))  # same pid, another process
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert not process_alive(int(child.stdout), "")
    assert orphaned([("c", _labels(label))], host=host) == []


def stat_line(name: bytes, fields_after: int = 50) -> bytes:
    """A /proc/PID/stat line whose fields after the name are 3, 4, 5...: field 22 is "22"."""
    return b"4242 (" + name + b") " + b" ".join(str(n).encode() for n in range(3, 3 + fields_after))


@pytest.mark.parametrize(
    "name", [b"python3", b"a b", b"x) y", b"(a) b) c", b")", b"caf\xc3\xa9 \xff"]
)
def test_the_start_time_is_field_22_whatever_the_command_name(name: bytes) -> None:
    assert start_time_of(stat_line(name)) == "22"


@pytest.mark.parametrize(("fields_after", "start"), [(0, ""), (19, ""), (20, "22"), (21, "22")])
def test_a_short_stat_line_has_no_start_time(fields_after: int, start: str) -> None:
    assert start_time_of(stat_line(b"x", fields_after)) == start
    assert start_time_of(b"") == ""


def test_the_owner_label_of_another_pid_names_that_pid() -> None:
    # Any signal with its default action (one inherited as ignored would hide a stray kill).
    code = (
        "import signal, sys, time\n"
        "for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):\n"
        "    signal.signal(s, signal.SIG_DFL)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    try:
        host, pid, start = owner(child.pid).split("/")
        assert (host, int(pid)) == (socket.gethostname(), child.pid)
        assert start == start_time_of(Path(f"/proc/{child.pid}/stat").read_bytes())
        # Asking whether it is alive only asks: the process is still running afterwards.
        assert process_alive(child.pid, start)
        with pytest.raises(subprocess.TimeoutExpired):  # no signal reached it
            child.wait(timeout=1)
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid, start)


def test_a_process_of_another_user_counts_as_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_yours(pid: int, signal: int) -> None:
        raise PermissionError(pid)

    monkeypatch.setattr("nativebuild.engine.orphans.os.kill", not_yours)
    assert process_alive(1, "123")


def test_an_unknown_start_time_counts_as_the_same_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("nativebuild.engine.orphans._start_time", lambda pid: "")
    assert process_alive(os.getpid(), "123")
    assert not process_alive(os.getpid() + 10_000_000, "123")  # no such pid at all


def test_a_foreign_container_first_does_not_stop_the_search() -> None:
    containers = [
        ("elsewhere", _labels("there/100/5")),
        ("unlabelled", {"org.nativebuild": "1"}),
        ("dead", _labels("here/100/5")),
    ]
    assert orphaned(containers, host="here", alive=lambda pid, start: False) == ["dead"]


def test_a_pid_without_a_proc_entry_has_no_start_time() -> None:
    assert _start_time(2**22 + 4242) == ""  # above Linux's largest pid: never a process
