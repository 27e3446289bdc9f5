"""The command line: parse flags, read the environment once, run, and map errors to exit codes.

The only module that prints or exits. Every flag defaults to None so that pyproject.toml and
NATIVEBUILD_* variables can supply the value (flags win when given).
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from nativebuild import __version__
from nativebuild.config import load_tool_table, resolve
from nativebuild.errors import NativebuildError

app = typer.Typer(
    name="nativebuild",
    help="Build AWS Lambda Python archives: native dependencies compiled once, in Lambda-like "
    "containers, cached, and packed into byte-reproducible zips.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
INTERRUPTED = 130


class ConsoleReporter:
    """Progress on stderr: steps always, details and container output by verbosity."""

    def __init__(self, console: Console, *, verbose: bool, quiet: bool) -> None:
        self.console = console
        self.verbose = verbose
        self.quiet = quiet

    def step(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[bold]==>[/bold] {escape(message)}")

    def detail(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"    {escape(message)}", style="dim")

    def command(self, argv: list[str]) -> None:
        if not self.quiet:
            self.console.print(f"    + {escape(shlex.join(argv))}", style="dim")

    def output(self, line: str) -> None:
        if self.verbose:
            self.console.print(f"    | {escape(line)}", highlight=False)

    def warning(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {escape(message)}")


@contextlib.contextmanager
def handle_errors(console: Console) -> Iterator[None]:
    """Map our errors to a message and an exit code: no traceback for anything we foresaw."""
    try:
        yield
    except NativebuildError as err:
        console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False)
        if err.hint:
            console.print(f"[cyan]hint:[/cyan] {escape(err.hint)}", highlight=False)
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        console.print(
            "[bold red]interrupted[/bold red]: containers were removed, nothing was left half-written"
        )
        raise typer.Exit(INTERRUPTED) from None


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"nativebuild {__version__}")
        raise typer.Exit


@app.callback()
def main_options(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = None,
) -> None:
    """nativebuild: Lambda archives with native dependencies."""


@app.command()
def build(
    requirements: Annotated[
        Path | None,
        typer.Option("-r", "--requirements", help="Requirements file. [default: requirements.txt]"),
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(help="Lambda runtime, python3.9 … python3.14. [default: python3.12]"),
    ] = None,
    arch: Annotated[
        list[str] | None,
        typer.Option(help="x86_64 or arm64; repeat for both. [default: x86_64]"),
    ] = None,
    src: Annotated[Path | None, typer.Option(help="The function's own source directory.")] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output directory. [default: dist]")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Archive base name. [default: function]")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Wheel cache directory.")] = None,
    build_image: Annotated[
        str | None, typer.Option(help="Build image; {arch} is replaced by x86_64 or arm64.")
    ] = None,
    runtime_image: Annotated[
        str | None, typer.Option(help="Runtime image; {arch} is replaced by x86_64 or arm64.")
    ] = None,
    glibc: Annotated[
        str | None, typer.Option(help="glibc ceiling of a custom image, e.g. 2.31.")
    ] = None,
    project: Annotated[
        Path | None,
        typer.Option(help="Directory holding pyproject.toml with [tool.nativebuild]. [default: .]"),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout instead of the path.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Stream container output live.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")] = False,
) -> None:
    """Build a Lambda function archive (.zip) from requirements and source."""
    console = Console(stderr=True, soft_wrap=True)
    env = dict(os.environ)
    with handle_errors(console):
        from nativebuild.container import DockerRunner
        from nativebuild.pipeline import build as run_build
        from nativebuild.pipeline import dump_json

        cwd = Path.cwd()
        project_dir = (project or cwd).resolve()
        cli: dict[str, Any] = {
            "requirements": requirements,
            "runtime": runtime,
            "arch": arch or None,
            "src": src,
            "output": output,
            "name": name,
            "cache-dir": cache_dir,
            "build-image": build_image,
            "runtime-image": runtime_image,
            "glibc": glibc,
        }
        cli = {k: (str(v) if isinstance(v, Path) else v) for k, v in cli.items()}
        settings = resolve(
            cli=cli,
            file_table=load_tool_table(project_dir / "pyproject.toml"),
            env=env,
            project_dir=project_dir,
            cwd=cwd,
        )
        reporter = ConsoleReporter(console, verbose=verbose, quiet=quiet)
        runner = DockerRunner.from_env(env, reporter=reporter)
        result = run_build(settings, runner=runner, env=env, reporter=reporter, verbose=verbose)
        if json_output:
            typer.echo(dump_json(result))
        else:
            for archive in result.archives:
                typer.echo(str(archive.path))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
