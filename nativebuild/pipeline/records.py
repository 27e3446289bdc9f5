"""The small files a build leaves in the local cache's ``builds/`` folder, as ``cache prune``
sees them: an up-to-date record per output directory (:mod:`nativebuild.pipeline.uptodate`) and
a quick answer per command line and working directory (:mod:`nativebuild.pipeline.quick`).

Each is a few kilobytes, but every directory ever built into adds one (CI runners build in fresh
temporary folders), so prune treats them as entries like any other (least recently used first),
and always drops those that can never answer again: a record whose archives are all gone, a
quick answer whose record is gone or goes with them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from nativebuild.cache.maintenance import LocalEntry
from nativebuild.pipeline.quick import INDEX_DIR
from nativebuild.pipeline.uptodate import STATE_DIR

RECORD = "record"
QUICK = "quick"


def _read(path: Path) -> dict[str, object]:
    with contextlib.suppress(OSError, ValueError):
        document = json.loads(path.read_bytes())
        if isinstance(document, dict):
            return document
    return {}


def _outputs(record: dict[str, object]) -> list[str]:
    outputs = record.get("outputs")
    return [str(p) for p in outputs] if isinstance(outputs, dict) else []


def _entry(kind: str, path: Path, name: str) -> LocalEntry | None:
    try:
        info = path.stat()
    except OSError:
        return None  # removed meanwhile
    return LocalEntry(
        kind=kind, key=path.stem, name=name, path=path, size=info.st_size, last_used=info.st_mtime
    )


def build_records(root: Path) -> Iterator[LocalEntry]:
    """Every record and quick answer under ``root``; a record is named by the folder of its
    archives, a quick answer by the folder of the record it answered from."""
    builds = root / STATE_DIR
    folders: dict[str, str] = {}
    for path in sorted(builds.glob("*.json")):
        outputs = _outputs(_read(path))
        folder = os.path.commonpath([str(Path(p).parent) for p in outputs]) if outputs else "?"
        folders[str(path.absolute())] = folder
        if (entry := _entry(RECORD, path, folder)) is not None:
            yield entry
    for path in sorted((root / INDEX_DIR).glob("*.json")):
        record = str(_read(path).get("record", ""))
        if (entry := _entry(QUICK, path, folders.get(record, "?"))) is not None:
            yield entry


def orphaned(entries: Iterable[LocalEntry]) -> list[LocalEntry]:
    """The records (of ``entries``) none of whose archives is still there, and the quick answers
    whose record is missing, orphaned, or unreadable: none of them can answer a build again."""
    entries = list(entries)
    dead_records: set[str] = set()
    found = []
    for entry in entries:
        if entry.kind == RECORD and not any(map(os.path.exists, _outputs(_read(entry.path)))):
            dead_records.add(str(entry.path.absolute()))
            found.append(entry)
    for entry in entries:
        if entry.kind != QUICK:
            continue
        record = str(_read(entry.path).get("record", ""))
        if not record or record in dead_records or not Path(record).is_file():
            found.append(entry)
    return found
