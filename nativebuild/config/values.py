"""Converters for setting values that arrive as TOML values or as environment strings."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nativebuild.errors import ConfigError

# Path settings as written (joined to their base) -> where they resolved, while recorded.
_RESOLVED: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "nativebuild_resolved_paths", default=None
)

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def as_flag(value: Any, key: str, origin: str) -> bool:
    """A true/false setting from TOML (a bool) or the environment (1/0, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    msg = f"{key} in {origin} must be true or false (1/0, yes/no, on/off), not {value!r}."
    raise ConfigError(msg)


def as_path(text: str, base: Path) -> Path:
    """A path setting: ``~`` expanded, relative to ``base``, links resolved."""
    written = base / Path(text).expanduser()
    resolved = written.resolve()
    note_path(written, resolved)
    return resolved


def note_path(written: Path, resolved: Path) -> None:
    """Add a path resolved elsewhere to what :func:`recording_paths` records."""
    seen = _RESOLVED.get()
    if seen is not None:
        seen[str(written)] = str(resolved)


@contextlib.contextmanager
def recording_paths() -> Iterator[dict[str, str]]:
    """Every path setting resolved inside the block, as written -> as resolved: a quick
    answer (nativebuild.pipeline.quick) must see when a link now leads elsewhere."""
    seen: dict[str, str] = {}
    token = _RESOLVED.set(seen)
    try:
        yield seen
    finally:
        _RESOLVED.reset(token)
