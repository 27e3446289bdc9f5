"""Nothing changed since the last build: answer at once, before the pipeline is even imported.

After a build, the cache keeps (per output directory, on this machine only) a record of
everything the archives were made from:
the settings, the environment that steers pip and nativebuild (as digests: values can be
secrets), the content of every input file (requirements and their includes, lock files,
pyproject.toml, pip's configuration files, local projects, the source tree, layers built
elsewhere), the id of every image the build used, and the archives it wrote. A later build
with the same record finds its archives as they were and reports them: no resolution, no cache
lookup, no archive written. Anything unknown, changed or unreadable means a real build; a file
whose size and modification time are unchanged is not read again, one that was touched is
hashed and compared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nativebuild import __version__
from nativebuild.cache.local import default_cache_dir
from nativebuild.config.settings import Settings
from nativebuild.pipeline import quick
from nativebuild.pipeline.quick import (
    ImageIds,
    environment_digest,
    file_record,
    inputs_unchanged,
    tree_files,
)

STATE_DIR = "builds"  # in the local cache: records are machine-local (absolute paths)
FORMAT = 1
_ENV_REFERENCE = re.compile(rb"\$\{([A-Z0-9_]+)\}")  # pip expands ${NAME} in requirements


@dataclasses.dataclass(frozen=True, kw_only=True)
class UpToDate:
    """The last build's answer, and the record it came from (its path and digest, for the
    quick index of :mod:`nativebuild.pipeline.quick`)."""

    result: dict[str, Any]
    record: Path
    record_sha256: str


def state_path(settings: Settings, env: Mapping[str, str]) -> Path:
    """Where the record of the last build into ``settings.output`` is kept."""
    root = settings.cache_dir or default_cache_dir(env)
    name = hashlib.sha256(str(settings.output.absolute()).encode()).hexdigest()
    return root / STATE_DIR / f"{name}.json"


def request_digest(request: Mapping[str, Any] | None) -> str:
    """What a command adds to its settings (sam build: the template, its parameters)."""
    document = json.dumps(dict(request or {}), sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()


def settings_digest(settings: Settings) -> str:
    document = json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()


def capture(
    settings: Settings,
    env: Mapping[str, str],
    *,
    input_files: Iterable[Path],
    input_trees: Iterable[Path],
    absent_files: Iterable[Path] = (),
    images: Mapping[str, str],
    outputs: Iterable[Path],
    result: Mapping[str, Any],
    request: Mapping[str, Any] | None = None,
    written: Mapping[Path, tuple[int, str]] | None = None,
) -> dict[str, Any]:
    """The record of a build that just succeeded (to write with :func:`write`). ``written``:
    the size and sha256 of outputs the build hashed as it wrote them (not read again: an
    image tarball is as big as its base image)."""
    files: dict[str, dict[str, Any]] = {}
    trees: dict[str, list[str]] = {}
    referenced: set[str] = set()
    for path in input_files:
        files[str(path.absolute())] = file_record(path)
        referenced |= {m.decode() for m in _ENV_REFERENCE.findall(path.read_bytes())}
    for tree in input_trees:
        members = tree_files(tree)
        trees[str(tree.absolute())] = members
        files.update({str(Path(p).absolute()): file_record(p) for p in members})
    return {
        "format": FORMAT,
        "nativebuild": __version__,
        "settings": settings_digest(settings),
        "request": request_digest(request),
        "env": environment_digest(env, referenced),
        "referenced_env": sorted(referenced),
        "files": files,
        "trees": trees,
        "absent": sorted(str(p.absolute()) for p in absent_files),  # pip config files to be
        "images": dict(images),
        "outputs": {str(p.absolute()): _output_record(p, written or {}) for p in outputs},
        "result": dict(result),
    }


def _output_record(path: Path, written: Mapping[Path, tuple[int, str]]) -> dict[str, Any]:
    known = written.get(path)
    if known is None:
        return file_record(path)
    info = path.stat()
    size, sha256 = known
    if info.st_size != size:
        return file_record(path)  # not the file the build wrote: hash what is there
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": sha256}


def write(path: Path, record: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
    partial.replace(path)


def forget(path: Path) -> None:
    """Before a build writes anything: a crash half-way must not leave the old record."""
    path.unlink(missing_ok=True)


def check(
    settings: Settings,
    env: Mapping[str, str],
    *,
    image_ids: ImageIds,
    request: Mapping[str, Any] | None = None,
) -> UpToDate | None:
    """The last build's answer when nothing it was made from changed, else None."""
    path = state_path(settings, env)
    try:
        data = path.read_bytes()
        record = json.loads(data)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    try:
        if (
            record["nativebuild"] != __version__
            or record["settings"] != settings_digest(settings)
            or record.get("request", request_digest(None)) != request_digest(request)
            or not inputs_unchanged(record, env, image_ids)
        ):
            return None
        result = dict(record["result"])
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
    # What this run did: nothing but read the record; every wheel was already built.
    result["containers_started"] = 0
    result["wheels"] = [{**wheel, "source": "cache"} for wheel in result.get("wheels", [])]
    return UpToDate(result=result, record=path, record_sha256=hashlib.sha256(data).hexdigest())


def up_to_date(
    settings: Settings,
    env: Mapping[str, str],
    *,
    image_ids: ImageIds,
    request: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The last build's answer when nothing it was made from changed, else None."""
    found = check(settings, env, image_ids=image_ids, request=request)
    return None if found is None else found.result


def up_to_date_result(settings: Settings, env: Mapping[str, str]) -> UpToDate | None:
    """The last build's answer, when nothing it was made from changed (see pipeline.uptodate);
    images are asked of a local engine over its socket, and anything else means a build."""
    if settings.verify or settings.no_cache or settings.load:
        return None  # each asks for work that outlives the archives (an engine's state)
    return check(settings, env, image_ids=engine_image_ids(env))


def engine_image_ids(env: Mapping[str, str]) -> ImageIds:
    """Image ids from a local engine, over its socket (see pipeline.quick); the seam a test
    replaces with its fake engine's ids."""
    return quick.engine_image_ids(env)
