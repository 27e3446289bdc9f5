"""Settings of archives and layers: their config keys and converters, for config.resolve.

``functions`` is an array of tables in pyproject.toml (or a JSON array of objects in
``NATIVEBUILD_FUNCTIONS``)::

    [[tool.nativebuild.functions]]
    name = "orders"                       # file name: orders-python3.12-x86_64.zip
    src = "functions/orders"
    requirements = "functions/orders/requirements.txt"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nativebuild.archive.image import parse_handler
from nativebuild.archive.layout import FunctionSpec, Kind, LayerLayout
from nativebuild.archive.slim import compile_glob, parse_rules
from nativebuild.config.values import as_flag, as_path
from nativebuild.errors import ConfigError

KEYS = (
    "kind",
    "layer-layout",
    "compile",
    "slim",
    "include",
    "exclude",
    "with-layers",
    "functions",
    "handler",
    "load",
)
_FUNCTION_KEYS = ("name", "requirements", "src")


def _text(value: Any, key: str, origin: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    msg = f"{key} in {origin} must be a non-empty string, not {value!r}."
    raise ConfigError(msg)


def _strings(value: Any, key: str, origin: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        msg = f"{key} in {origin} must be a list of strings, not {value!r}."
        raise ConfigError(msg)
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _path(value: Any, key: str, origin: str, base: Path) -> Path:
    return as_path(_text(value, key, origin), base)


def _functions(value: Any, origin: str, base: Path) -> tuple[FunctionSpec, ...]:
    if isinstance(value, str):  # NATIVEBUILD_FUNCTIONS: a JSON array of objects
        try:
            value = json.loads(value)
        except ValueError as err:
            msg = f"functions in {origin} must be a JSON array of objects: {err}."
            raise ConfigError(msg) from err
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        msg = f"functions in {origin} must be an array of tables ([[tool.nativebuild.functions]])."
        raise ConfigError(msg, hint="Each needs a name and requirements; src is optional.")
    specs = []
    for number, table in enumerate(value, 1):
        where = f"function #{number} in {origin}"
        unknown = sorted(set(table) - set(_FUNCTION_KEYS))
        if unknown:
            msg = f"{where}: unknown keys {unknown}; use {', '.join(_FUNCTION_KEYS)}."
            raise ConfigError(msg)
        if "name" not in table or "requirements" not in table:
            msg = f"{where} needs a name and a requirements file."
            raise ConfigError(msg)
        src = table.get("src")
        specs.append(
            FunctionSpec(
                name=_text(table["name"], "name", where),
                requirements=_path(table["requirements"], "requirements", where, base),
                src=None if src is None else _path(src, "src", where, base),
            )
        )
    return tuple(specs)


def convert(key: str, raw: Any, origin: str, base: Path) -> Any:
    """The typed value of one of :data:`KEYS` from one layer of the cascade."""
    if key == "kind":
        return Kind.parse(_text(raw, key, origin), origin)
    if key == "layer-layout":
        return LayerLayout.parse(_text(raw, key, origin), origin)
    if key in ("compile", "load"):
        return as_flag(raw, key, origin)
    if key == "handler":
        return parse_handler(_text(raw, key, origin), origin)
    if key == "slim":
        return parse_rules(raw, origin)
    if key in ("include", "exclude"):
        globs = _strings(raw, key, origin)
        for glob in globs:
            compile_glob(glob)  # reject empty or meaningless globs now
        return globs
    if key == "with-layers":
        return tuple(_path(item, key, origin, base) for item in _strings(raw, key, origin))
    if key == "functions":
        return _functions(raw, origin, base)
    msg = f"Not an archive setting: {key!r}."  # pragma: no cover - config routes by KEYS
    raise ConfigError(msg)
