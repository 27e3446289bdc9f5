"""``nativebuild images``: build, list and pin nativebuild's build images.

Progress goes to stderr; results (tags, the list, digests) to stdout; the shared plumbing
(reporter, error mapping, settings cascade) comes from :mod:`nativebuild.cli.common`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from nativebuild.cli.common import ConsoleReporter, handle_errors, settings_from_flags
from nativebuild.cli.options import JsonOpt, ProjectOpt, QuietOpt
from nativebuild.errors import ImageNotFoundError
from nativebuild.targets import Architecture, Runtime, get_runtime, runtimes

images_app = typer.Typer(
    name="images",
    help="nativebuild's build images: each runtime's own image plus a compiler toolchain.",
    no_args_is_help=True,
)

RuntimesOpt = Annotated[
    list[str] | None,
    typer.Option("--runtime", help="Lambda runtime; repeatable. [default: the configured one]"),
]
ArchsOpt = Annotated[
    list[str] | None,
    typer.Option("--arch", help="x86_64 or arm64; repeatable. [default: the configured ones]"),
]


def _console() -> Console:
    return Console(stderr=True, soft_wrap=True)


@images_app.command("build")
def build(
    runtime: RuntimesOpt = None,
    arch: ArchsOpt = None,
    base: Annotated[
        str | None,
        typer.Option(
            help="Base image instead of the runtime's own ({arch} is filled in); it must "
            "have the runtime's Python at /var/lang/bin/python3.X."
        ),
    ] = None,
    all_runtimes: Annotated[
        bool, typer.Option("--all", help="Every runtime, both architectures.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Build even when the image exists.")] = False,
    project: ProjectOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Build (and tag) the build images, streaming the build log; prints each tag."""

    console = _console()
    env = dict(os.environ)
    with handle_errors(console):
        from nativebuild.engine import build_images
        from nativebuild.engine.docker import DockerRunner
        from nativebuild.index.pip_config import discover

        settings = settings_from_flags({"arch": arch, "runtime-image": base}, project, env)
        names = list(runtimes()) if all_runtimes else runtime or [settings.runtime]
        archs = tuple(Architecture) if all_runtimes else settings.archs
        reporter = ConsoleReporter(console, verbose=not quiet, quiet=quiet)
        runner = DockerRunner.from_env(env, reporter=reporter)
        recipe = build_images.Recipe.load()
        index = discover(env)
        for name in names:
            per_runtime = dataclasses.replace(settings, runtime=get_runtime(name).name, archs=archs)
            for target in per_runtime.targets():
                tag = build_images.ensure_build_image(
                    target, runner, reporter, index=index, recipe=recipe, force=force
                )
                typer.echo(tag)


@images_app.command("list")
def list_images(json_output: JsonOpt = False) -> None:
    """Show nativebuild's build images present locally, with their ids and bases."""

    with handle_errors(_console()):
        from nativebuild.engine import build_images
        from nativebuild.engine.docker import DockerRunner

        runner = DockerRunner.from_env(dict(os.environ))
        found = build_images.describe_images(
            runner.list_images(build_images.REPOSITORY_PREFIX), build_images.Recipe.load()
        )
        if json_output:
            typer.echo(json.dumps([item.to_json() for item in found], indent=2, sort_keys=True))
            return
        table = Table(title=f"nativebuild build images ({len(found)})")
        for column in ("tag", "runtime", "arch", "recipe", "id", "base", "base digest", "size"):
            table.add_column(column)
        for item in found:
            table.add_row(
                ", ".join(item.info.tags),
                item.runtime,
                item.arch,
                "current" if item.current else "stale",
                item.info.id[:19],
                item.base,
                item.base_digest[:19],
                f"{item.info.size / 1024**2:.0f} MB",
            )
        Console(width=None if sys.stdout.isatty() else 200).print(table)


@images_app.command("pin")
def pin(
    runtime: RuntimesOpt = None,
    arch: ArchsOpt = None,
    file: Annotated[
        Path | None,
        typer.Option(help="The digest table to rewrite. [default: nativebuild's images.toml]"),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Ask the registry for the current digest of every default image; record them."""

    console = _console()
    with handle_errors(console):
        from nativebuild.engine import build_images
        from nativebuild.engine.docker import DockerRunner

        selected: list[Runtime] = [get_runtime(n) for n in runtime or list(runtimes())]
        archs = [Architecture.parse(a) for a in arch or [a.value for a in Architecture]]
        reporter = ConsoleReporter(console, verbose=False, quiet=quiet)
        runner = DockerRunner.from_env(dict(os.environ), reporter=reporter)
        path = file if file is not None else build_images.images_toml_path()
        result = build_images.pin(
            build_images.pin_references(selected, archs),
            runner=runner,
            path=path,
            reporter=reporter,
        )
        for ref, digest in result.digests.items():
            state = "updated" if ref in result.changed else "unchanged"
            typer.echo(f"{ref}\t{digest}\t{state}")
        for ref, why in result.failed.items():
            reporter.warning(f"{ref}: {why}")
        if result.failed:
            total = len(result.failed) + len(result.digests)
            msg = (
                f"{len(result.failed)} of {total} images could not be resolved; their pins "
                f"in {path} are unchanged."
            )
            hint = "Check that the registry (public.ecr.aws) is reachable: `docker pull` one."
            raise ImageNotFoundError(msg, hint=hint)
