"""Settings of the ABI checks, repair and system build dependencies: config keys and converters,
for config.resolve.

::

    [tool.nativebuild]
    check = true                  # check every binary against the runtime before writing
    repair = true                 # vendor the libraries the runtime lacks into compiled wheels
    verify = false                # import every module in the runtime image after building
    build-packages = ["libpq-devel"]          # installed in the build image (dnf, yum or apt)
    before-build = ["pip install cython"]     # shell commands run in the build image
"""

from __future__ import annotations

import re
from typing import Any

from nativebuild.config.values import as_flag
from nativebuild.errors import ConfigError

KEYS = ("check", "repair", "verify", "build-packages", "before-build")
BOOL_KEYS = frozenset({"check", "repair", "verify"})
# Package names of dnf, yum and apt (with an optional version or architecture qualifier).
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._:~=<>*-]*$")


def _list(value: Any, key: str, origin: str, *, split: bool) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split() if split else [value]
    if not isinstance(value, list | tuple) or not all(isinstance(i, str) for i in value):
        msg = f"{key} in {origin} must be a list of strings, not {value!r}."
        raise ConfigError(msg)
    return tuple(item.strip() for item in value if item.strip())


def convert(key: str, raw: Any, origin: str) -> Any:
    if key in BOOL_KEYS:
        return as_flag(raw, key, origin)
    if key == "build-packages":
        packages = _list(raw, key, origin, split=True)
        for package in packages:
            if not _PACKAGE.match(package):
                msg = f"build-packages in {origin}: {package!r} is not a package name."
                raise ConfigError(msg, hint='For example build-packages = ["libpq-devel"].')
        return tuple(dict.fromkeys(packages))
    if key == "before-build":
        # Each entry is one shell command (NATIVEBUILD_BEFORE_BUILD holds a single one).
        return _list(raw, key, origin, split=False)
    msg = f"Unknown setting {key!r}."
    raise ConfigError(msg)
