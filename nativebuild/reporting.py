"""How the library tells the outside world what it is doing.

The library never prints: it calls a :class:`Reporter`. The CLI installs one that writes to
stderr; library users get :class:`LoggingReporter` unless they pass their own.
"""

from __future__ import annotations

import logging
from typing import Protocol

LOGGER = logging.getLogger("nativebuild")


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
