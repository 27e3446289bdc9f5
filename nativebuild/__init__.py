"""nativebuild: Lambda archives with native dependencies, compiled once, cached, reproducible."""

from __future__ import annotations

__version__ = "0.1.0"
