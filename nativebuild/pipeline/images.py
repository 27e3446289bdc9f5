"""Which image a target's containers use, and its identity for cache keys: the build image
given, or nativebuild's own (built on first use), derived with the project's build packages."""

from __future__ import annotations

import dataclasses

from nativebuild.cache.keys import build_key
from nativebuild.engine.build_images import ImageRunner, ensure_build_image
from nativebuild.errors import ConfigError, DockerUnavailableError
from nativebuild.pipeline.context import BuildContext
from nativebuild.pipeline.derived_image import with_derived_image
from nativebuild.pipeline.emulation import known_emulated
from nativebuild.targets import Target

OWN_IMAGE_PREFIX = "nativebuild/build-"  # engine.build_images.image_tag: named by recipe and base


def with_build_image(context: BuildContext, target: Target) -> Target:
    """``target`` with the build image its containers use. Without --build-image that is
    nativebuild's own image for the runtime (build-images/), built on first use; only called
    when a container or a compile key needs it, so builds that need neither need no engine."""
    if context.settings.build_image is not None:
        return target
    memo, key = context.build_images, (target.runtime.name, target.arch)
    if key not in memo:
        runner = context.runner_for(target.arch)
        if not isinstance(runner, ImageRunner):
            msg = f"The engine for {target.arch} cannot build nativebuild's build image."
            raise ConfigError(msg, hint="Pass --build-image with an image that has a compiler.")
        memo[key] = ensure_build_image(
            target, runner, context.reporter, index=context.index,
            emulated=known_emulated(context, target),
        )  # fmt: skip
    return dataclasses.replace(target, build_image=memo[key])


def with_compile_image(context: BuildContext, target: Target) -> Target:
    """``target`` with the image its sdists are built (and resolved) in: the build image, or
    the one derived from it with the project's build-packages and before-build."""
    return with_derived_image(context, with_build_image(context, target))


def image_identity(context: BuildContext, target: Target) -> str:
    """The build image's identity, for cache keys. nativebuild's own images are named by their
    recipe and base, so the name is the identity (the same on every machine sharing a cache);
    other images are asked for their id. When the engine is down and the id was seen before,
    the last one seen stands (a warm build then needs no engine)."""
    key = build_key(
        {"kind": "image-id", "image": target.build_image, "platform": target.arch.docker_platform}
    )
    if "@sha256:" in target.build_image:
        return target.build_image.rsplit("@", 1)[1]  # pinned by digest: that is the identity
    try:
        target = with_build_image(context, target)
        ref = target.build_image
        image_id = context.runner_for(target.arch).image_id(
            ref, platform=target.arch.docker_platform
        )
    except DockerUnavailableError:
        seen = context.cache.get_json("image-id", key)
        if seen is None:
            raise
        context.reporter.detail(
            f"Docker engine not reachable: using {seen['image']} as last seen ({seen['id'][:19]})"
        )
        # Never matches an id: the next build asks the engine again.
        context.image_ids[f"{target.build_image}|{target.arch.docker_platform}"] = "unconfirmed"
        return str(seen["id"])
    identity = ref if ref.startswith(OWN_IMAGE_PREFIX) else image_id
    context.image_ids[f"{ref}|{target.arch.docker_platform}"] = identity
    seen = context.cache.get_json("image-id", key)
    if seen is None or seen.get("id") != identity:
        context.cache.replace_json("image-id", key, {"image": ref, "id": identity})
    return identity
