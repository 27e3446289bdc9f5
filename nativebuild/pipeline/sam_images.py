"""Image functions of a SAM template (``PackageType: Image`` with ``Metadata.BuildMethod:
nativebuild-image``): each built with :func:`nativebuild.pipeline.project.build_sam_image` and
loaded into the engine under SAM's tag, ``logicalid:dockertag``, which ``sam deploy`` pushes.
Its tarball and manifest go to the resource's folder of the build directory."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from nativebuild.config.settings import Settings
from nativebuild.engine.runner import ContainerRunner
from nativebuild.errors import TemplateError
from nativebuild.index.uv import UvRunner
from nativebuild.pipeline.project import SamImage, build_sam_image
from nativebuild.reporting import Reporter
from nativebuild.sam.output import ResourceOutcome
from nativebuild.sam.plan import find_requirements
from nativebuild.sam.resources import Buildable


def image_tag(resource: Buildable) -> str:
    """SAM's tag for an image function: the logical id (lower case) and its DockerTag."""
    return f"{resource.logical_id.lower()}:{resource.image_tag or 'latest'}"


def image_requirements(resource: Buildable) -> Path:
    """The requirements (or lock) file of an image function: an image needs one."""
    requirements = find_requirements(resource.code_dir)
    if requirements is None:
        msg = f"{resource.logical_id} (nativebuild-image): no requirements file in {resource.code_dir}."
        hint = "Put a requirements.txt (or a lock file) beside the image's code."
        raise TemplateError(msg, hint=hint)
    return requirements


def build_images(
    images: Sequence[Buildable],
    base: Settings,
    *,
    stage_dir: Path,
    build_dir: Path,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
) -> list[tuple[ResourceOutcome, SamImage]]:
    """Build and load every image function; what each outcome says, and the image."""
    built = []
    for resource in images:
        requirements = image_requirements(resource)
        settings = dataclasses.replace(
            base, runtime=resource.runtime, archs=(resource.arch,), requirements=requirements,
            src=resource.code_dir, output=stage_dir / resource.logical_id,
            name=resource.logical_id, handler=resource.handler, verify=False,  # zips only
        )  # fmt: skip
        reporter.step(f"Building the image of {resource.logical_id} as {image_tag(resource)}")
        image = build_sam_image(
            settings, tag=image_tag(resource), runner=runner, env=env, reporter=reporter,
            verbose=verbose, uv=uv,
        )  # fmt: skip
        record = image.record
        fresh = any(wheel.source != "cache" for wheel in record.wheels)
        archive = build_dir / resource.logical_id / record.path.name
        outcome = ResourceOutcome(
            logical_id=resource.logical_id, type=resource.type, runtime=resource.runtime,
            arch=resource.arch.value, archive=archive, sha256=record.sha256,
            status="built" if fresh else "cached",
            reason=f"image {image.image_uri} ({image.image_id[:19]}), loaded into the engine",
        )  # fmt: skip
        built.append((outcome, image))
    return built
