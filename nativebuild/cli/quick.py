"""The quick answer: an unchanged ``build`` or ``sam build``, answered before typer, rich or the
settings are imported (the index and its checks are :mod:`nativebuild.pipeline.quick`'s).

:func:`nativebuild.cli.main` asks :func:`answer` first. The full command line keeps an answer
(:func:`keep`) each time it finds a build up to date, with the exact text it printed; the same
invocation (arguments, directory, environment, the streams' output mode, the day) with nothing
changed prints that text again and exits 0. Standard library only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from nativebuild.pipeline.quick import (
    Answer,
    Invocation,
    Output,
    StrPath,
    config_files,
    lookup,
    remember,
)

if TYPE_CHECKING:
    from nativebuild.pipeline.uptodate import UpToDate

# The invocation this process is answering through the typer app (set by main): only then is
# an answer kept (a test's CliRunner has no command line of its own).
current: Invocation | None = None


def stream_mode() -> tuple[object, ...]:
    """Whatever decides how the same text is printed: which standard streams are terminals and
    their size, and the encodings of stdout and stderr."""
    mode: list[object] = []
    for fd in (0, 1, 2):
        terminal = os.isatty(fd)
        size = None
        if terminal:
            try:
                size = tuple(os.get_terminal_size(fd))
            except OSError:
                size = None
        mode.append([terminal, size])
    for stream in (sys.stdout, sys.stderr):
        mode.append([getattr(stream, "encoding", None), getattr(stream, "errors", None)])
    return tuple(mode)


def this_invocation() -> Invocation:
    return Invocation(
        argv=tuple(sys.argv[1:]), cwd=os.getcwd(), env=dict(os.environ), mode=stream_mode()
    )


def emit(output: Output) -> None:
    """Print ``output`` as the command printed it: each piece on its stream, in order."""
    for stream, text in output:
        if text:
            target = sys.stdout if stream == "stdout" else sys.stderr
            target.write(text)
            target.flush()


def answer(invocation: Invocation) -> bool:
    """Print the kept answer of ``invocation`` when nothing it depended on changed."""
    output = lookup(invocation)
    if output is None:
        return False
    emit(output)
    return True


def keep(
    output: Output, *, found: UpToDate, config: Iterable[StrPath], links: Mapping[str, str]
) -> None:
    """Keep what this invocation printed for an up-to-date build, for the next identical one."""
    if current is None:
        return
    remember(
        current,
        Answer(
            record=found.record,
            record_sha256=found.record_sha256,
            config=config_files(config),
            links=links,
            output=output,
        ),
    )
