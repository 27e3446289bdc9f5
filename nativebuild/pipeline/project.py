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
from nativebuild.config.settings import Settings
from nativebuild.engine.runner import ContainerRunner, Engine
from nativebuild.errors import ConfigError, ResolutionError
from nativebuild.index.uv import UvRunner
from nativebuild.inputs.requirements import parse_requirements
from nativebuild.pipeline import run
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
) -> run.BuildResult:
    """:func:`run.build` for a project, whatever number of functions it has."""
    return _for_project(
        settings, env,
        lambda effective: run.build(
            effective, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv,
            builders=builders,
        ),
    )  # fmt: skip


def plan_project(
    settings: Settings,
    *,
    runner: ContainerRunner,
    env: Mapping[str, str],
    reporter: Reporter,
    verbose: bool = False,
    uv: UvRunner | None = None,
    builders: Mapping[Architecture, Sequence[Engine]] | None = None,
    shards: int | None = None,
) -> run.PlanResult:
    """:func:`run.plan` for a project, whatever number of functions it has."""
    return _for_project(
        settings, env,
        lambda effective: run.plan(
            effective, runner=runner, env=env, reporter=reporter, verbose=verbose, uv=uv,
            builders=builders, shards=shards,
        ),
    )  # fmt: skip
