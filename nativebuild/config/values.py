"""Converters for setting values that arrive as TOML values or as environment strings."""

from __future__ import annotations

from typing import Any

from nativebuild.errors import ConfigError

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
