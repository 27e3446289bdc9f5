"""Engines of their own per architecture: ``--builder arm64=ssh://user@graviton-host``.

With a native arm64 engine, arm64 sdists compile at full speed instead of under QEMU. A
builder's containers get their files through the Docker API (no host bind mounts). Several
builders for one architecture form a pool: its compile jobs are spread over them
(:mod:`nativebuild.sdists.pool`), and ``default`` names the DOCKER_HOST engine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from nativebuild.engine.docker import DockerRunner, remote_client_factory
from nativebuild.engine.runner import DEFAULT_ENGINE, Builder, ContainerRunner, Engine
from nativebuild.errors import ConfigError
from nativebuild.redact import redact
from nativebuild.reporting import Reporter
from nativebuild.targets import Architecture


def context_host(name: str, env: Mapping[str, str]) -> str:
    """The Docker host of a docker CLI context, read from its metadata file."""
    config = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME", str(Path.home()))) / ".docker")
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    try:
        host = json.loads(meta.read_text(encoding="utf-8"))["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        msg = f"Docker context {name!r} not found (looked in {meta.parent})."
        hint = "Give the builder as a URL (ssh://user@host, tcp://host:2376) or create the context with `docker context create`."
        raise ConfigError(msg, hint=hint) from err
    return str(host)


def make_builders(
    builders: Iterable[Builder],
    env: Mapping[str, str],
    reporter: Reporter,
    *,
    default: ContainerRunner | None = None,
) -> dict[Architecture, tuple[Engine, ...]]:
    """The pool of engines of each architecture that has builders, in the order given.
    ``default`` is the DOCKER_HOST engine's runner (made from ``env`` when not given), which a
    builder named ``default`` shares."""
    pools: dict[Architecture, list[Engine]] = {}
    for builder in builders:
        if builder.host == DEFAULT_ENGINE:
            if default is None:
                default = DockerRunner.from_env(env, reporter=reporter)
            runner = default
        else:
            host = builder.host if "://" in builder.host else context_host(builder.host, env)
            runner = remote_runner(
                host,
                network_mode=builder.network,
                keep_containers=env.get("NATIVEBUILD_KEEP_CONTAINER") == "1",
                reporter=reporter,
            )
        # A password in a tcp:// URL stays out of messages; ssh://user@host reads as it is.
        name = redact(builder.host) if urlsplit(builder.host).password else builder.host
        pools.setdefault(builder.arch, []).append(Engine(name=name, runner=runner))
    return {arch: tuple(engines) for arch, engines in pools.items()}


def remote_runner(
    host: str, *, network_mode: str | None, keep_containers: bool, reporter: Reporter
) -> ContainerRunner:
    """A runner for the engine at ``host`` (ssh://, tcp://, unix://): files travel through the
    API, since a remote engine cannot bind the host's paths."""
    return DockerRunner(
        remote_client_factory(host),
        keep_containers=keep_containers,
        docker_host=host,
        reporter=reporter,
        copy_files=True,
        network_mode=network_mode,
    )
