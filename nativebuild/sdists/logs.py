"""The output of a compile container, split into one build log per package.

nativebuild's driver (``drivers/build_wheels.py``) builds several packages at once and prefixes
each line with its package: ``=== building NAME VERSION`` when one starts, ``[NAME] line`` for
its log, ``=== built NAME`` or ``=== failed NAME`` when it ends. :class:`BuildLogs` sits between
the container and the build's reporter: it turns those lines into one compile task per package
(its elapsed time and last line, for a live display), writes each package's log to a file as
it comes, and forwards the lines to the reporter only when verbose, as before. A failed
package's whole log is then kept (:meth:`BuildLogs.keep`) in a logs directory: the pipeline's
is ``logs/`` in the cache directory, so a failed build still leaves nothing in the output.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from nativebuild.reporting import ForwardingReporter, Reporter, TaskHandle, TaskKind, start_task

TAIL_LINES = 30  # of a failed package's log, in the error message

_PACKAGE_LINE = re.compile(r"^\[([^\]\s]+)\] ?(.*)$")
_START = "=== building "
_END = re.compile(r"^=== (built|failed) (\S+)")


def log_name(name: str, version: str, arch: str) -> str:
    """``compile-markupsafe-2.1.5-x86_64.log``: one per package, version and architecture."""
    return f"compile-{name}-{version}-{arch}.log"


def split_line(line: str) -> tuple[str, str] | None:
    """``("markupsafe", "gcc -c ...")`` for ``[markupsafe] gcc -c ...``; None for other lines."""
    match = _PACKAGE_LINE.match(line)
    return (match.group(1), match.group(2)) if match else None


class BuildLogs(ForwardingReporter):
    """A Reporter for one compile container (see the module's docstring); :meth:`close` it
    whatever happens, so that every task is finished and every file closed."""

    def __init__(
        self, reporter: Reporter, *, workdir: Path, arch: str, emulated: bool, verbose: bool
    ) -> None:
        """``workdir``: where the logs are written while the container runs (a scratch
        directory). The packages are learned from the driver's ``=== building`` lines (a
        container that resolves first decides what to build on the way)."""
        super().__init__(reporter)
        self._verbose = verbose
        self._arch = arch
        self._emulated = emulated
        self._versions: dict[str, str] = {}
        self._dir = workdir
        self._dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[str]] = {}
        self._tails: dict[str, collections.deque[str]] = {}
        self._tasks: dict[str, TaskHandle] = {}
        self._lock = threading.Lock()

    # The Reporter protocol: everything but output goes straight through (ForwardingReporter).

    def output(self, line: str) -> None:
        end = _END.match(line)
        if end is not None and end.group(2) in self._versions:
            self._finish(end.group(2), ok=end.group(1) == "built")
            return  # the driver's bookkeeping, not part of any log
        if self._verbose:
            self._reporter.output(line)
        if line.startswith(_START):
            name, _, version = line[len(_START) :].partition(" ")
            if name:
                self._start(name, version.strip())
            return
        split = split_line(line)
        if split is None or split[0] not in self._versions:
            return
        name, text = split
        with self._lock:
            self._tails[name].append(text)
            self._file(name).write(text + "\n")
            task = self._tasks.get(name)
        if task is not None:
            task.advance(line=text)

    # What the pipeline asks once the container is done.
    def tail(self, name: str) -> list[str]:
        """The last TAIL_LINES lines of ``name``'s build log (empty when it printed none)."""
        return list(self._tails.get(name, ()))

    def keep(
        self, name: str, version: str, logs_dir: Path, *, fallback: Sequence[str] = ()
    ) -> Path | None:
        """Copy ``name``'s whole log into ``logs_dir`` (atomically, replacing an older one);
        ``fallback`` (the driver's own tail) when the container streamed none. Its path, or
        None when there is nothing to keep or it could not be written."""
        with self._lock:
            handle = self._files.pop(name, None)
            if handle is None and fallback:
                handle = self._file(name)
                handle.writelines(f"{line}\n" for line in fallback)
                del self._files[name]
        if handle is None:
            return None
        handle.close()
        dest = logs_dir / log_name(name, version, self._arch)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            _copy_atomic(self._dir / f"{name}.log", dest)
        except OSError:
            return None
        return dest

    def forget(self, name: str, version: str, logs_dir: Path) -> None:
        """``name`` built: a log of an earlier failure of the same build would only mislead."""
        stale = logs_dir / log_name(name, version, self._arch)
        with contextlib.suppress(OSError):
            stale.unlink(missing_ok=True)

    def close(self, *, ok: bool) -> None:
        """Finish every task still open (``ok``: whether the container's run succeeded) and
        close every file; what was kept stays."""
        for name in list(self._tasks):
            self._finish(name, ok=ok)
        with self._lock:
            files, self._files = list(self._files.values()), {}
        for handle in files:
            handle.close()

    def _start(self, name: str, version: str) -> None:
        label = f"{name} {version}".strip()
        task = start_task(
            self._reporter, TaskKind.COMPILE, label, arch=self._arch, emulated=self._emulated
        )
        with self._lock:
            self._versions[name] = version
            self._tails.setdefault(name, collections.deque(maxlen=TAIL_LINES))
            old = self._tasks.pop(name, None)
            self._tasks[name] = task
        if old is not None:
            old.finish(ok=False)

    def _finish(self, name: str, *, ok: bool) -> None:
        with self._lock:
            task = self._tasks.pop(name, None)
            handle = self._files.get(name)
        if handle is not None:
            handle.flush()
        if task is not None:
            task.finish(ok=ok)

    def _file(self, name: str) -> IO[str]:
        # Under self._lock. Opened on the first line: a package that printed nothing has none.
        handle = self._files.get(name)
        if handle is None:
            handle = (self._dir / f"{name}.log").open("a", encoding="utf-8")
            self._files[name] = handle
        return handle


def _copy_atomic(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` through a temp file beside it: no half-written log."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
