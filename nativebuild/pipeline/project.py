"""A project's build: one pipeline run, with several functions' requirements made one.

With ``[[tool.nativebuild.functions]]``, the shared layer is built from the union of every
function's requirements, resolved together as one requirements file that includes each of
theirs. Pins that cannot agree (one function pins a version another excludes) are reported per
package, with the file and line of each side, before anything is resolved; conflicts the
resolver finds deeper (through dependencies) come back naming the functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from nativebuild.archive.layout import (
    Kind,
    check_functions,
    conflict_error,
    pin_conflicts,
    union_requirements_text,
)
from nativebuild.archive.manifest import ArchiveRecord
from nativebuild.config.settings import Settings
from nativebuild.engine.image_store import ImageStore
from nativebuild.engine.runner import ContainerRunner, Engine
from nativebuild.errors import ConfigError, ResolutionError
from nativebuild.index.pip_config import pip_config_files
from nativebuild.index.uv import UvRunner
from nativebuild.inputs.requirements import parse_requirements
from nativebuild.pipeline import run, uptodate
from nativebuild.pipeline.image import load_image
from nativebuild.reporting import Reporter
from nativebuild.targets import Architecture

_R = TypeVar("_R")

_UNION_HINT = (
    "Look for the package named above in the functions' requirements; align the versions, or "
    "build the functions that disagree separately."
)


@contextlib.contextmanager
def project_settings(settings: Settings, env: Mapping[str, str]) -> Iterator[Settings]:
    """``settings`` for one pipeline run; with several functions, ``requirements`` is their
    union (a file that lives as long as the context)."""
    functions = settings.functions
    if not functions:
        yield settings
        return
    check_functions(functions, src=settings.src)
    if settings.kind is Kind.FUNCTION:
        msg = 'Several functions share one dependencies layer: set kind = "split" (or "layer").'
        hint = "For self-contained archives, run nativebuild once per function."
        raise ConfigError(msg, hint=hint)
    text = union_requirements_text(functions)
    sets = {fn.name: parse_requirements(fn.requirements, env=env) for fn in functions}
    problems = pin_conflicts(sets)
    if problems:
        raise conflict_error(problems)
    with tempfile.TemporaryDirectory(prefix="nativebuild-union-") as tmp:
        union = Path(tmp) / "requirements.txt"
        union.write_text(text, encoding="utf-8")
        yield dataclasses.replace(settings, requirements=union)


def _union_failure(settings: Settings, err: ResolutionError) -> ResolutionError:
    names = ", ".join(fn.name for fn in settings.functions)
    msg = f"The requirements of {names} do not resolve together, for their shared layer: {err}"
    return ResolutionError(msg, hint=err.hint or _UNION_HINT)


def _for_project(settings: Settings, env: Mapping[str, str], step: Callable[[Settings], _R]) -> _R:
    """Run ``step`` on the project's effective settings (one union of requirements when it has
    several functions), explaining a failed union in terms of those functions."""
    with project_settings(settings, env) as effective:
        try:
            return step(effective)
        except ResolutionError as err:
            if not settings.functions:
                raise
            raise _union_failure(settings, err) from err


def build_project(
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, Sequence[Engine]] | None = None,
    today: datetime.date | None = None,
) -> run.BuildResult:
    """:func:`run.build` for a project, whatever number of functions it has; the record of
    what it was made from is kept for :func:`nativebuild.pipeline.uptodate.up_to_date_result`."""
    uptodate.forget(uptodate.state_path(settings, env))

    def step(effective: Settings) -> run.BuildResult:
        result = run.build(
            effective, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv,
            builders=builders, today=today,
        )  # fmt: skip
        _remember(settings, effective, env, result)
        return result

    return _for_project(settings, env, step)


def _remember(
    settings: Settings, effective: Settings, env: Mapping[str, str], result: run.BuildResult
) -> None:
    made = result.made_from
    if made is None or made.volatile or "unconfirmed" in made.images.values():
        return  # an image could not be asked for its id: the next build must ask again
    # Not the union of several functions' requirements (a file of this run only, made from
    # theirs, which are among the files read); a single function's own file, of course.
    generated = effective.requirements if effective.requirements != settings.requirements else None
    files = [path for path in made.files if generated is None or path != generated.absolute()]
    home = Path(env.get("HOME", str(Path.home())))
    config_files = pip_config_files(env, home)
    try:
        record = uptodate.capture(
            settings, env,
            input_files=[*files, *(p for p in config_files if p.is_file())],
            input_trees=made.trees,
            absent_files=[p for p in config_files if not p.exists()],
            images=made.images,
            outputs=[*(a.path for a in result.archives), *([result.manifest] if result.manifest else [])],
            written={a.path: (a.size, a.sha256) for a in result.archives},
            result=result.to_json(),
        )  # fmt: skip
        uptodate.write(uptodate.state_path(settings, env), record)
    except OSError:
        return  # an input went away meanwhile: no record, so the next build is a real one


def plan_project(
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, Sequence[Engine]] | None = None,
    today: datetime.date | None = None,
    shards: int | None = None,
) -> run.PlanResult:
    """:func:`run.plan` for a project, whatever number of functions it has."""
    return _for_project(
        settings, env,
        lambda effective: run.plan(
            effective, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv,
            builders=builders, today=today, shards=shards,
        ),
    )  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamImage:
    """What ``sam build`` writes for an image function: the ``ImageUri`` of the built template
    (the loaded tag), and the build's record of the image."""

    image_uri: str
    image_id: str
    record: ArchiveRecord


def build_sam_image(
    settings: Settings,
    *,
    tag: str,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
) -> SamImage:
    """The image of one ``PackageType: Image`` function whose ``Metadata.BuildMethod`` is
    ``nativebuild-image``, for ``nativebuild sam build``: ``settings`` carry its runtime,
    architecture (one), requirements, source (CodeUri), handler and output directory; the
    image is built and loaded into the engine as ``tag`` (SAM's ``LogicalId:DockerTag``),
    which ``sam deploy`` then pushes."""
    if len(settings.archs) != 1:
        msg = f"An image function has one architecture; got {len(settings.archs)}."
        raise ConfigError(msg, hint="Set one Architectures entry on the function.")
    image_settings = dataclasses.replace(settings, kind=Kind.IMAGE, load=False)
    result = build_project(
        image_settings, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv
    )
    (record,) = result.archives
    if record.image is None or not isinstance(runner, ImageStore):  # pragma: no cover
        msg = "The build wrote no image, or the engine cannot load one."
        raise ConfigError(msg)
    loaded = load_image(runner, record.path, record.image, reporter=reporter, repo_tag=tag)
    return SamImage(image_uri=loaded, image_id=record.image.id, record=record)
