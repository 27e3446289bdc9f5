"""The reporters the commands print through, on stderr.

:class:`ConsoleReporter` writes line by line, as every log reads it (and with a heartbeat while
long work runs silently); :class:`LiveReporter`, on a terminal, adds rich's live display: one row
per running task (download, compile, resolution, check, archive, probe, image build), which
disappears once done, leaving the same one-line summaries as the line-by-line output. Several
targets share the one display. :func:`open_reporter` chooses (see
:func:`nativebuild.cli.progress.wants_live`).

Nothing is highlighted automatically: colour comes only from the markup written here (headings,
package names, warnings), so ``python3.9`` or ``2.31`` read as one word.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from collections.abc import Iterator, Mapping

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.progress import Task as RichTask
from rich.table import Column
from rich.text import Text

from nativebuild.cli.progress import VERBS, Heartbeat, wants_live
from nativebuild.reporting import Phase, ProgressEvent, Task, TaskKind

REFRESH_PER_SECOND = 10


def stderr_console() -> Console:
    """Where progress goes: stderr, never wrapped by rich (a log keeps its long lines), never
    highlighted."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


class ConsoleReporter:
    """Progress on stderr, line by line: steps always, details and container output by
    verbosity; with a :class:`Heartbeat`, a line saying what still runs after a silence."""

    def __init__(
        self, console: Console, *, verbose: bool, quiet: bool, heartbeat: Heartbeat | None = None
    ) -> None:
        self.console = console
        self.verbose = verbose
        self.quiet = quiet
        self.heartbeat = heartbeat

    def _print(self, markup: str) -> None:
        # Styles as markup, never print(style=): under a live display, that style would
        # colour the display's rows too.
        self.console.print(markup, highlight=False)
        if self.heartbeat is not None:
            self.heartbeat.touch()

    def step(self, message: str) -> None:
        if self.heartbeat is not None:
            self.heartbeat.step(message)
        if not self.quiet:
            self._print(f"[bold]==>[/bold] {escape(message)}")

    def detail(self, message: str) -> None:
        if not self.quiet:
            self._print(f"[dim]    {escape(message)}[/dim]")

    def command(self, argv: list[str]) -> None:
        if not self.quiet:
            self._print(f"[dim]    + {escape(shlex.join(argv))}[/dim]")

    def output(self, line: str) -> None:
        if self.verbose:
            self._print(f"    | {escape(line)}")

    def warning(self, message: str) -> None:
        self._print(f"[yellow]warning:[/yellow] {escape(message)}")

    def progress(self, event: ProgressEvent) -> None:
        if self.heartbeat is not None:
            self.heartbeat.progress(event)


def task_markup(task: Task) -> str:
    """A row's words: ``compiling markupsafe 2.1.5 arm64 under emulation``, marked up."""
    text = f"[bold]{VERBS[task.kind]}[/bold] [cyan]{escape(task.label)}[/cyan]"
    if task.arch:
        text += f" [dim]{escape(task.arch)}[/dim]"
    if task.emulated:
        text += " [yellow]under emulation[/yellow]"
    return text


class StatusColumn(ProgressColumn):
    """A spinner while the task runs; a tick, or a cross, once it is done."""

    def __init__(self) -> None:
        super().__init__()
        self._spinner = SpinnerColumn()

    def render(self, task: RichTask) -> Text:
        ok = task.fields.get("ok")
        if ok is None:  # the spinner turns until the task says it is done, total reached or not
            rendered = self._spinner.spinner.render(task.get_time())
            return rendered if isinstance(rendered, Text) else Text(str(rendered))
        return Text("✓", style="green") if ok else Text("✗", style="red")


class DetailColumn(ProgressColumn):
    """Bytes and rate of a download, entries of an archive, else the last line of the log."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"))
        self._bytes = DownloadColumn()
        self._rate = TransferSpeedColumn()

    def render(self, task: RichTask) -> Text:
        kind = task.fields.get("kind")
        if kind is TaskKind.DOWNLOAD:
            return Text.assemble(self._bytes.render(task), " ", self._rate.render(task))
        if kind is TaskKind.ARCHIVE and task.total:
            return Text(f"{int(task.completed):,}/{int(task.total):,} files", style="dim")
        return Text(plain_line(str(task.fields.get("line") or "")), style="dim")


def plain_line(line: str) -> str:
    """A log line fit for one row: its colour codes and indentation dropped, tabs as one space
    (a compiler's escape sequences would move the cursor under the live display)."""
    return Text.from_ansi(line).plain.replace("\t", " ").strip()


class LiveReporter:
    """The terminal's reporter: lines as :class:`ConsoleReporter` prints them, above a live
    display of the tasks running now. A finished task's row stays (ticked, its time frozen)
    until the next line is printed, usually its own summary, or until no task runs; the
    display is then erased, so the screen keeps only the lines.

    Every line and every redraw happens under one lock, redrawn by this reporter's own ticker
    rather than rich's: rich redraws from its thread while another thread prints, and the two
    disagree on where the display is (rows left behind, lines erased).
    """

    def __init__(self, console: Console, *, verbose: bool) -> None:
        self.console = console
        self.lines = ConsoleReporter(console, verbose=verbose, quiet=False)
        self._progress = self._display()
        self._rows: dict[int, TaskID] = {}
        self._done: set[int] = set()
        self._live = False
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._ticker: threading.Thread | None = None

    def _display(self) -> Progress:
        # A new one each time rows appear, so no state of an earlier display carries over.
        return Progress(
            StatusColumn(),
            TextColumn("{task.description}", table_column=Column(no_wrap=True)),
            TimeElapsedColumn(),
            DetailColumn(),
            console=self.console,
            auto_refresh=False,  # redrawn by _tick, under self._lock
            transient=True,
            expand=True,
            redirect_stdout=False,  # stdout carries the result (archive paths, JSON)
            redirect_stderr=False,
        )

    def step(self, message: str) -> None:
        with self._lock:
            self._sweep()
            self.lines.step(message)

    def detail(self, message: str) -> None:
        with self._lock:
            self._sweep()
            self.lines.detail(message)

    def command(self, argv: list[str]) -> None:
        with self._lock:
            self._sweep()
            self.lines.command(argv)

    def output(self, line: str) -> None:
        with self._lock:
            self.lines.output(line)

    def warning(self, message: str) -> None:
        with self._lock:
            self._sweep()
            self.lines.warning(message)

    def progress(self, event: ProgressEvent) -> None:
        task = event.task
        with self._lock:
            if event.phase is Phase.START:
                self._show()
                self._rows[task.id] = self._progress.add_task(
                    task_markup(task), total=task.total, kind=task.kind, line="", ok=None
                )
                return
            row = self._rows.get(task.id)
            if row is None or task.id in self._done:
                return
            if event.phase is Phase.ADVANCE:
                changes: dict[str, object] = {}
                if event.line is not None:
                    changes["line"] = event.line
                if event.total is not None:
                    changes["total"] = event.total
                if event.completed is not None:
                    changes["completed"] = event.completed
                self._progress.update(row, **changes)  # type: ignore[arg-type]
                return
            self._progress.stop_task(row)  # freezes its elapsed time
            self._progress.update(row, ok=event.ok)
            self._done.add(task.id)
            if len(self._done) == len(self._rows):
                self._sweep()

    def close(self) -> None:
        self._closing.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            self._done.update(self._rows)
            self._sweep()

    def _show(self) -> None:
        """Start the display, if it is not showing (under self._lock)."""
        if self._live:
            return
        self._progress = self._display()
        self._progress.start()
        self._live = True
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="nativebuild-live", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._closing.wait(1 / REFRESH_PER_SECOND):
            with self._lock:
                if self._live:
                    self._progress.refresh()

    def _sweep(self) -> None:
        """Remove the rows of finished tasks; stop (and erase) the display when none is left
        (under self._lock)."""
        removed = bool(self._done)
        if self._live and set(self._rows) <= self._done:
            # Erased with its rows still on it: rich before 15 leaves a blank line when the
            # display it stops is empty.
            self._progress.stop()
            self._live = False
        for task_id in list(self._done):
            self._progress.remove_task(self._rows.pop(task_id))
        self._done.clear()
        if self._live and removed:
            self._progress.refresh()  # else the next line is printed above the rows just gone


@contextlib.contextmanager
def open_reporter(
    console: Console,
    *,
    verbose: bool,
    quiet: bool,
    json_output: bool = False,
    env: Mapping[str, str] | None = None,
    is_terminal: bool | None = None,
) -> Iterator[ConsoleReporter | LiveReporter]:
    """The reporter for one command, live on a terminal (see :func:`wants_live`), else line by
    line with heartbeats (none with -q, which promises errors only); closed, the live display
    erased and the heartbeat stopped, when the block ends."""
    env = os.environ if env is None else env
    if is_terminal is None:
        isatty = getattr(console.file, "isatty", None)
        is_terminal = bool(isatty()) if isatty is not None else False
    if wants_live(is_terminal=is_terminal, json_output=json_output, quiet=quiet, env=env):
        live = LiveReporter(console, verbose=verbose)
        try:
            yield live
        finally:
            live.close()
        return
    if quiet:
        yield ConsoleReporter(console, verbose=verbose, quiet=True)
        return

    def emit(text: str) -> None:
        console.print(f"[dim]{escape(text)}[/dim]", highlight=False)

    heartbeat = Heartbeat(emit)
    with heartbeat.running():
        yield ConsoleReporter(console, verbose=verbose, quiet=False, heartbeat=heartbeat)
