"""Engines of their own per architecture: ``--builder arm64=ssh://user@graviton-host``.

With a native arm64 engine, arm64 sdists compile at full speed instead of under QEMU. A
builder's containers get their files through the Docker API (no host bind mounts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from nativebuild.engine.docker import DockerRunner, remote_client_factory
from nativebuild.engine.runner import Builder, ContainerRunner
from nativebuild.errors import ConfigError
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
    builders: Iterable[Builder], env: Mapping[str, str], reporter: Reporter
) -> dict[Architecture, ContainerRunner]:
    """A runner per architecture that has a builder of its own."""
    runners: dict[Architecture, ContainerRunner] = {}
    for builder in builders:
        host = builder.host if "://" in builder.host else context_host(builder.host, env)
        runners[builder.arch] = DockerRunner(
            remote_client_factory(host),
            keep_containers=env.get("NATIVEBUILD_KEEP_CONTAINER") == "1",
            docker_host=host,
            reporter=reporter,
            copy_files=True,  # files travel through the API: a remote engine has no bind mounts
            network_mode=builder.network,
        )
    return runners
