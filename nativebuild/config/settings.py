"""Settings, and the cascade that produces them.

Built-in defaults < ``[tool.nativebuild]`` in pyproject.toml < ``NATIVEBUILD_*`` environment
variables < command-line flags. One function, :func:`resolve`, applies the order; the
environment is passed in, never read here.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nativebuild.archive.layout import FunctionSpec, Kind, LayerLayout
from nativebuild.config import abi_keys, archive_keys
from nativebuild.config.values import as_flag, as_path
from nativebuild.engine.runner import Builder
from nativebuild.errors import ConfigError
from nativebuild.plan.shards import Shard
from nativebuild.targets import Architecture, GlibcVersion, Target, expand_image, get_runtime

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_RUNTIME = "python3.13"
DEFAULT_REQUIREMENTS = "requirements.txt"
DEFAULT_OUTPUT = "dist"

# Config keys ([tool.nativebuild]) and their NATIVEBUILD_* variables.
KEYS = (
    "runtime",
    "arch",
    "requirements",
    "src",
    "output",
    "cache-dir",
    "build-image",
    "runtime-image",
    "glibc",
    "name",
    "extras",
    "groups",
    "jobs",
    "builders",
    "cache",
    "cache-endpoint-url",
    "cache-only",
    "cache-readonly",
    "no-cache",
    "shard",
    *archive_keys.KEYS,
    *abi_keys.KEYS,
)
BOOL_KEYS = frozenset({"cache-only", "cache-readonly", "no-cache"})
PATH_KEYS = frozenset({"requirements", "src", "output", "cache-dir"})
# NATIVEBUILD_* variables that are not settings but are ours all the same.
OTHER_VARIABLES = frozenset({"NATIVEBUILD_KEEP_CONTAINER"})


def env_name(key: str) -> str:
    return "NATIVEBUILD_" + key.upper().replace("-", "_")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a build needs to know, after the cascade."""

    runtime: str = DEFAULT_RUNTIME
    archs: tuple[Architecture, ...] = (Architecture.X86_64,)
    requirements: Path = Path(DEFAULT_REQUIREMENTS)
    src: Path | None = None
    output: Path = Path(DEFAULT_OUTPUT)
    cache_dir: Path | None = None  # None: the user cache directory (platformdirs)
    build_image: str | None = None  # None: the runtime's default; "{arch}" is filled in
    runtime_image: str | None = None
    glibc: GlibcVersion | None = None  # None: the runtime's ceiling
    name: str = "function"
    extras: tuple[str, ...] = ()  # optional dependencies of pyproject.toml / lock files
    groups: tuple[str, ...] = ()  # dependency groups (PEP 735) of pyproject.toml / lock files
    jobs: int | None = None  # targets built at once; None: the CPU count
    # Engines of their own per architecture, in pool order: an architecture may have several,
    # over which its compile jobs are spread ("default" names the DOCKER_HOST engine).
    builders: tuple[Builder, ...] = ()
    cache: str | None = None  # a shared remote cache, s3://bucket/prefix
    cache_endpoint_url: str | None = None  # None: boto3's own (AWS_ENDPOINT_URL_S3, ...)
    cache_only: bool = False  # fail rather than compile anything
    cache_readonly: bool = False  # pull from the remote cache, never push
    no_cache: bool = False  # read no cache at all: a throwaway one for this build
    # Compile only this shard's sdists into the cache, and write no archive (CI fan-out).
    shard: Shard | None = None
    kind: Kind = Kind.FUNCTION  # function | layer | split | image (nativebuild.archive.layout)
    layer_layout: LayerLayout = LayerLayout.PYTHON
    compile: bool = False  # ship .pyc files (checked-hash, PEP 552)
    slim: tuple[str, ...] = ()  # opt-in rules of nativebuild.archive.slim
    include: tuple[str, ...] = ()  # globs kept whatever slim or exclude say
    exclude: tuple[str, ...] = ()  # globs left out of the archives
    with_layers: tuple[Path, ...] = ()  # layer zips built elsewhere, counted in the budget
    functions: tuple[FunctionSpec, ...] = ()  # [[tool.nativebuild.functions]]
    handler: str | None = None  # an image's CMD: module.function
    load: bool = False  # load a built image into the engine
    check: bool = True  # every binary against the runtime, before the archives are written
    repair: bool = True  # vendor what the runtime lacks into the wheels compiled here
    verify: bool = False  # import every module in the runtime image once built
    build_packages: tuple[str, ...] = ()  # installed in a derived build image
    before_build: tuple[str, ...] = ()  # shell commands run in that derived image

    def targets(self) -> tuple[Target, ...]:
        runtime = get_runtime(self.runtime)
        return tuple(
            Target(
                runtime=runtime,
                arch=arch,
                glibc=self.glibc or runtime.glibc,
                build_image=expand_image(
                    self.build_image or runtime.build_image, arch, runtime.name
                ),
                runtime_image=expand_image(
                    self.runtime_image or runtime.runtime_image, arch, runtime.name
                ),
            )
            for arch in self.archs
        )


def _suggest(name: str, candidates: Sequence[str]) -> str:
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return f" Perhaps you meant {matches[0]!r}?" if matches else ""


def load_tool_table(pyproject: Path) -> dict[str, Any]:
    """``[tool.nativebuild]`` of ``pyproject`` (empty when the file or table is absent)."""
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        msg = f"Cannot read {pyproject}: {err}"
        raise ConfigError(msg, hint="Fix the TOML syntax of the file.") from err
    table = data.get("tool", {}).get("nativebuild", {})
    if not isinstance(table, dict):
        msg = f"[tool.nativebuild] in {pyproject} must be a table."
        raise ConfigError(msg)
    return table


def _check_file_keys(table: Mapping[str, Any], origin: str) -> None:
    for key in table:
        if key not in KEYS:
            msg = f"Unknown key {key!r} in [tool.nativebuild] of {origin}.{_suggest(key, KEYS)}"
            raise ConfigError(msg, hint=f"Valid keys: {', '.join(KEYS)}.")


def _check_env_names(env: Mapping[str, str]) -> None:
    known = {env_name(k) for k in KEYS} | OTHER_VARIABLES
    for name in env:
        if name.startswith("NATIVEBUILD_") and name not in known:
            msg = f"Unknown environment variable {name}.{_suggest(name, sorted(known))}"
            raise ConfigError(msg, hint="Unset it, or correct its name.")


def _as_str(value: Any, key: str, origin: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    msg = f"{key} in {origin} must be a non-empty string, not {value!r}."
    raise ConfigError(msg)


def _as_archs(value: Any, origin: str) -> tuple[Architecture, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        msg = f"arch in {origin} must be x86_64, arm64, or a list of them; got {value!r}."
        raise ConfigError(msg)
    archs = [Architecture.parse(_as_str(item, "arch", origin)) for item in items]
    return tuple(dict.fromkeys(archs))


def resolve(
    *,
    cli: Mapping[str, Any],
    file_table: Mapping[str, Any],
    env: Mapping[str, str],
    project_dir: Path,
    cwd: Path,
    pyproject_name: str = "pyproject.toml",
) -> Settings:
    """Apply the cascade. ``cli`` holds only the flags given (None means not given)."""
    _check_file_keys(file_table, str(project_dir / pyproject_name))
    _check_env_names(env)
    layers: list[tuple[str, Mapping[str, Any], Path]] = [
        (f"{project_dir / pyproject_name} [tool.nativebuild]", file_table, project_dir),
        ("the environment", {k: env[env_name(k)] for k in KEYS if env.get(env_name(k))}, cwd),
        ("the command line", {k: v for k, v in cli.items() if v is not None}, cwd),
    ]
    values: dict[str, Any] = {}
    for origin, layer, base in layers:
        for key, raw in layer.items():
            if key not in KEYS:
                msg = f"Unknown setting {key!r} from {origin}.{_suggest(key, KEYS)}"
                raise ConfigError(msg)
            values[key] = _convert(key, raw, origin, base)
    # The default requirements file and output directory sit in the project directory.
    values.setdefault("requirements", project_dir / DEFAULT_REQUIREMENTS)
    values.setdefault("output", project_dir / DEFAULT_OUTPUT)
    fields = {key.replace("-", "_"): value for key, value in values.items()}
    if "arch" in fields:
        fields["archs"] = fields.pop("arch")
    settings = Settings(**fields)
    get_runtime(settings.runtime)  # fail early on an unknown runtime
    return settings


def _as_names(value: Any, key: str, origin: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        msg = f"{key} in {origin} must be a list of names, not {value!r}."
        raise ConfigError(msg)
    names = [
        _as_str(item, key, origin)
        for item in items
        if not (isinstance(item, str) and not item.strip())
    ]
    return tuple(dict.fromkeys(names))


def _as_jobs(value: Any, origin: str) -> int:
    try:
        jobs = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else 0
    except ValueError:
        jobs = 0
    if jobs < 1:
        msg = f"jobs in {origin} must be a whole number of at least 1, not {value!r}."
        raise ConfigError(msg)
    return jobs


def _as_builders(value: Any, origin: str) -> tuple[Builder, ...]:
    """A table {arch = ENGINE or [ENGINE, ...]}, ENGINE being "URL" or {host = "URL", network =
    "host"}; or "arm64=URL,..." strings. An architecture may repeat: its engines form a pool."""
    if isinstance(value, str):
        value = [item for item in value.split(",") if item.strip()]
    pairs: list[tuple[str, Any]] = []
    if isinstance(value, list | tuple):
        for item in value:
            arch, sep, host = str(item).partition("=")
            if not sep or not host.strip():
                msg = f"builder {item!r} in {origin} must look like ARCH=URL, e.g. arm64=ssh://user@host."
                raise ConfigError(msg)
            pairs.append((arch, host.strip()))
    elif isinstance(value, dict):
        for arch, specs in value.items():
            listed = specs if isinstance(specs, list) else [specs]
            if not listed:
                msg = f"builders for {arch} in {origin}: the list of engines is empty."
                raise ConfigError(msg)
            pairs.extend((arch, spec) for spec in listed)
    else:
        msg = f"builders in {origin} must map architectures to engines, not {value!r}."
        raise ConfigError(msg)
    builders: dict[tuple[Architecture, str], Builder] = {}
    for arch, spec in pairs:
        entry = {"host": spec} if isinstance(spec, str) else spec
        if not isinstance(entry, dict) or not isinstance(entry.get("host"), str):
            msg = f"builder for {arch} in {origin} needs a host (a Docker URL or context name)."
            raise ConfigError(msg)
        unknown = set(entry) - {"host", "network"}
        if unknown:
            msg = f"builder for {arch} in {origin}: unknown keys {sorted(unknown)}; use host and network."
            raise ConfigError(msg)
        builder = Builder(
            arch=Architecture.parse(arch), host=entry["host"].strip(), network=entry.get("network")
        )
        if (builder.arch, builder.host) in builders:
            msg = f"builder {builder.host} is listed twice for {builder.arch} in {origin}."
            raise ConfigError(msg, hint="List each engine of an architecture's pool once.")
        builders[(builder.arch, builder.host)] = builder
    return tuple(builders.values())


def _as_shard(value: Any, origin: str) -> Shard:
    text = _as_str(value, "shard", origin)
    try:
        return Shard.parse(text)
    except ConfigError as err:
        msg = f"{err} (in {origin})"
        raise ConfigError(msg, hint=err.hint) from err


def _as_url(value: Any, key: str, origin: str, schemes: tuple[str, ...]) -> str:
    text = _as_str(value, key, origin)
    if not text.startswith(tuple(f"{s}://" for s in schemes)) or text.endswith("://"):
        msg = f"{key} in {origin} must be a {' or '.join(schemes)}:// URL, not {value!r}."
        raise ConfigError(msg, hint='For example "s3://my-bucket/nativebuild" for cache.')
    return text


def _convert(key: str, raw: Any, origin: str, base: Path) -> Any:
    if key in archive_keys.KEYS:
        return archive_keys.convert(key, raw, origin, base)
    if key in abi_keys.KEYS:
        return abi_keys.convert(key, raw, origin)
    if key in BOOL_KEYS:
        return as_flag(raw, key, origin)
    if key == "cache":
        return _as_url(raw, key, origin, ("s3",))
    if key == "cache-endpoint-url":
        return _as_url(raw, key, origin, ("http", "https"))
    if key == "arch":
        return _as_archs(raw, origin)
    if key in ("extras", "groups"):
        return _as_names(raw, key, origin)
    if key == "jobs":
        return _as_jobs(raw, origin)
    if key == "builders":
        return _as_builders(raw, origin)
    if key == "shard":
        return _as_shard(raw, origin)
    if key == "glibc":
        return GlibcVersion.parse(_as_str(raw, key, origin))
    text = _as_str(raw, key, origin)
    if key in PATH_KEYS:
        return as_path(text, base)
    if key == "runtime":
        return get_runtime(text).name
    return text
