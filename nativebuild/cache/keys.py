"""Cache keys: what names an entry, the same on every machine and in every nativebuild version
that shares a cache (local or S3). Changing anything here invalidates every cache: bump
:data:`CACHE_LAYOUT_VERSION` deliberately, never by accident.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nativebuild.errors import CacheError

CACHE_LAYOUT_VERSION = 1


def file_identity(path: Path) -> str:
    """``path`` with its size and modification time: stands for its bytes where files are never
    changed in place (cached wheels), and changes when a source file is edited."""
    info = path.stat()
    return f"{path}|{info.st_size}|{info.st_mtime_ns}"


def build_key(fields: Mapping[str, str]) -> str:
    """The cache key of a built wheel: sha256 of the canonical JSON of ``fields`` + layout."""
    if "layout" in fields:
        msg = "Cache key fields must not contain 'layout': the cache adds it itself."
        raise CacheError(msg)
    document = {**fields, "layout": CACHE_LAYOUT_VERSION}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def manifest_key_problem(manifest: Mapping[str, Any], key: str) -> str | None:
    """Why a built wheel's manifest does not belong under ``key``, or None when it does.

    Its ``key`` is the full set of key fields (which must hash to ``key``: see build_key) or,
    as older versions wrote it, ``key`` itself; a manifest without one is not checked.
    """
    declared = manifest.get("key")
    if declared is None or declared == key:
        return None
    if isinstance(declared, str):
        return f"manifest is for the key {declared[:64]!r}"
    if not isinstance(declared, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in declared.items()
    ):
        return "manifest's key is neither key fields nor a key"
    if "layout" in declared:
        return "manifest's key fields name a layout"
    hashed = build_key(declared)
    return None if hashed == key else f"manifest's key fields hash to {hashed}, not to this key"
