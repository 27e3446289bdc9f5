"""A compile container's output split into one build log and one task per package
(nativebuild.sdists.logs), as the driver (drivers/build_wheels.py) prints it."""

from __future__ import annotations

from pathlib import Path

from nativebuild.reporting import NullReporter, Phase, ProgressEvent, TaskKind
from nativebuild.sdists.logs import TAIL_LINES, BuildLogs, log_name, split_line


class Recorder(NullReporter):
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.lines: list[str] = []
        self.steps: list[str] = []

    def progress(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def output(self, line: str) -> None:
        self.lines.append(line)

    def step(self, message: str) -> None:
        self.steps.append(message)


def logs_for(tmp_path: Path, reporter: Recorder, *, verbose: bool = False) -> BuildLogs:
    return BuildLogs(
        reporter, workdir=tmp_path / "work", arch="arm64", emulated=True, verbose=verbose
    )


def test_driver_lines_split_by_package() -> None:
    assert split_line("[markupsafe] gcc -c a.c") == ("markupsafe", "gcc -c a.c")
    assert split_line("[markupsafe] ") == ("markupsafe", "")
    assert split_line("=== building markupsafe 2.1.5") is None
    assert split_line("warning: [something] else") is None


def test_each_package_is_a_compile_task_with_its_last_line(tmp_path: Path) -> None:
    reporter = Recorder()
    logs = logs_for(tmp_path, reporter)
    for line in [
        "=== building markupsafe 2.1.5",
        "=== building ujson 3.0.0",
        "[markupsafe] gcc -c a.c",
        "[ujson] gcc -c u.c",
        "[markupsafe] gcc -shared a.o",
        "=== built markupsafe 2.1.5",
        "=== failed ujson 3.0.0",
    ]:
        logs.output(line)
    logs.close(ok=True)
    seen = [(e.phase, e.task.label, e.line, e.ok) for e in reporter.events]
    assert seen == [
        (Phase.START, "markupsafe 2.1.5", None, True),
        (Phase.START, "ujson 3.0.0", None, True),
        (Phase.ADVANCE, "markupsafe 2.1.5", "gcc -c a.c", True),
        (Phase.ADVANCE, "ujson 3.0.0", "gcc -c u.c", True),
        (Phase.ADVANCE, "markupsafe 2.1.5", "gcc -shared a.o", True),
        (Phase.FINISH, "markupsafe 2.1.5", None, True),
        (Phase.FINISH, "ujson 3.0.0", None, False),
    ]
    task = reporter.events[0].task
    assert (task.kind, task.arch, task.emulated) == (TaskKind.COMPILE, "arm64", True)
    assert reporter.lines == []  # not verbose: nothing streams


def test_lines_of_a_package_never_announced_are_not_its_log(tmp_path: Path) -> None:
    reporter = Recorder()
    logs = logs_for(tmp_path, reporter)
    logs.output("[ujson] before any === building line")
    logs.close(ok=True)
    assert logs.tail("ujson") == []
    assert reporter.events == []


def test_verbose_streams_every_line_but_the_drivers_bookkeeping(tmp_path: Path) -> None:
    reporter = Recorder()
    logs = logs_for(tmp_path, reporter, verbose=True)
    lines = [
        "=== building ujson 3.0.0",
        "[ujson] gcc -c u.c",
        "something else",
        "=== built ujson 3.0.0",
    ]
    for line in lines:
        logs.output(line)
    logs.close(ok=True)
    assert reporter.lines == lines[:3]


def test_tasks_left_open_are_finished_when_the_container_ends(tmp_path: Path) -> None:
    reporter = Recorder()
    logs = logs_for(tmp_path, reporter)
    logs.output("=== building markupsafe 2.1.5")
    logs.close(ok=False)  # the container died, or Ctrl-C
    assert [(e.phase, e.ok) for e in reporter.events] == [
        (Phase.START, True),
        (Phase.FINISH, False),
    ]


def test_a_failed_packages_whole_log_is_kept_and_its_tail_told(tmp_path: Path) -> None:
    reporter = Recorder()
    logs = logs_for(tmp_path, reporter)
    logs.output("=== building ujson 3.0.0")
    for number in range(45):
        logs.output(f"[ujson] line {number}")
        logs.output(f"[markupsafe] other {number}")
    logs.output("=== failed ujson 3.0.0")
    tail = logs.tail("ujson")
    assert len(tail) == TAIL_LINES
    assert tail[0] == f"line {45 - TAIL_LINES}"
    assert tail[-1] == "line 44"
    kept = logs.keep("ujson", "3.0.0", tmp_path / "logs")
    logs.close(ok=True)
    assert kept == tmp_path / "logs" / "compile-ujson-3.0.0-arm64.log"
    assert kept.read_text().splitlines() == [f"line {n}" for n in range(45)]
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]  # no temp file left


def test_a_package_that_streamed_nothing_keeps_the_drivers_tail(tmp_path: Path) -> None:
    logs = logs_for(tmp_path, Recorder())
    kept = logs.keep("markupsafe", "2.1.5", tmp_path / "logs", fallback=["fatal error: Python.h"])
    logs.close(ok=True)
    assert kept is not None
    assert kept.name == "compile-markupsafe-2.1.5-arm64.log"
    assert kept.read_text() == "fatal error: Python.h\n"
    assert logs.keep("ujson", "3.0.0", tmp_path / "logs") is None  # nothing at all: no file


def test_an_unwritable_logs_directory_is_no_log_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    logs = logs_for(tmp_path, Recorder())
    logs.output("=== building ujson 3.0.0")
    logs.output("[ujson] boom")
    assert logs.keep("ujson", "3.0.0", tmp_path / "file" / "logs") is None
    logs.close(ok=True)


def test_a_later_success_forgets_the_old_failure_log(tmp_path: Path) -> None:
    stale = tmp_path / "logs" / log_name("ujson", "3.0.0", "arm64")
    stale.parent.mkdir()
    stale.write_text("old failure\n")
    logs = logs_for(tmp_path, Recorder())
    logs.forget("ujson", "3.0.0", tmp_path / "logs")
    logs.close(ok=True)
    assert not stale.exists()


def test_everything_else_passes_straight_through(tmp_path: Path) -> None:
    reporter = Recorder()
    logs = logs_for(tmp_path, reporter)
    logs.step("Compiling")
    logs.close(ok=True)
    assert reporter.steps == ["Compiling"]
