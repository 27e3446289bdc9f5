"""Long work as the console tells it, without drawing anything: which tasks run and since when,
how each reads in one line, whether stderr gets the live display, and the heartbeat that keeps a
CI log from going silent while a compile runs for minutes.

Pure and clock-injected, so tests need neither a terminal nor 30 seconds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from nativebuild.reporting import Phase, ProgressEvent, Task, TaskKind

# Seconds without a line before the line-by-line output says what is still running (CI systems
# kill a job that prints nothing for ten minutes). Read when a Heartbeat is made.
HEARTBEAT_SECONDS = 30.0
HEARTBEAT_PREFIX = "    ... still running: "
MAX_NAMED = 4  # tasks a heartbeat names; the rest are counted

VERBS = {
    TaskKind.DOWNLOAD: "downloading",
    TaskKind.RESOLVE: "resolving",
    TaskKind.COMPILE: "compiling",
    TaskKind.CHECK: "checking",
    TaskKind.ARCHIVE: "writing",
    TaskKind.STRIP: "stripping",
    TaskKind.PROBE: "probing",
    TaskKind.IMAGE: "building",
}


def wants_live(
    *, is_terminal: bool, json_output: bool, quiet: bool, env: Mapping[str, str]
) -> bool:
    """The live display only on a terminal that can take it, when asked for everything: off
    a terminal, with --json or -q, NO_COLOR (any value but empty) or TERM=dumb, the output is
    line by line, as a log reads best."""
    return (
        is_terminal
        and not json_output
        and not quiet
        and not env.get("NO_COLOR")
        and env.get("TERM", "") != "dumb"
    )


def where(task: Task) -> str:
    """`` for arm64 under emulation``, `` for x86_64``, or nothing."""
    text = f" for {task.arch}" if task.arch else ""
    return text + (" under emulation" if task.emulated else "")


def describe(task: Task) -> str:
    """``compiling markupsafe 2.1.5 for arm64 under emulation``."""
    return f"{VERBS[task.kind]} {task.label}{where(task)}"


def format_elapsed(seconds: float) -> str:
    """``45s``, ``1m05s``, ``2h03m``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class RunningTasks:
    """The tasks started and not yet finished, with when each started (any thread)."""

    def __init__(self) -> None:
        self._started: dict[int, tuple[Task, float]] = {}
        self._lock = threading.Lock()

    def apply(self, event: ProgressEvent, now: float) -> None:
        if event.phase is Phase.ADVANCE:
            return
        with self._lock:
            if event.phase is Phase.START:
                self._started[event.task.id] = (event.task, now)
            else:
                self._started.pop(event.task.id, None)

    def running(self) -> list[tuple[Task, float]]:
        """In the order they started."""
        with self._lock:
            return sorted(self._started.values(), key=lambda item: item[1])


def heartbeat_text(
    running: list[tuple[Task, float]], step: tuple[str, float] | None, now: float
) -> str | None:
    """What a heartbeat says: the tasks still running, each with its elapsed time, else the
    last step and how long ago it began; None when nothing is known to run."""
    if running:
        named = [f"{describe(task)} ({format_elapsed(now - since)})" for task, since in running]
        more = len(named) - MAX_NAMED
        shown = "; ".join(named[:MAX_NAMED]) + (f"; and {more} more" if more > 0 else "")
        return HEARTBEAT_PREFIX + shown
    if step is not None:
        message, since = step
        return f"{HEARTBEAT_PREFIX}{message} ({format_elapsed(now - since)})"
    return None


class Heartbeat:
    """Says what is still running after ``interval`` seconds without a line, then again every
    ``interval`` seconds for as long as nothing else is printed.

    Told of every line printed (:meth:`touch`), every step and every progress event; :meth:`tick`
    decides, from ``clock``, whether a heartbeat is due and emits it. :meth:`running` calls tick
    from a background thread.
    """

    def __init__(
        self,
        emit: Callable[[str], None],
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self.interval = HEARTBEAT_SECONDS if interval is None else interval
        self._clock = clock
        self._tasks = RunningTasks()
        self._step: tuple[str, float] | None = None
        self._last_line = clock()
        self._lock = threading.Lock()

    def touch(self) -> None:
        """A line was printed: the next heartbeat is ``interval`` from now."""
        with self._lock:
            self._last_line = self._clock()

    def step(self, message: str) -> None:
        with self._lock:
            self._step = (message, self._clock())

    def progress(self, event: ProgressEvent) -> None:
        if event.phase is not Phase.ADVANCE:
            self._tasks.apply(event, self._clock())

    def tick(self) -> str | None:
        """Emit a heartbeat if one is due; the line emitted, or None."""
        with self._lock:
            now = self._clock()
            if now - self._last_line < self.interval:
                return None
            text = heartbeat_text(self._tasks.running(), self._step, now)
            if text is None:
                return None
            self._last_line = now
        self._emit(text)
        return text

    @contextlib.contextmanager
    def running(self) -> Iterator[Heartbeat]:
        """Tick from a daemon thread for the duration of the block."""
        stop = threading.Event()
        poll = min(1.0, self.interval / 4)

        def loop() -> None:
            while not stop.wait(poll):
                self.tick()

        thread = threading.Thread(target=loop, name="nativebuild-heartbeat", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
