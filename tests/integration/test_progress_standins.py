"""A real compile on a terminal: the stand-in build image, an sdist from PyPI built by
nativebuild's own driver, and the screen read through pyte while it runs. The row of the
package comes from the driver's real output (``=== building``, ``[name] ...``, ``=== built``)."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pexpect
import pyte
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.network]

ROWS, COLUMNS = 120, 160
COMPILE_ROW = re.compile(r"^\S compiling markupsafe 2\.1\.5 x86_64\s+(\d+):(\d\d):(\d\d) ?(.*)$")
ANY_ROW = re.compile(
    r"^\S (downloading|resolving|compiling|checking|writing|stripping|probing|building) "
)


def test_a_real_compile_shows_its_row_and_leaves_only_the_summary(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    (tmp_path / "requirements.txt").write_text("markupsafe==2.1.5\n--no-binary markupsafe\n")
    args = [
        "-m", "nativebuild", "build", "-r", str(tmp_path / "requirements.txt"),
        "--src", str(tmp_path / "app"), "--runtime", "python3.9", "--arch", "x86_64",
        "--build-image", "nativebuild-test/build-python3.9:{arch}",
        "--runtime-image", "nativebuild-test/runtime-python3.9:{arch}", "--glibc", "2.31",
        "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "dist"),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI")}
    env["TERM"] = "xterm-256color"
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    child = pexpect.spawn(
        sys.executable, args, env=env, cwd=str(tmp_path), dimensions=(ROWS, COLUMNS)
    )
    frames: list[list[str]] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            data = child.read_nonblocking(65536, timeout=0.1)
        except pexpect.TIMEOUT:
            continue
        except pexpect.EOF:
            break
        stream.feed(data)
        frames.append([line.rstrip() for line in screen.display])
    child.close()
    final = frames[-1]
    assert child.exitstatus == 0, "\n".join(final)

    rows = [match for frame in frames for line in frame if (match := COMPILE_ROW.match(line))]
    assert rows, "no compile row while markupsafe compiled"
    elapsed = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s, _ in (r.groups() for r in rows)]
    assert elapsed == sorted(elapsed)
    assert len(set(elapsed)) >= 2, elapsed  # pip's isolated build takes seconds: the time moves
    assert any(r.group(4) for r in rows), "no line of the build log on the row"

    assert not [line for line in final if ANY_ROW.match(line)], "\n".join(final)
    text = "\n".join(final)
    assert "    compiled markupsafe-2.1.5-cp39-cp39-linux_x86_64.whl in " in text
    assert f"{tmp_path}/dist/function-python3.9-x86_64.zip" in text
