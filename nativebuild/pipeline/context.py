"""What every target of one build shares: settings, inputs, index, cache and the seams."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from nativebuild import __version__
from nativebuild.abi.elf import Binary
from nativebuild.abi.runtime_facts import RuntimeFacts
from nativebuild.abi.wheel_facts import KIND as WHEEL_FACTS_KIND
from nativebuild.abi.wheel_facts import VERSION as WHEEL_FACTS_VERSION
from nativebuild.abi.wheel_facts import WheelFacts, inspect_wheel
from nativebuild.archive.plan import source_date_epoch
from nativebuild.cache.keys import build_key, file_identity
from nativebuild.cache.local import LocalCache
from nativebuild.cache.tiered import open_cache
from nativebuild.config.settings import Settings
from nativebuild.engine.runner import DEFAULT_ENGINE, ContainerRunner, Engine
from nativebuild.errors import RequirementsFileNotFoundError, RequirementSyntaxError
from nativebuild.index.containers import listing
from nativebuild.index.pip_config import IndexSettings, discover, local_path
from nativebuild.index.uv import HostUv, UvRunner
from nativebuild.inputs.git import GitRunner, HostGit
from nativebuild.inputs.local_sources import pin_locked, pin_requirements
from nativebuild.inputs.locked import LockedPackage, pylock_default_groups
from nativebuild.inputs.lockfiles import InputKind, input_kind, load_locked
from nativebuild.inputs.pyproject import requirements_from_pyproject
from nativebuild.inputs.requirements import RequirementSet, parse_requirements
from nativebuild.pins import LocalPin
from nativebuild.plan.distributions import Action, PlanItem
from nativebuild.reporting import NullReporter, Reporter
from nativebuild.targets import Architecture


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inputs:
    """What the function needs: requirements to resolve, or a lock file's exact pins."""

    kind: InputKind
    requirements: RequirementSet | None  # requirements files and pyproject.toml
    locked: tuple[LockedPackage, ...] | None  # lock files: never re-resolved
    fingerprint: str
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    local: tuple[LocalPin, ...] = ()  # what this machine provides: folders, files, git trees
    files: tuple[Path, ...] = ()  # every file read to know the inputs (for pipeline.uptodate)

    @property
    def no_binary(self) -> tuple[str, ...]:
        return self.requirements.no_binary if self.requirements is not None else ()

    @property
    def only_binary(self) -> tuple[str, ...]:
        return self.requirements.only_binary if self.requirements is not None else ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildContext:
    settings: Settings
    inputs: Inputs
    index: IndexSettings
    cache: LocalCache
    runner: ContainerRunner
    uv: UvRunner
    reporter: Reporter
    verbose: bool
    epoch: int | None
    env: Mapping[str, str]
    # Each architecture's pool of engines (--builder), first to last; none: the runner's engine
    pools: Mapping[Architecture, tuple[Engine, ...]] = dataclasses.field(default_factory=dict)
    # What is learnt once per target is keyed by what it depends on, with the architecture, so
    # that one context serves targets of several runtimes (nativebuild sam build).
    # nativebuild's own build image per runtime and architecture, once ensured
    # (nativebuild.pipeline.images.with_build_image)
    build_images: dict[tuple[str, Architecture], str] = dataclasses.field(default_factory=dict)
    # The image derived from a build image with build-packages and before-build
    # (nativebuild.pipeline.derived_image), by base image and architecture
    derived_images: dict[tuple[str, Architecture], str] = dataclasses.field(default_factory=dict)
    # The engine's machine per architecture whose containers are known to run
    # (nativebuild.pipeline.emulation): the target's own, or another one that emulates it
    engine_machines: dict[Architecture, str] = dataclasses.field(default_factory=dict)
    # What reading each cached wheel told (nativebuild.abi.wheel_facts), by path
    wheel_facts: dict[Path, WheelFacts] = dataclasses.field(default_factory=dict)
    # What each runtime image provides, by image and architecture, once known
    # (nativebuild.pipeline.abi_gate)
    runtime_facts: dict[tuple[str, Architecture], RuntimeFacts] = dataclasses.field(
        default_factory=dict
    )
    # The id of every image the build's output depends on, "ref|platform" -> id (uptodate)
    image_ids: dict[str, str] = dataclasses.field(default_factory=dict)
    # Cache keys of the wheels this build compiled, sha256s of the files it downloaded: where
    # a later step finds them in the cache, the build still reports how it got them
    compiled_keys: set[str] = dataclasses.field(default_factory=set)
    downloaded: set[str] = dataclasses.field(default_factory=set)

    def source_of(self, item: PlanItem) -> str:
        """How this build got ``item``'s wheel: compiled, download or cache."""
        if item.compile_key and item.compile_key in self.compiled_keys:
            return "compiled"
        if item.action is Action.CACHED_WHEEL and item.pin.sha256 in self.downloaded:
            return "download"
        return item.source

    # Views of this context for the other engines of a pool (engine_view), by (arch, name)
    engine_views: dict[tuple[Architecture, str], BuildContext] = dataclasses.field(
        default_factory=dict
    )
    # What each engine compiled, and why an engine failed, by (arch, engine name)
    compiled_on: dict[tuple[Architecture, str], list[str]] = dataclasses.field(default_factory=dict)
    failed_engines: dict[tuple[Architecture, str], str] = dataclasses.field(default_factory=dict)

    def runner_for(self, arch: Architecture) -> ContainerRunner:
        """The engine that runs this architecture's containers (all but compiles, which go over
        its whole pool): the first of its builders, or the default."""
        pool = self.pools.get(arch)
        return pool[0].runner if pool else self.runner

    def pool_for(self, arch: Architecture) -> tuple[Engine, ...]:
        """The engines that compile this architecture's sdists."""
        return self.pools.get(arch) or (Engine(name=DEFAULT_ENGINE, runner=self.runner),)

    @property
    def all_runners(self) -> tuple[ContainerRunner, ...]:
        runners = [self.runner, *(e.runner for pool in self.pools.values() for e in pool)]
        return tuple({id(runner): runner for runner in runners}.values())

    def containers_started(self) -> int:
        return sum(runner.containers_started for runner in self.all_runners)


def read_inputs(
    settings: Settings,
    *,
    env: Mapping[str, str],
    index: IndexSettings,
    uv: UvRunner,
    cache: LocalCache,
    git: GitRunner | None = None,
    reporter: Reporter | None = None,
) -> Inputs:
    """The requirements or lock file, and what this machine provides pinned (packed folders and
    git trees in the cache, local files hashed): their hashes join the inputs' fingerprint, so
    editing a local project, moving a branch or adding a file to a find-links folder re-resolves."""
    git = git if git is not None else HostGit(env)
    reporter = reporter if reporter is not None else NullReporter()
    path = settings.requirements
    kind = input_kind(path)
    if kind == "requirements":
        requirements = parse_requirements(path, env=env)
    elif kind == "pyproject":
        requirements = requirements_from_pyproject(
            path, extras=settings.extras, groups=settings.groups, env=env
        )
    else:
        if not path.is_file():
            msg = f"lock file {path} not found"
            raise RequirementsFileNotFoundError(msg, hint="Pass -r PATH to an existing lock file.")
        locked = load_locked(
            path, kind=kind, extras=settings.extras, groups=settings.groups, uv=uv, index=index,
            env=env, cache_dir=cache.root / "uv",
        )  # fmt: skip
        groups = settings.groups
        if kind == "pylock" and not groups:
            groups = pylock_default_groups(path.read_text(encoding="utf-8"))
        local = pin_locked(locked, cache=cache, git=git, reporter=reporter)
        digest = hashlib.sha256(path.read_bytes())
        digest.update(repr((kind, settings.extras, groups)).encode())
        return Inputs(
            kind=kind, requirements=None, locked=locked,
            fingerprint=_with_local(digest.hexdigest(), local, ()), extras=settings.extras,
            groups=groups, local=local, files=(path.absolute(),),
        )  # fmt: skip
    for link in requirements.find_links:
        folder = local_path(link)
        if folder is not None and not folder.is_dir():
            msg = f"{path} names --find-links {folder}, which is no folder."
            hint = (
                "--find-links takes a folder of wheels and sdists (a relative path starts at the "
                "folder of the file that names it), or an http(s) URL."
            )
            raise RequirementSyntaxError(msg, hint=hint)
    local = pin_requirements(requirements, cache=cache, git=git, reporter=reporter)
    fingerprint = _with_local(requirements.fingerprint(), local, requirements.find_links)
    files = requirements.files if kind == "requirements" else (path.absolute(),)
    return Inputs(
        kind=kind, requirements=requirements, locked=None, fingerprint=fingerprint, local=local,
        files=files,
    )  # fmt: skip


def _with_local(fingerprint: str, local: Sequence[LocalPin], find_links: Sequence[str]) -> str:
    """The fingerprint with the packed trees' and local files' hashes, and what each local
    find-links folder holds."""
    folders = [path for link in find_links if (path := local_path(link)) is not None]
    if not local and not folders:
        return fingerprint
    digest = hashlib.sha256(fingerprint.encode())
    for item in local:
        digest.update(f"{item.pin.name}={item.pin.sha256}\n".encode())
    for folder in folders:
        digest.update(f"{folder}:{','.join(listing(folder))}\n".encode())
    return digest.hexdigest()


def open_context(
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, Sequence[Engine]] | None = None,
    git: GitRunner | None = None,
) -> BuildContext:
    """Read the inputs and prepare the cache; nothing here needs a Docker engine."""
    session = open_session(
        settings, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv,
        builders=builders,
    )  # fmt: skip
    return with_inputs(session, settings, git=git)


# The inputs of a context that has read none yet (open_session), or of an archive built from
# source alone (a SAM function without requirements).
NO_INPUTS = Inputs(
    kind="requirements", requirements=None, locked=(), fingerprint=hashlib.sha256(b"").hexdigest()
)


def open_session(
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, Sequence[Engine]] | None = None,
) -> BuildContext:
    """A build's cache, engines and host index, before any requirements are read (its inputs
    are :data:`NO_INPUTS`): :func:`with_inputs` gives it some. Needs no Docker engine."""
    uv = uv if uv is not None else HostUv()
    # Local, a remote behind it (--cache), or a throwaway one (--no-cache); ready to use.
    cache = open_cache(
        cache_dir=settings.cache_dir, remote_url=settings.cache,
        endpoint_url=settings.cache_endpoint_url, readonly=settings.cache_readonly,
        no_cache=settings.no_cache, env=env, reporter=reporter,
    )  # fmt: skip
    index = discover(env)
    return BuildContext(
        settings=settings,
        inputs=NO_INPUTS,
        index=index,
        cache=cache,
        runner=runner,
        uv=uv,
        reporter=reporter,
        verbose=verbose,
        epoch=source_date_epoch(env),
        env=env,
        pools={arch: tuple(engines) for arch, engines in (builders or {}).items() if engines},
    )


def engine_view(context: BuildContext, arch: Architecture, engine: Engine) -> BuildContext:
    """``context`` with ``engine`` running ``arch``'s containers, and memos of its own (the
    build and derived images, the machine that runs them): every engine of a pool gets its
    images as the first one does. The first engine's view is ``context`` itself; the rest
    (cache, inputs, what each engine compiled) is shared."""
    if engine == context.pool_for(arch)[0]:
        return context
    key = (arch, engine.name)
    if key not in context.engine_views:
        context.engine_views[key] = dataclasses.replace(
            context, pools={**context.pools, arch: (engine,)}, build_images={},
            derived_images={}, engine_machines={}, engine_views={},
        )  # fmt: skip
    return context.engine_views[key]


def with_inputs(
    context: BuildContext, settings: Settings, *, git: GitRunner | None = None
) -> BuildContext:
    """``context`` for the requirements of ``settings``: the same cache, engines and what is
    known of each target (those are shared, not copied), the inputs and index options read
    from ``settings.requirements``. ``settings`` may differ from the context's in what one
    archive is built from (requirements, runtime, architectures, source), not in how."""
    host_index = discover(context.env)
    inputs = read_inputs(
        settings, env=context.env, index=host_index, uv=context.uv, cache=context.cache,
        git=git, reporter=context.reporter,
    )  # fmt: skip
    index = host_index
    if inputs.requirements is not None:
        requirements = inputs.requirements
        index = host_index.with_overrides(
            index_url=requirements.index_url,
            extra_index_urls=requirements.extra_index_urls,
            trusted_hosts=requirements.trusted_hosts,
            find_links=requirements.find_links,
            no_index=requirements.no_index,
        )
    if index.skipped:
        context.reporter.detail(
            f"not using the local folders of this machine's pip configuration "
            f"({', '.join(index.skipped)}): a build depends on the project's files only; "
            "name a folder in the requirements to use it (--find-links DIR, --index-url file://...)"
        )
    return dataclasses.replace(context, settings=settings, inputs=inputs, index=index)


# --- what reading each cached wheel told (abi.wheel_facts), kept by the file's identity ----------


def wheel_facts(context: BuildContext, path: Path) -> WheelFacts:
    """``path``'s facts: known in this build, kept from an earlier one, or read now."""
    memo = context.wheel_facts
    if path not in memo:
        local = context.cache.machine_local  # the key holds this machine's paths
        fields = {
            "kind": WHEEL_FACTS_KIND,
            "version": f"{__version__}/{WHEEL_FACTS_VERSION}",
            "file": file_identity(path),
        }
        key = build_key(fields)
        kept = local.get_json(WHEEL_FACTS_KIND, key)
        facts = None
        if kept is not None:
            try:
                facts = WheelFacts.from_json(kept)
            except (KeyError, TypeError, ValueError):
                facts = None
        if facts is None:
            facts = inspect_wheel(path)
            local.put_json(WHEEL_FACTS_KIND, key, facts.to_json())
        memo[path] = facts
    return memo[path]


def wheel_binaries(context: BuildContext, path: Path) -> Mapping[str, Binary]:
    return wheel_facts(context, path).binaries


def verified_wheels(context: BuildContext, paths: Iterable[Path]) -> frozenset[Path]:
    """``paths``, each with every member's CRC checked (now, or by an earlier build): a
    corrupt member raises ArchiveError here."""
    chosen = frozenset(paths)
    for path in chosen:
        wheel_facts(context, path)
    return chosen
