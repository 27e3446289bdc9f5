"""How the library tells the outside world what it is doing.

The library never prints: it calls a :class:`Reporter`. The CLI installs one that writes to
stderr; library users get :class:`LoggingReporter` unless they pass their own.

Long work (a download, a compile, the in-image resolution, the ABI check, an archive, a probe,
an image build) is also announced as a :class:`Task` that starts, advances and finishes
(:func:`track`), so a terminal can show it live and a log can say what is still running. The
events are small frozen records; a reporter written before they existed (no ``progress``
method) keeps working and never hears of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Protocol

LOGGER = logging.getLogger("nativebuild")


class TaskKind(enum.Enum):
    DOWNLOAD = "download"  # completed/total in bytes
    RESOLVE = "resolve"
    COMPILE = "compile"  # one per package; ``line`` is the last line of its build log
    CHECK = "check"  # the ABI check of archives, or importing them in the runtime image
    ARCHIVE = "archive"  # completed/total in entries
    STRIP = "strip"  # debug symbols out of compiled shared objects
    PROBE = "probe"  # a container that finds out what an image or engine can do
    IMAGE = "image"  # building an image; ``line`` is the last line of its log


class Phase(enum.Enum):
    START = "start"
    ADVANCE = "advance"
    FINISH = "finish"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Task:
    """One piece of long work, as a display names it: ``compile markupsafe 2.1.5 arm64``."""

    id: int  # unique in the process
    kind: TaskKind
    label: str  # what is worked on: a package, a file name, an image
    arch: str | None = None  # x86_64 | arm64; None when no architecture applies
    emulated: bool = False  # runs under QEMU on an engine of another machine
    total: int | None = None  # bytes or entries, when known from the start


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    phase: Phase
    task: Task
    completed: int | None = None  # bytes or entries done so far (ADVANCE)
    total: int | None = None  # learned on the way (a download's Content-Length)
    line: str | None = None  # the last line of the task's log (ADVANCE)
    ok: bool = True  # FINISH: whether the work succeeded


class Reporter(Protocol):
    def step(self, message: str) -> None:
        """A phase of the build begins ("Resolving 12 requirements for python3.12 x86_64")."""

    def detail(self, message: str) -> None:
        """Something worth a line at normal verbosity (a download, a cache hit)."""

    def command(self, argv: list[str]) -> None:
        """A command about to run inside a container (echoed as ``+ cmd``)."""

    def output(self, line: str) -> None:
        """A line of container output, streamed live only when verbose."""

    def warning(self, message: str) -> None: ...

    def progress(self, event: ProgressEvent) -> None:
        """Long work started, moved or ended (see :func:`track`); a live display shows it,
        a log may ignore it. Called from any thread, often: keep it cheap."""


class LoggingReporter:
    """Default reporter for library use: everything goes to the ``nativebuild`` logger."""

    def step(self, message: str) -> None:
        LOGGER.info("%s", message)

    def detail(self, message: str) -> None:
        LOGGER.info("%s", message)

    def command(self, argv: list[str]) -> None:
        LOGGER.debug("+ %s", " ".join(argv))

    def output(self, line: str) -> None:
        LOGGER.debug("%s", line)

    def warning(self, message: str) -> None:
        LOGGER.warning("%s", message)

    def progress(self, event: ProgressEvent) -> None:
        if event.phase is not Phase.ADVANCE:
            task = event.task
            LOGGER.debug("%s %s %s", event.phase.value, task.kind.value, task.label)


class NullReporter:
    """Says nothing; for tests and for callers that only want the result."""

    def step(self, message: str) -> None:
        pass

    def detail(self, message: str) -> None:
        pass

    def command(self, argv: list[str]) -> None:
        pass

    def output(self, line: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def progress(self, event: ProgressEvent) -> None:
        pass


_task_ids = itertools.count(1)  # next() is atomic: tasks start on many threads


class TaskHandle:
    """A started task: advance it, then finish it (:func:`track` finishes it for you)."""

    def __init__(self, reporter: Reporter, task: Task) -> None:
        self.task = task
        # Reporters from before progress events have no such method: they hear nothing.
        self._emit: Callable[[ProgressEvent], None] | None = getattr(reporter, "progress", None)
        self.finished = False

    def start(self) -> None:
        if self._emit is not None:
            self._emit(ProgressEvent(phase=Phase.START, task=self.task))

    def advance(
        self, *, completed: int | None = None, total: int | None = None, line: str | None = None
    ) -> None:
        if self._emit is not None and not self.finished:
            event = ProgressEvent(
                phase=Phase.ADVANCE, task=self.task, completed=completed, total=total, line=line
            )
            self._emit(event)

    def finish(self, *, ok: bool = True) -> None:
        if self.finished:
            return
        self.finished = True
        if self._emit is not None:
            self._emit(ProgressEvent(phase=Phase.FINISH, task=self.task, ok=ok))


def start_task(
    reporter: Reporter,
    kind: TaskKind,
    label: str,
    *,
    arch: str | None = None,
    emulated: bool = False,
    total: int | None = None,
) -> TaskHandle:
    """Announce a task and return its handle; the caller must finish it (prefer :func:`track`)."""
    task = Task(
        id=next(_task_ids), kind=kind, label=label, arch=arch, emulated=emulated, total=total
    )
    handle = TaskHandle(reporter, task)
    handle.start()
    return handle


@contextlib.contextmanager
def track(
    reporter: Reporter,
    kind: TaskKind,
    label: str,
    *,
    arch: str | None = None,
    emulated: bool = False,
    total: int | None = None,
) -> Iterator[TaskHandle]:
    """A task for the duration of the block: finished ok when the block ends, failed when it
    raises (Ctrl-C included)."""
    handle = start_task(reporter, kind, label, arch=arch, emulated=emulated, total=total)
    ok = False
    try:
        yield handle
        ok = True
    finally:
        handle.finish(ok=ok)


class ForwardingReporter:
    """A Reporter that passes everything on to ``reporter``: subclasses change only what
    they must (usually ``output``)."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter

    def step(self, message: str) -> None:
        self._reporter.step(message)

    def detail(self, message: str) -> None:
        self._reporter.detail(message)

    def command(self, argv: list[str]) -> None:
        self._reporter.command(argv)

    def output(self, line: str) -> None:
        self._reporter.output(line)

    def warning(self, message: str) -> None:
        self._reporter.warning(message)

    def progress(self, event: ProgressEvent) -> None:
        emit = getattr(self._reporter, "progress", None)
        if emit is not None:
            emit(event)


class TaskOutput(ForwardingReporter):
    """A Reporter that passes everything on to ``reporter`` and also shows each output line as
    ``task``'s last line: for a container or an image build whose log is one task's."""

    def __init__(self, reporter: Reporter, task: TaskHandle) -> None:
        super().__init__(reporter)
        self._task = task

    def output(self, line: str) -> None:
        self._task.advance(line=line)
        self._reporter.output(line)
