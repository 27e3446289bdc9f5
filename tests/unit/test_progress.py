"""Progress events (nativebuild.reporting) and what the console makes of them without drawing
(nativebuild.cli.progress): which output a terminal gets, how a task reads, and the heartbeat,
driven by a fake clock instead of 30 real seconds."""

from __future__ import annotations

import threading

import pytest

from nativebuild.cli.progress import (
    HEARTBEAT_PREFIX,
    Heartbeat,
    describe,
    format_elapsed,
    wants_live,
)
from nativebuild.reporting import (
    NullReporter,
    Phase,
    ProgressEvent,
    Task,
    TaskKind,
    TaskOutput,
    start_task,
    track,
)


class Events(NullReporter):
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.lines: list[str] = []

    def progress(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def output(self, line: str) -> None:
        self.lines.append(line)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def compile_task(label: str = "markupsafe 2.1.5", *, emulated: bool = False) -> Task:
    return Task(id=7, kind=TaskKind.COMPILE, label=label, arch="arm64", emulated=emulated)


@pytest.mark.parametrize(
    ("is_terminal", "json_output", "quiet", "env", "live"),
    [
        (True, False, False, {"TERM": "xterm-256color"}, True),
        (True, False, False, {}, True),
        (False, False, False, {"TERM": "xterm"}, False),  # a CI log, a pipe, a file
        (True, True, False, {"TERM": "xterm"}, False),  # --json
        (True, False, True, {"TERM": "xterm"}, False),  # -q
        (True, False, False, {"TERM": "xterm", "NO_COLOR": "1"}, False),
        (True, False, False, {"TERM": "xterm", "NO_COLOR": ""}, True),  # empty: not set
        (True, False, False, {"TERM": "dumb"}, False),
    ],
)
def test_the_live_display_only_on_a_terminal_that_can_take_it(
    is_terminal: bool, json_output: bool, quiet: bool, env: dict[str, str], live: bool
) -> None:
    got = wants_live(is_terminal=is_terminal, json_output=json_output, quiet=quiet, env=env)
    assert got is live


def test_a_task_reads_as_one_phrase() -> None:
    assert describe(compile_task(emulated=True)) == (
        "compiling markupsafe 2.1.5 for arm64 under emulation"
    )
    download = Task(id=1, kind=TaskKind.DOWNLOAD, label="six-1.16.0-py3-none-any.whl")
    assert describe(download) == "downloading six-1.16.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0s"), (45.9, "45s"), (65, "1m05s"), (3599, "59m59s"), (7380, "2h03m")],
)
def test_elapsed_times(seconds: float, text: str) -> None:
    assert format_elapsed(seconds) == text


def test_track_starts_and_finishes_a_task_and_marks_a_failure() -> None:
    reporter = Events()
    with track(reporter, TaskKind.ARCHIVE, "function.zip", arch="x86_64", total=3) as task:
        task.advance(completed=2)
    with pytest.raises(KeyboardInterrupt), track(reporter, TaskKind.CHECK, "binaries"):
        raise KeyboardInterrupt
    phases = [(e.phase, e.task.label, e.completed, e.ok) for e in reporter.events]
    assert phases == [
        (Phase.START, "function.zip", None, True),
        (Phase.ADVANCE, "function.zip", 2, True),
        (Phase.FINISH, "function.zip", None, True),
        (Phase.START, "binaries", None, True),
        (Phase.FINISH, "binaries", None, False),
    ]
    assert reporter.events[0].task.total == 3
    assert reporter.events[0].task.id != reporter.events[3].task.id


def test_a_finished_task_says_nothing_more() -> None:
    reporter = Events()
    handle = start_task(reporter, TaskKind.DOWNLOAD, "a.whl")
    handle.finish(ok=True)
    handle.advance(completed=10)
    handle.finish(ok=False)
    assert [e.phase for e in reporter.events] == [Phase.START, Phase.FINISH]


def test_a_reporter_from_before_progress_events_keeps_working() -> None:
    class OldReporter:  # the five methods of the original protocol, no progress()
        def __init__(self) -> None:
            self.lines: list[str] = []

        def step(self, message: str) -> None: ...
        def detail(self, message: str) -> None: ...
        def command(self, argv: list[str]) -> None: ...
        def warning(self, message: str) -> None: ...

        def output(self, line: str) -> None:
            self.lines.append(line)

    old = OldReporter()
    with track(old, TaskKind.IMAGE, "nativebuild/build-python3.9:abc-x86_64") as task:  # type: ignore[arg-type]
        TaskOutput(old, task).output("Step 1/7 : FROM base")  # type: ignore[arg-type]
    assert old.lines == ["Step 1/7 : FROM base"]


def test_task_output_shows_each_line_as_the_tasks_last_and_passes_it_on() -> None:
    reporter = Events()
    with track(reporter, TaskKind.IMAGE, "tag") as task:
        TaskOutput(reporter, task).output("Step 2/7 : RUN dnf install gcc")
    assert reporter.lines == ["Step 2/7 : RUN dnf install gcc"]
    assert reporter.events[1].line == "Step 2/7 : RUN dnf install gcc"


def started(task: Task) -> ProgressEvent:
    return ProgressEvent(phase=Phase.START, task=task)


def finished(task: Task) -> ProgressEvent:
    return ProgressEvent(phase=Phase.FINISH, task=task)


def test_heartbeat_names_what_runs_after_a_silence_then_every_interval() -> None:
    clock, said = Clock(), []
    beat = Heartbeat(said.append, interval=30, clock=clock)
    beat.step("Compiling markupsafe 2.1.5 for arm64 under emulation")
    beat.progress(started(compile_task(emulated=True)))
    clock.now += 29.9
    assert beat.tick() is None
    clock.now += 0.2
    assert beat.tick() == (
        f"{HEARTBEAT_PREFIX}compiling markupsafe 2.1.5 for arm64 under emulation (30s)"
    )
    assert beat.tick() is None  # not twice for one silence
    clock.now += 30
    assert beat.tick() is not None
    assert said[-1].endswith("(1m00s)")
    assert len(said) == 2


def test_a_printed_line_puts_the_heartbeat_off() -> None:
    clock, said = Clock(), []
    beat = Heartbeat(said.append, interval=30, clock=clock)
    beat.progress(started(compile_task()))
    clock.now += 20
    beat.touch()
    clock.now += 20
    assert beat.tick() is None  # 40 s running, but a line came 20 s ago
    clock.now += 10
    assert beat.tick() is not None
    assert said == [f"{HEARTBEAT_PREFIX}compiling markupsafe 2.1.5 for arm64 (50s)"]


def test_without_tasks_the_heartbeat_names_the_last_step_and_without_one_stays_quiet() -> None:
    clock, said = Clock(), []
    beat = Heartbeat(said.append, interval=30, clock=clock)
    clock.now += 100
    assert beat.tick() is None  # nothing was ever started
    beat.step("Downloading 3 files")
    task = compile_task()
    beat.progress(started(task))
    beat.progress(finished(task))
    clock.now += 45
    assert beat.tick() == f"{HEARTBEAT_PREFIX}Downloading 3 files (45s)"


def test_heartbeat_names_four_tasks_and_counts_the_rest() -> None:
    clock, said = Clock(), []
    beat = Heartbeat(said.append, interval=30, clock=clock)
    for number in range(6):
        task = Task(id=100 + number, kind=TaskKind.DOWNLOAD, label=f"f{number}.whl")
        beat.progress(started(task))
        clock.now += 1
    clock.now += 30
    line = beat.tick()
    assert line is not None
    assert "downloading f0.whl (36s)" in line
    assert "f3.whl" in line
    assert "f4.whl" not in line
    assert line.endswith("; and 2 more")


def test_heartbeat_thread_ticks_on_its_own_and_stops() -> None:
    said: list[str] = []
    spoke = threading.Event()

    def emit(text: str) -> None:
        said.append(text)
        spoke.set()

    beat = Heartbeat(emit, interval=0.05)
    beat.step("Compiling markupsafe 2.1.5")
    with beat.running():
        assert spoke.wait(5), "no heartbeat from the background thread"
    count = len(said)
    spoke.clear()
    assert not spoke.wait(0.2)  # stopped with the block
    assert len(said) == count
    assert said[0].startswith(f"{HEARTBEAT_PREFIX}Compiling markupsafe 2.1.5 (")


def test_a_log_line_on_a_row_is_plain_text() -> None:
    from nativebuild.cli.console import plain_line, task_markup

    assert plain_line("  \x1b[01;31merror:\x1b[0m Python.h\tmissing  ") == "error: Python.h missing"
    markup = task_markup(compile_task(label="[weird] 1.0", emulated=True))
    assert markup == (
        "[bold]compiling[/bold] [cyan]\\[weird] 1.0[/cyan] [dim]arm64[/dim]"
        " [yellow]under emulation[/yellow]"
    )


@pytest.mark.parametrize(
    ("is_terminal", "quiet", "env", "kind", "heartbeat"),
    [
        (True, False, {"TERM": "xterm"}, "LiveReporter", False),
        (False, False, {"TERM": "xterm"}, "ConsoleReporter", True),
        (True, False, {"TERM": "dumb"}, "ConsoleReporter", True),
        (False, True, {}, "ConsoleReporter", False),  # -q promises errors only
    ],
)
def test_open_reporter_picks_the_rendering(
    is_terminal: bool, quiet: bool, env: dict[str, str], kind: str, heartbeat: bool
) -> None:
    import io

    from rich.console import Console

    from nativebuild.cli.console import ConsoleReporter, open_reporter

    console = Console(file=io.StringIO())
    with open_reporter(
        console, verbose=False, quiet=quiet, env=env, is_terminal=is_terminal
    ) as reporter:
        assert type(reporter).__name__ == kind
        if isinstance(reporter, ConsoleReporter):
            assert (reporter.heartbeat is not None) is heartbeat
