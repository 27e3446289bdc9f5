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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from nativebuild import __version__
from nativebuild.cache.local import default_cache_dir
from nativebuild.config.settings import Settings
from nativebuild.engine.local_api import LocalEngineAPI, quick_image_id

STATE_DIR = "builds"  # in the local cache: records are machine-local (absolute paths)
FORMAT = 1
# Environment variables that steer what a build makes (their values are kept as digests).
_ENV_PREFIXES = ("PIP_", "UV_", "NATIVEBUILD_", "DOCKER_", "AWS_")
_ENV_NAMES = frozenset(
    {
        "SOURCE_DATE_EPOCH", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
        "https_proxy", "no_proxy", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NETRC", "HOME",
        "XDG_CONFIG_HOME", "VIRTUAL_ENV",
    }
)  # fmt: skip
_ENV_REFERENCE = re.compile(rb"\$\{([A-Z0-9_]+)\}")  # pip expands ${NAME} in requirements
_CHUNK = 1 << 20

ImageIds = Callable[[str, str | None], str | None]  # (ref, platform) -> the engine's id


def state_path(settings: Settings, env: Mapping[str, str]) -> Path:
    """Where the record of the last build into ``settings.output`` is kept."""
    root = settings.cache_dir or default_cache_dir(env)
    name = hashlib.sha256(str(settings.output.absolute()).encode()).hexdigest()
    return root / STATE_DIR / f"{name}.json"


def environment_digest(env: Mapping[str, str], referenced: Iterable[str] = ()) -> str:
    names = {n for n in env if n.startswith(_ENV_PREFIXES) or n in _ENV_NAMES} | set(referenced)
    pairs = sorted((name, env.get(name)) for name in names)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def request_digest(request: Mapping[str, Any] | None) -> str:
    """What a command adds to its settings (sam build: the template, its parameters)."""
    document = json.dumps(dict(request or {}), sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()


def settings_digest(settings: Settings) -> str:
    document = json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": _file_sha256(path)}


def tree_files(root: Path) -> list[Path]:
    """Every file under ``root``, links followed as the archive writer follows them."""
    found = []
    for directory, dirs, names in os.walk(root, followlinks=True):
        dirs.sort()
        found += [Path(directory, name) for name in sorted(names)]
    return found


def _same_file(path: Path, recorded: Mapping[str, Any]) -> bool:
    try:
        info = path.stat()
        if info.st_size != recorded["size"]:
            return False
        if info.st_mtime_ns == recorded["mtime_ns"]:
            return True
        return bool(_file_sha256(path) == recorded["sha256"])  # touched: compare the content
    except (OSError, KeyError, TypeError):
        return False


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
) -> dict[str, Any]:
    """The record of a build that just succeeded (to write with :func:`write`)."""
    files: dict[str, dict[str, Any]] = {}
    trees: dict[str, list[str]] = {}
    referenced: set[str] = set()
    for path in input_files:
        files[str(path.absolute())] = file_record(path)
        referenced |= {m.decode() for m in _ENV_REFERENCE.findall(path.read_bytes())}
    for tree in input_trees:
        members = tree_files(tree)
        trees[str(tree.absolute())] = [str(p) for p in members]
        files.update({str(p.absolute()): file_record(p) for p in members})
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
        "outputs": {str(p.absolute()): file_record(p) for p in outputs},
        "result": dict(result),
    }


def write(path: Path, record: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
    partial.replace(path)


def forget(path: Path) -> None:
    """Before a build writes anything: a crash half-way must not leave the old record."""
    path.unlink(missing_ok=True)


def up_to_date(
    settings: Settings,
    env: Mapping[str, str],
    *,
    image_ids: ImageIds,
    request: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The last build's answer when nothing it was made from changed, else None."""
    try:
        record = json.loads(state_path(settings, env).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    try:
        if (
            record["nativebuild"] != __version__
            or record["settings"] != settings_digest(settings)
            or record.get("request", request_digest(None)) != request_digest(request)
            or record["env"] != environment_digest(env, record["referenced_env"])
        ):
            return None
        if any(Path(p).exists() for p in record["absent"]):
            return None  # a configuration file appeared
        for tree, members in record["trees"].items():
            if [str(p) for p in tree_files(Path(tree))] != members:
                return None  # a file came or went
        for group in ("files", "outputs"):
            if not all(_same_file(Path(p), r) for p, r in record[group].items()):
                return None
        for key, recorded in record["images"].items():
            ref, _, platform = key.partition("|")
            if recorded != ref and image_ids(ref, platform or None) != recorded:
                return None  # the image was rebuilt under the same name (or is gone)
        result = dict(record["result"])
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
    # What this run did: nothing but read the record; every wheel was already built.
    result["containers_started"] = 0
    result["wheels"] = [{**wheel, "source": "cache"} for wheel in result.get("wheels", [])]
    return result


def up_to_date_result(settings: Settings, env: Mapping[str, str]) -> dict[str, Any] | None:
    """The last build's answer, when nothing it was made from changed (see pipeline.uptodate);
    images are asked of a local engine over its socket, and anything else means a build."""
    if settings.verify or settings.no_cache or settings.load:
        return None  # each asks for work that outlives the archives (an engine's state)
    return up_to_date(settings, env, image_ids=engine_image_ids(env))


def engine_image_ids(env: Mapping[str, str]) -> ImageIds:
    """Image ids from a local engine, over its socket (no SDK); None for anything else."""
    api = LocalEngineAPI.from_env(env)

    def image_id(ref: str, platform: str | None) -> str | None:
        if api is None:
            return None
        return quick_image_id(api, ref, platform, reporter=None)

    return image_id
