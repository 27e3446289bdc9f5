"""Which containers a killed nativebuild left behind: only this host's, only dead owners'."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from nativebuild.engine.orphans import OWNER_LABEL, orphaned, owner, process_alive


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
