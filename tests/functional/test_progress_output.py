"""What a person and a CI log see of a real build (tests/functional/progress_driver.py: fakes at
the engine and index seams, compiles that take a few seconds and stream a build log).

On a terminal (a pseudo-terminal read through pyte, a terminal emulator, as the screen): one row
per running compile with its architecture, "under emulation", a rising elapsed time and the last
line of its log; both targets in one display; at the end only the summary lines, no row left
behind, and no colour the code did not ask for.

Off a terminal, and on one with NO_COLOR or TERM=dumb: the output of main before progress
events existed, line for line, apart from heartbeat lines, with durations and the temporary
directory masked (tests/functional/data/progress-build*.golden: recorded from main at f8ea748
with this driver; in the -v one, the driver's new ``=== built`` lines, which main's own driver
did not print and nativebuild now keeps to itself, taken out).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pyte
import pytest

from nativebuild.cli.progress import HEARTBEAT_PREFIX
from tests.functional.progress_driver import (
    HOST_RESOLVED,
    build_command,
    driver_env,
    make_world,
    normalise,
)

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("data")
ROWS, COLUMNS = 150, 300  # room for the whole output, no line wrapped
ROW = re.compile(
    r"^\S (downloading|resolving|compiling|checking|writing|stripping|probing|building) "
)
COMPILE_ROW = re.compile(
    r"^\S compiling (?P<package>\S+ \S+) (?P<arch>x86_64|arm64)(?P<emulated> under emulation)?"
    r"\s+(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d) ?(?P<line>.*)$"
)
ARCHES = ("x86_64", "arm64")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path, Path]:
    index, project = make_world(tmp_path)
    return tmp_path, index, project


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()


def without_heartbeats(text: str) -> tuple[str, list[str]]:
    lines = text.splitlines(keepends=True)
    beats = [line for line in lines if line.startswith(HEARTBEAT_PREFIX)]
    return "".join(line for line in lines if not line.startswith(HEARTBEAT_PREFIX)), beats


@pytest.mark.parametrize("verbose", [False, True], ids=["default", "verbose"])
def test_log_output_is_todays_apart_from_heartbeats(
    world: tuple[Path, Path, Path], verbose: bool
) -> None:
    root, index, project = world
    done = subprocess.run(
        build_command(index, project, root, *(["-v"] if verbose else [])),
        capture_output=True, text=True, cwd=REPO, check=False, timeout=120,
        env=driver_env(NB_HEARTBEAT_SECONDS="0.3", NB_COMPILE_SECONDS="1.2"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    suffix = "-verbose" if verbose else ""
    stderr, beats = without_heartbeats(normalise(done.stderr, root))
    assert stderr == golden(f"progress-build{suffix}.stderr.golden")
    assert normalise(done.stdout, root) == golden(f"progress-build{suffix}.stdout.golden")
    if not verbose:  # -v streams the build log: no silence, no heartbeat
        assert any("compiling markupsafe 2.1.5 for arm64 under emulation (" in b for b in beats)


def run_in_terminal(
    command: list[str], env: dict[str, str]
) -> tuple[int | None, list[list[str]], pyte.Screen, bytes]:
    """Run ``command`` on a pseudo-terminal; its exit status, each screen it showed, the last
    screen (with its colours) and every byte it wrote."""
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    child = pexpect.spawn(
        command[0], command[1:], env=env, cwd=str(REPO), dimensions=(ROWS, COLUMNS), timeout=120
    )
    frames: list[list[str]] = []
    raw = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = child.read_nonblocking(65536, timeout=0.05)
        except pexpect.TIMEOUT:
            continue
        except pexpect.EOF:
            break
        raw += data
        stream.feed(data)
        frame = [line.rstrip() for line in screen.display]
        if not frames or frame != frames[-1]:
            frames.append(frame)
    child.close()
    return child.exitstatus, frames, screen, bytes(raw)


def compile_rows(frames: list[list[str]]) -> Iterator[tuple[int, re.Match[str]]]:
    for number, frame in enumerate(frames):
        for line in frame:
            if (match := COMPILE_ROW.match(line)) is not None:
                yield number, match


def test_terminal_shows_live_compile_rows_and_ends_on_the_log_lines(
    world: tuple[Path, Path, Path],
) -> None:
    root, index, project = world
    env = driver_env(TERM="xterm-256color", NB_COMPILE_SECONDS="3.2")
    status, frames, screen, _ = run_in_terminal(build_command(index, project, root), env)
    final = frames[-1]
    assert status == 0, "\n".join(final)

    rows = list(compile_rows(frames))
    assert rows, "no compile row was ever on the screen"
    seconds: dict[tuple[str, str], list[int]] = {}
    for _, row in rows:
        elapsed = int(row["h"]) * 3600 + int(row["m"]) * 60 + int(row["s"])
        seconds.setdefault((row["package"], row["arch"]), []).append(elapsed)
    # Each package's elapsed time rises while it compiles (3.2 s: 0, 1, 2, 3), never falls.
    for key, values in seconds.items():
        assert values == sorted(values), key
    assert max(len(set(values)) for values in seconds.values()) >= 3, seconds
    assert set(seconds) == {
        (package, arch) for package in ("markupsafe 2.1.5", "ujson 3.0.0") for arch in ARCHES
    }
    assert all(bool(row["emulated"]) == (row["arch"] == "arm64") for _, row in rows)
    assert any(row["line"].startswith("gcc -c src/markupsafe_") for _, row in rows)

    # The end: no row left, and exactly the lines the log has, in its order.
    assert not [line for line in final if ROW.match(line)], "\n".join(final)
    shown = normalise("\n".join(final).strip("\n") + "\n", root)
    assert shown == golden("progress-build.stderr.golden") + golden("progress-build.stdout.golden")

    # No automatic highlighting: "python3.9" and "2.31" are one colour; "==>" is marked bold.
    y = final.index("==> Planning python3.9 x86_64 (glibc 2.31)")
    cells = [screen.buffer[y][x] for x in range(len(final[y]))]
    assert all(cell.bold for cell in cells[:3])
    assert {(cell.fg, cell.bg, cell.bold) for cell in cells[4:]} == {("default", "default", False)}


def test_targets_compiling_at_once_share_one_display(tmp_path: Path) -> None:
    index, project = make_world(tmp_path, HOST_RESOLVED)
    env = driver_env(TERM="xterm-256color", NB_COMPILE_SECONDS="3")
    command = build_command(index, project, tmp_path, "-j", "2")
    status, frames, _, _ = run_in_terminal(command, env)
    assert status == 0, "\n".join(frames[-1])
    arches_by_frame: dict[int, set[str]] = {}
    for number, row in compile_rows(frames):
        arches_by_frame.setdefault(number, set()).add(row["arch"])
    assert set(ARCHES) in arches_by_frame.values()  # both targets' rows on one screen
    assert not [line for line in frames[-1] if ROW.match(line)]
    text = "\n".join(frames[-1])
    assert "    compiled psutil-5.7.0-cp39-cp39-linux_aarch64.whl in " in text
    assert "    compiled netifaces-0.10.9-cp39-cp39-linux_x86_64.whl in " in text


@pytest.mark.parametrize(
    "terminal",
    [{"TERM": "xterm-256color", "NO_COLOR": "1"}, {"TERM": "dumb"}],
    ids=["NO_COLOR", "dumb"],
)
def test_a_terminal_without_colour_gets_the_log_output(
    world: tuple[Path, Path, Path], terminal: dict[str, str]
) -> None:
    root, index, project = world
    env = driver_env(NB_HEARTBEAT_SECONDS="0.3", NB_COMPILE_SECONDS="1", **terminal)
    status, frames, _, raw = run_in_terminal(build_command(index, project, root), env)
    assert status == 0, "\n".join(frames[-1])
    text = ANSI.sub("", raw.decode()).replace("\r\n", "\n")
    logged, _ = without_heartbeats(normalise(text, root))
    expected = golden("progress-build.stderr.golden") + golden("progress-build.stdout.golden")
    assert logged == expected


def test_a_failed_compile_shows_the_last_30_lines_and_where_the_whole_log_is(
    world: tuple[Path, Path, Path],
) -> None:
    root, index, project = world
    done = subprocess.run(
        build_command(index, project, root),
        capture_output=True, text=True, cwd=REPO, check=False, timeout=120,
        env=driver_env(NB_FAIL_COMPILE="ujson", NB_COMPILE_LINES="40", NB_COMPILE_SECONDS="0.4"),
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    error = done.stderr[done.stderr.index("error: ") :]
    shown = [line.strip() for line in error.splitlines() if line.startswith("    ")]
    assert len(shown) == 30
    assert shown[0] == "gcc -c src/ujson_11.c -o build/ujson_11.o"
    assert shown[-1] == "src/ujson.c:1:10: fatal error: Python.h: No such file or directory"
    log = root / "cache" / "logs" / "compile-ujson-3.0.0-x86_64.log"
    assert f"The whole build log: {log}" in error
    lines = log.read_text().splitlines()
    assert len(lines) == 41
    assert lines[0] == "gcc -c src/ujson_0.c -o build/ujson_0.o"
    assert not (root / "dist").exists()  # a failed build still leaves the output alone
