"""Resolving on the host, for the target, with uv: no container, no package code run.

Why uv rather than pip: pip can aim at another Python version and wheel platform, but it
evaluates ``sys_platform`` and ``platform_machine`` markers as the *host* has them (wrong from
a Mac), while uv's ``--python-platform`` sets the whole marker environment of the target. uv
also answers in PEP 751 (file URLs and hashes), in a fraction of a second once its cache is
warm. Its manylinux triples skip 2_18…2_27, so the Amazon Linux 2 runtimes resolve as
manylinux_2_17 (conservative, never too new); the file to install is then chosen by
nativebuild against the target's exact tag list, legacy aliases included.

``--no-build`` keeps sdists' build scripts off the host: a requirement that only an sdist can
satisfy (and that no wheel of the same version describes) makes uv refuse, and the caller then
resolves inside the build image, where the sdist has to be compiled anyway.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from nativebuild.errors import ResolutionError
from nativebuild.index.pip_config import IndexSettings
from nativebuild.index.uv import UvRunner, host_python, index_arguments, uv_environment
from nativebuild.inputs.locked import LockedPackage, read_pylock
from nativebuild.inputs.requirement_line import RequirementLine
from nativebuild.inputs.requirements import RequirementSet
from nativebuild.redact import redact
from nativebuild.targets import Target

# uv's wording when only building an sdist could satisfy a requirement.
_NEEDS_BUILD = ("--no-build", "no usable wheels", "building from source is disabled")


class HostResolutionUnavailable(Exception):
    """uv cannot resolve these requirements on the host; resolve in the build image instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True, kw_only=True)
class HostResolution:
    packages: tuple[LockedPackage, ...]


def compile_arguments(
    target: Target,
    *,
    requirements: Path,
    constraints: Path | None,
    output: Path,
    index: IndexSettings,
    python: str | None = None,
) -> list[str]:
    """The ``uv pip compile`` command line (pure). ``python``: the interpreter uv should
    take as the host's (see :func:`~nativebuild.index.uv.host_python`) rather than search."""
    platform = target.uv_platform()
    if platform is None:
        msg = f"uv has no manylinux platform at or below glibc {target.glibc}"
        raise HostResolutionUnavailable(msg)
    args = [
        "pip", "compile", str(requirements),
        "--python-version", target.runtime.python,
        "--python-platform", platform,
        "--format", "pylock.toml",
        "--output-file", str(output),
        "--no-header", "--no-build", "--quiet", "--no-progress",
        *index_arguments(index),
    ]  # fmt: skip
    if constraints is not None:
        args += ["--constraints", str(constraints)]
    if python is not None:
        args += ["--python", python]
    return args


def resolve_on_host(
    requirements: RequirementSet,
    target: Target,
    *,
    uv: UvRunner,
    index: IndexSettings,
    env: Mapping[str, str],
    workdir: Path,
    uv_cache: Path,
    urls: Mapping[RequirementLine, str] | None = None,
) -> HostResolution:
    """Resolve ``requirements`` for ``target`` with uv; raise HostResolutionUnavailable to ask
    for the build-image resolver, ResolutionError when no resolver could succeed. ``urls``
    gives local requirements (git trees) as uv should read them: unpacked on this machine."""
    if not uv.available():
        msg = "uv is not installed"
        raise HostResolutionUnavailable(msg)
    req_file = workdir / "requirements.txt"
    req_file.write_text(requirements.resolver_text(urls or {}), encoding="utf-8")
    constraints_text = requirements.pip_constraints_text()
    constraints = None
    if constraints_text:
        constraints = workdir / "constraints.txt"
        constraints.write_text(constraints_text, encoding="utf-8")
    output = workdir / "pylock.toml"
    args = compile_arguments(
        target, requirements=req_file, constraints=constraints, output=output, index=index,
        python=host_python(),
    )  # fmt: skip
    done = uv.run(args, cwd=workdir, env=uv_environment(env, index, uv_cache))
    if done.returncode != 0:
        message = _clean(done.stderr)
        if any(marker in message for marker in _NEEDS_BUILD):
            raise HostResolutionUnavailable(message)
        if done.returncode in (126, 127):
            raise HostResolutionUnavailable(message)
        msg = f"uv could not resolve the requirements for {target.describe()}:\n{message}"
        raise ResolutionError(msg, hint=_hint(message))
    try:
        text = output.read_text(encoding="utf-8")
    except OSError as err:
        msg = f"uv succeeded but wrote no {output.name}"
        raise HostResolutionUnavailable(msg) from err
    return HostResolution(packages=read_pylock(text, origin="uv pip compile", base_dir=workdir))


def _clean(stderr: str) -> str:
    lines = [redact(line) for line in stderr.strip().splitlines()]
    return "\n".join(lines[-40:])


def _hint(message: str) -> str:
    lowered = message.lower()
    if "not found in the package registry" in lowered or "no version" in lowered:
        return "Check the package name and version on the index, and any environment markers."
    if "unsatisfiable" in lowered:
        return "Two requirements need incompatible versions; relax one of the pins."
    if "certificate" in lowered or "tls" in lowered or "ssl" in lowered:
        return "The index's TLS certificate could not be verified: set PIP_CERT or SSL_CERT_FILE to your CA bundle."
    if "failed to fetch" in lowered or "error sending request" in lowered:
        return (
            "The package index did not answer (uv retried): check the URL, your network and proxy."
        )
    return "Run again with -v for details."
