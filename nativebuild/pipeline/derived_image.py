"""A build image with the system packages and commands a project's sdists need.

``build-packages`` (installed by ``install-toolchain.sh packages``, which knows dnf, microdnf,
yum and apt-get) and ``before-build`` (shell commands) run once, in an image derived from the
build image and tagged by the hash of what went into it: later builds reuse it, and its
inputs are part of every compiled wheel's cache key (``abi_gate.compile_settings``).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from nativebuild.cache.keys import build_key
from nativebuild.engine.build_images import CA_BUNDLE_NAME, ImageRunner, Recipe, write_ca_bundle
from nativebuild.errors import ConfigError
from nativebuild.pipeline.context import BuildContext
from nativebuild.pipeline.emulation import known_emulated
from nativebuild.reporting import TaskKind, TaskOutput, track
from nativebuild.targets import Target

__all__ = ["DerivedImage", "plan_derived", "with_derived_image"]

# Bump when the Dockerfile below changes shape, so existing derived images are rebuilt.
DERIVED_VERSION = "1"
TAG_PREFIX = "nativebuild/derived"
SETUP_DIR = "/tmp/nativebuild-derived"
LABEL = "org.nativebuild.derived"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DerivedImage:
    base: str
    tag: str
    dockerfile: str
    install_script: bytes
    platform: str


def plan_derived(
    base: str,
    *,
    base_id: str,
    packages: Sequence[str],
    commands: Sequence[str],
    install_script: bytes,
    arch: str,
    platform: str,
    ca_bundle: bool,
) -> DerivedImage:
    """The derived image of ``base``: its tag (a hash of everything that shapes it but the
    machine's CA bundle) and its Dockerfile."""
    key = build_key(
        {
            "kind": "derived-image",
            "base_id": base_id,
            "packages": json.dumps(list(packages)),
            "commands": json.dumps(list(commands)),
            "install_script": build_key({"content": install_script.hex()}),
            "version": DERIVED_VERSION,
        }
    )
    # The CA bundle lets commands reach an index behind a TLS-inspecting proxy; it is
    # deleted in the last step, and holds nothing secret.
    trust = (
        [f"PIP_CERT={SETUP_DIR}/{CA_BUNDLE_NAME}", f"SSL_CERT_FILE={SETUP_DIR}/{CA_BUNDLE_NAME}"]
        if ca_bundle
        else []
    )
    lines = [
        f"FROM {base}",
        f"COPY install-toolchain.sh {CA_BUNDLE_NAME} {SETUP_DIR}/",
    ]
    if packages:
        install = ["/bin/sh", f"{SETUP_DIR}/install-toolchain.sh", "packages", *packages]
        lines.append(f"RUN {json.dumps(install)}")
    lines.extend(f"RUN {json.dumps(['env', *trust, '/bin/sh', '-c', c])}" for c in commands)
    lines += [
        f'RUN ["rm", "-rf", "{SETUP_DIR}"]',
        f"LABEL {LABEL}={json.dumps(key)}",
    ]
    return DerivedImage(
        base=base,
        tag=f"{TAG_PREFIX}:{key[:16]}-{arch}",
        dockerfile="\n".join(lines) + "\n",
        install_script=install_script,
        platform=platform,
    )


def with_derived_image(context: BuildContext, target: Target) -> Target:
    """``target`` with its build image replaced by the derived one, built now if it is not
    there yet; ``target`` itself when there are no build-packages or before-build."""
    settings = context.settings
    if not settings.build_packages and not settings.before_build:
        return target
    key = (target.build_image, target.arch)
    if key not in context.derived_images:
        context.derived_images[key] = _ensure(context, target)
    return dataclasses.replace(target, build_image=context.derived_images[key])


def _ensure(context: BuildContext, target: Target) -> str:
    settings = context.settings
    runner = context.runner_for(target.arch)
    if not isinstance(runner, ImageRunner):
        msg = f"The engine for {target.arch} cannot build images, which build-packages needs."
        raise ConfigError(msg, hint="Bake the packages into an image and pass --build-image.")
    platform = target.arch.docker_platform
    ca_bundle = context.index.ca_bundle
    plan = plan_derived(
        target.build_image,
        base_id=runner.image_id(target.build_image, platform=platform),
        packages=settings.build_packages,
        commands=settings.before_build,
        install_script=dict(Recipe.load().files)["install-toolchain.sh"],
        arch=target.arch.value,
        platform=platform,
        ca_bundle=ca_bundle is not None,
    )
    if runner.local_image(plan.tag) is None:
        what = ", ".join([*settings.build_packages, *settings.before_build])
        context.reporter.step(f"Deriving {plan.tag} from {target.build_image}: {what}")
        with tempfile.TemporaryDirectory(prefix="nativebuild-derived-") as tmp:
            directory = Path(tmp)
            (directory / "Dockerfile").write_text(plan.dockerfile, encoding="utf-8")
            (directory / "install-toolchain.sh").write_bytes(plan.install_script)
            write_ca_bundle(directory, ca_bundle)
            emulated = known_emulated(context, target)
            with track(
                context.reporter, TaskKind.IMAGE, plan.tag, arch=target.arch.value,
                emulated=emulated,
            ) as task:  # fmt: skip
                runner.build_image(
                    context_dir=directory, tag=plan.tag, buildargs=dict(context.index.proxies),
                    platform=platform, reporter=TaskOutput(context.reporter, task),
                )  # fmt: skip
    return plan.tag
