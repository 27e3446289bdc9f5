"""The standard-library half of the up-to-date record: checking what a build was made from, and
the quick index that answers an unchanged invocation before typer, the settings or anything
heavy is imported.

:mod:`nativebuild.pipeline.uptodate` keeps, per output directory, a record of everything a build
was made from; checking it needs the resolved settings, so the whole command line has to load
first. When that check answers "up to date", the CLI also keeps a small index entry for the exact
invocation: the arguments, the working directory, a digest of the whole environment, the output
mode of the standard streams, the day (Lambda's deprecation notices depend on it) and
nativebuild's version form its key; it names the record it was answered from (and that
record's digest), the configuration files the settings were read from (and those that were
looked for and absent), every path setting as written and where it led, and the exact text the
answer printed on stdout and stderr. For the next identical invocation, :func:`lookup` checks
all of that, then the record's inputs exactly as :func:`nativebuild.pipeline.uptodate.up_to_date`
does, and returns that text (nativebuild.cli.quick prints it). Anything unknown, changed or
unreadable returns None: the full command line then answers. Only the standard library is imported here (and, for image ids, the engine's socket
client, which is standard library only too); not even pathlib (with urllib.parse and ipaddress
it would cost more than the checks), so paths are strings and ``os.path`` here.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nativebuild import __version__

if TYPE_CHECKING:
    from nativebuild.engine.local_api import LocalEngineAPI

FORMAT = 1
INDEX_DIR = os.path.join("builds", "quick")  # beside the up-to-date records, in the local cache
# Environment variables that steer what a build makes (their values are kept as digests).
_ENV_PREFIXES = ("PIP_", "UV_", "NATIVEBUILD_", "DOCKER_", "AWS_")
_ENV_NAMES = frozenset(
    {
        "SOURCE_DATE_EPOCH", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
        "https_proxy", "no_proxy", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NETRC", "HOME",
        "XDG_CONFIG_HOME", "VIRTUAL_ENV",
    }
)  # fmt: skip
_CHUNK = 1 << 20
# Variables a shell changes on its own, which nothing nativebuild runs reads: the command last
# run (bash sets _ to the program's path) and the previous directory.
_SHELL_NOISE = frozenset({"_", "OLDPWD"})
STREAMS = ("stdout", "stderr")

StrPath = str | os.PathLike[str]
ImageIds = Callable[[str, str | None], str | None]  # (ref, platform) -> the engine's id
Output = list[tuple[str, str]]  # (stream, text), in the order printed


# --- what a record is checked against ---------------------------------------------------------


def environment_digest(env: Mapping[str, str], referenced: Iterable[str] = ()) -> str:
    names = {n for n in env if n.startswith(_ENV_PREFIXES) or n in _ENV_NAMES} | set(referenced)
    pairs = sorted((name, env.get(name)) for name in names)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def file_sha256(path: StrPath) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: StrPath) -> dict[str, Any]:
    info = os.stat(path)
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": file_sha256(path)}


def tree_files(root: StrPath) -> list[str]:
    """Every file under ``root``, links followed as the archive writer follows them."""
    found = []
    for directory, dirs, names in os.walk(root, followlinks=True):
        dirs.sort()
        found += [os.path.join(directory, name) for name in sorted(names)]
    return found


def same_file(path: StrPath, recorded: Mapping[str, Any]) -> bool:
    try:
        info = os.stat(path)
        if info.st_size != recorded["size"]:
            return False
        if info.st_mtime_ns == recorded["mtime_ns"]:
            return True
        return bool(file_sha256(path) == recorded["sha256"])  # touched: compare the content
    except (OSError, KeyError, TypeError):
        return False


def inputs_unchanged(
    record: Mapping[str, Any], env: Mapping[str, str], image_ids: ImageIds
) -> bool:
    """Whether everything ``record`` says a build was made from is as it was: the environment
    that steers it, configuration files still absent, tree listings, files, outputs, image ids.
    (The settings and the request are the caller's to compare.) Raises KeyError, TypeError,
    AttributeError or ValueError on a malformed record."""
    if record["env"] != environment_digest(env, record["referenced_env"]):
        return False
    if any(os.path.exists(p) for p in record["absent"]):
        return False  # a configuration file appeared
    for tree, members in record["trees"].items():
        if tree_files(tree) != members:
            return False  # a file came or went
    for group in ("files", "outputs"):
        if not all(same_file(p, r) for p, r in record[group].items()):
            return False
    for key, recorded in record["images"].items():
        ref, _, platform = key.partition("|")
        if recorded != ref and image_ids(ref, platform or None) != recorded:
            return False  # the image was rebuilt under the same name (or is gone)
    return True


def engine_image_ids(env: Mapping[str, str]) -> ImageIds:
    """Image ids from a local engine, over its socket (no SDK); None for anything else."""

    def image_id(ref: str, platform: str | None) -> str | None:
        # Imported on first use: a build that used no image asks no engine.
        from nativebuild.engine.local_api import LocalEngineAPI, quick_image_id

        if not apis:
            apis.append(LocalEngineAPI.from_env(env))
        api = apis[0]
        if api is None:
            return None
        return quick_image_id(api, ref, platform, reporter=None)

    apis: list[LocalEngineAPI | None] = []  # one API object: orphans are looked for once
    return image_id


# --- the quick index --------------------------------------------------------------------------


class Invocation:
    """One run of the command line, as the process received it.

    Plain classes here, not dataclasses: importing dataclasses (inspect, ast, dis) would cost
    more than the rest of a quick answer."""

    __slots__ = ("argv", "cwd", "day", "env", "mode")

    def __init__(
        self,
        *,
        argv: tuple[str, ...],
        cwd: str,
        env: Mapping[str, str],
        mode: tuple[Any, ...],
        day: str | None = None,
    ) -> None:
        self.argv = argv  # without the program name
        self.cwd = cwd
        self.env = env
        # Whatever can change how the same text is rendered: per standard stream, whether it
        # is a terminal and its size; the encodings of stdout and stderr.
        self.mode = mode
        # Lambda's deprecation notices depend on the day (UTC).
        self.day = day or time.strftime("%Y-%m-%d", time.gmtime())

    def name(self) -> str:
        """The index entry's file name: one per command line and directory."""
        document = json.dumps([FORMAT, __version__, self.argv, self.cwd])
        return hashlib.sha256(document.encode()).hexdigest()

    def key(self) -> str:
        """Everything else the answer depends on, as one digest (values never stored)."""
        document = json.dumps(
            [FORMAT, __version__, self.argv, self.cwd,
             sorted(item for item in self.env.items() if item[0] not in _SHELL_NOISE),
             self.mode, self.day]
        )  # fmt: skip
        return hashlib.sha256(document.encode()).hexdigest()

    def index_path(self) -> str | None:
        """The index entry, in the cache that ``--cache-dir`` names, else NATIVEBUILD_CACHE_DIR,
        else the user cache directory (a cache-dir set in pyproject.toml is not known yet)."""
        root = cache_root(self.argv, self.env, self.cwd)
        return None if root is None else os.path.join(root, INDEX_DIR, f"{self.name()}.json")


def cache_root(
    argv: Sequence[str], env: Mapping[str, str], cwd: str, platform: str = sys.platform
) -> str | None:
    """Where an invocation's index entry is kept: the cache directory of its command line or
    environment, else the user cache directory (platformdirs' on Linux, without importing it)."""
    given = None
    for number, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--cache-dir" and number + 1 < len(argv):
            given = argv[number + 1]
        elif arg.startswith("--cache-dir="):
            given = arg.removeprefix("--cache-dir=")
    if given:
        return os.path.join(cwd, os.path.expanduser(given))
    if env.get("NATIVEBUILD_CACHE_DIR"):
        return os.path.join(cwd, os.path.expanduser(env["NATIVEBUILD_CACHE_DIR"]))
    if platform == "linux":
        base = env.get("XDG_CACHE_HOME", "")
        return os.path.join(base if base.strip() else os.path.expanduser("~/.cache"), "nativebuild")
    try:
        import platformdirs
    except ImportError:  # pragma: no cover - a dependency
        return None
    return str(platformdirs.user_cache_path("nativebuild", appauthor=False))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Answer:
    """What the full command line checked and printed for one invocation."""

    __slots__ = ("config", "links", "output", "record", "record_sha256")

    def __init__(
        self,
        *,
        record: StrPath,
        record_sha256: str,
        config: Mapping[str, Mapping[str, Any] | None],
        links: Mapping[str, str],
        output: Output,
    ) -> None:
        self.record = os.path.abspath(record)  # the up-to-date record it was answered from
        self.record_sha256 = record_sha256
        self.config = config  # path -> file record, or None: nothing there
        self.links = links  # a path setting as written -> where it resolved
        self.output = output


def config_files(paths: Iterable[StrPath]) -> dict[str, dict[str, Any] | None]:
    """The files settings (or a template) were looked for in: each one's record, or None when
    nothing is there."""
    found: dict[str, dict[str, Any] | None] = {}
    for path in paths:
        found[os.path.abspath(path)] = file_record(path) if os.path.isfile(path) else None
    return found


def remember(invocation: Invocation, answer: Answer) -> None:
    """Keep ``answer`` for ``invocation`` (atomically); skipped when the cache is not there."""
    path = invocation.index_path()
    root = cache_root(invocation.argv, invocation.env, invocation.cwd)
    if path is None or root is None or not os.path.isdir(root):
        return
    entry = {
        "format": FORMAT,
        "key": invocation.key(),
        "record": answer.record,
        "record_sha256": answer.record_sha256,
        "config": dict(answer.config),
        "links": dict(answer.links),
        "output": [list(chunk) for chunk in answer.output],
    }
    partial = f"{path}.{os.getpid()}.part"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(entry, handle, sort_keys=True)
        os.replace(partial, path)
    except OSError:
        return  # a quick answer is an optimisation: the full check runs instead


def lookup(
    invocation: Invocation, *, image_ids: Callable[[Mapping[str, str]], ImageIds] | None = None
) -> Output | None:
    """The text to print for ``invocation`` when nothing its last answer depended on changed;
    None for anything else (the full command line then answers)."""
    path = invocation.index_path()
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            entry = json.loads(handle.read())
        if entry["format"] != FORMAT or entry["key"] != invocation.key():
            return None
        for name, recorded in entry["config"].items():
            if recorded is None:
                if os.path.lexists(name):
                    return None  # a configuration file appeared
            elif not same_file(name, recorded):
                return None
        for written, resolved in entry["links"].items():
            if os.path.realpath(written) != resolved:
                return None  # a link now leads elsewhere: other settings
        with open(entry["record"], "rb") as handle:
            data = handle.read()
        if _digest(data) != entry["record_sha256"]:
            return None  # another build wrote that directory since
        record = json.loads(data)
        if record["nativebuild"] != __version__:
            return None
        ids = (image_ids or engine_image_ids)(invocation.env)
        if not inputs_unchanged(record, invocation.env, ids):
            return None
        output = [(str(stream), str(text)) for stream, text in entry["output"]]
    except (OSError, KeyError, TypeError, AttributeError, ValueError):
        return None
    return output if all(stream in STREAMS for stream, _ in output) else None
