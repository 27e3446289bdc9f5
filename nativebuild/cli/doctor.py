"""``nativebuild doctor``: every check printed as ok / problem / skipped, with its fix.

Exits 0 only when nothing the configured targets need has a problem; ``--json`` for CI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from nativebuild.cli.common import handle_errors, settings_from_flags
from nativebuild.cli.console import ConsoleReporter, stderr_console
from nativebuild.targets import get_runtime

PROBLEMS_FOUND = 1
_LIFECYCLE_STYLE = {"supported": "green", "deprecation-soon": "yellow"}
_STYLE = {"ok": "green", "problem": "bold red", "skipped": "yellow", "warning": "yellow"}


def doctor(
    runtime: Annotated[
        str | None, typer.Option(help="Lambda runtime to check for. [default: the configured one]")
    ] = None,
    arch: Annotated[
        list[str] | None,
        typer.Option(help="x86_64 or arm64; repeatable. [default: the configured ones]"),
    ] = None,
    build_image: Annotated[
        str | None, typer.Option(help="Build image; {arch} and {runtime} are filled in.")
    ] = None,
    runtime_image: Annotated[
        str | None, typer.Option(help="Runtime image; {arch} and {runtime} are filled in.")
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Wheel cache directory.")] = None,
    cache: Annotated[
        str | None, typer.Option(help="A shared remote cache to check: s3://bucket/prefix.")
    ] = None,
    project: Annotated[
        Path | None,
        typer.Option(help="Directory holding pyproject.toml with [tool.nativebuild]. [default: .]"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check that this machine can build: Docker engine, emulation, images, cache, network, disk."""
    errors = stderr_console()
    env = dict(os.environ)
    with handle_errors(errors):
        from nativebuild.doctor.run import run_doctor
        from nativebuild.engine.docker import DockerRunner

        cli = {
            "runtime": runtime, "arch": arch, "build-image": build_image,
            "runtime-image": runtime_image, "cache-dir": cache_dir, "cache": cache,
        }  # fmt: skip
        settings = settings_from_flags(cli, project, env)
        reporter = ConsoleReporter(errors, verbose=False, quiet=json_output)
        runner = DockerRunner.from_env(env)
        report = run_doctor(settings, runner=runner, env=env, reporter=reporter)
    if json_output:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        out = Console(soft_wrap=True, highlight=False)
        width = max(len(c.name) for c in report.checks)
        for check in report.checks:
            status = check.status.value
            note = "" if check.needed else " (informational)"
            out.print(
                f"[{_STYLE[status]}]{status:<8}[/] {escape(check.name):<{width}}  "
                f"{escape(check.detail)}{note}"
            )
            if check.fix and status == "problem":
                out.print(f"{'':<8} {'':<{width}}  [cyan]fix:[/cyan] {escape(check.fix)}")
        out.print(f"\nLambda's Python runtimes on {report.today}:")
        for row in report.runtimes:
            facts = get_runtime(row.runtime)
            blocks = [
                f"{what} blocked {day}"
                for what, day in (("creation", row.block_create), ("updates", row.block_update))
                if day is not None
            ]
            out.print(
                f"  {row.runtime:<11} {facts.os:<17} glibc {facts.glibc}  "
                f"deprecation {row.deprecated}{''.join(f', {b}' for b in blocks)}  "
                f"[{_LIFECYCLE_STYLE.get(row.stage.value, 'red')}]{row.stage.value}[/]"
            )
        verdict = "ready to build" if report.ok else "problems found"
        out.print(f"\n{verdict} for {', '.join(t.describe() for t in settings.targets())}")
    if not report.ok:
        raise typer.Exit(PROBLEMS_FOUND)
