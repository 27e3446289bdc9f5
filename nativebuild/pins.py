"""Exact distributions: what a resolution answers and what a lock file states, the same records
for both, so every stage after the inputs (plan, downloads, compiles, archives) reads one shape.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

RESOLVER_VERSION = "1"  # bump when the resolution command or its parsing changes


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pin:
    """One distribution to install, and the exact file that provides it."""

    name: str  # canonical
    version: str
    filename: str
    url: str  # without credentials
    sha256: str

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Pin:
        return cls(**{f.name: str(data[f.name]) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Resolution:
    pins: tuple[Pin, ...]

    def to_json(self) -> dict[str, Any]:
        return {"resolver": RESOLVER_VERSION, "pins": [p.to_json() for p in self.pins]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resolution:
        return cls(pins=tuple(Pin.from_json(p) for p in data["pins"]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class FileRef:
    """A file an index or a lock file offers for a distribution."""

    url: str  # without credentials
    filename: str
    sha256: str


def filename_of(url: str) -> str:
    return unquote(posixpath.basename(urlsplit(url).path))
