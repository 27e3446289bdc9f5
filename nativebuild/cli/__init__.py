"""The command line: parse flags, read the environment once, run, and map errors to exit codes.

The only module that prints or exits. Every flag defaults to None so that pyproject.toml and
NATIVEBUILD_* variables can supply the value (flags win when given).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nativebuild import __version__
from nativebuild.cli.cache import cache_app
from nativebuild.cli.doctor import doctor
from nativebuild.cli.images import images_app
from nativebuild.cli.publish import (
    FunctionOpt,
    LayerNameOpt,
    PublishFlagOpt,
    S3Opt,
    publish,
    publish_built,
)
from nativebuild.cli.verify import (
    BeforeBuildOpt,
    BuildPackageOpt,
    CheckOpt,
    RepairOpt,
    VerifyFlagOpt,
    verify,
)
from nativebuild.config.settings import Settings, load_tool_table, resolve
from nativebuild.errors import NativebuildError

if TYPE_CHECKING:
    from nativebuild.pipeline.run import PlanResult

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


# Options shared by build and plan. Every default is None: the cascade supplies the value.
RequirementsOpt = Annotated[
    Path | None,
    typer.Option(
        "-r",
        "--requirements",
        help="requirements.txt, pyproject.toml, pylock.toml, uv.lock or poetry.lock. "
        "[default: requirements.txt]",
    ),
]
RuntimeOpt = Annotated[
    str | None, typer.Option(help="Lambda runtime, python3.9 … python3.14. [default: python3.12]")
]
ArchOpt = Annotated[
    list[str] | None, typer.Option(help="x86_64 or arm64; repeat for both. [default: x86_64]")
]
SrcOpt = Annotated[Path | None, typer.Option(help="The function's own source directory.")]
OutputOpt = Annotated[
    Path | None, typer.Option("-o", "--output", help="Output directory. [default: dist]")
]
NameOpt = Annotated[str | None, typer.Option(help="Archive base name. [default: function]")]
CacheDirOpt = Annotated[Path | None, typer.Option(help="Wheel cache directory.")]
BuildImageOpt = Annotated[
    str | None, typer.Option(help="Build image; {arch} is replaced by x86_64 or arm64.")
]
RuntimeImageOpt = Annotated[
    str | None, typer.Option(help="Runtime image; {arch} is replaced by x86_64 or arm64.")
]
GlibcOpt = Annotated[str | None, typer.Option(help="glibc ceiling of a custom image, e.g. 2.31.")]
ExtraOpt = Annotated[
    list[str] | None, typer.Option("--extra", help="Optional dependencies to include; repeatable.")
]
GroupOpt = Annotated[
    list[str] | None, typer.Option("--group", help="Dependency group to include; repeatable.")
]
ProjectOpt = Annotated[
    Path | None,
    typer.Option(help="Directory holding pyproject.toml with [tool.nativebuild]. [default: .]"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("-v", "--verbose", help="Stream container output live.")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")]
BuilderOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--builder",
        help="ARCH=ENGINE: compile that architecture on its own engine (ssh://, tcp://, unix:// "
        "or a docker context name); repeatable.",
    ),
]
JobsOpt = Annotated[
    int | None, typer.Option("-j", "--jobs", help="Targets built at once. [default: CPU count]")
]
CacheOpt = Annotated[
    str | None,
    typer.Option("--cache", help="A shared remote cache behind the local one: s3://bucket/prefix."),
]
CacheOnlyOpt = Annotated[
    bool | None,
    typer.Option("--cache-only", help="Fail, naming the packages, if anything would be compiled."),
]
NoCacheOpt = Annotated[
    bool | None,
    typer.Option("--no-cache", help="Read no cache, local or remote (a throwaway one is used)."),
]
CacheReadonlyOpt = Annotated[
    bool | None,
    typer.Option("--cache-readonly", help="Pull from the remote cache, never push to it."),
]

# Archives and layers (nativebuild.archive.layout, .slim, .bytecode, .budget).
KindOpt = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help="function (dependencies + --src), layer, or split (a dependencies layer plus a "
        "code-only function). [default: function]",
    ),
]
LayerLayoutOpt = Annotated[
    str | None,
    typer.Option(
        "--layer-layout",
        help="Layer directory: python (python/) or site-packages "
        "(python/lib/python3.X/site-packages/). [default: python]",
    ),
]
CompileOpt = Annotated[
    bool | None,
    typer.Option(
        "--compile/--no-compile",
        help="Ship .pyc files (PEP 552 checked-hash), compiled by the target's Python.",
    ),
]
SlimOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--slim",
        help="Opt-in slimming: tests, docs, examples, runtime-provided, strip, or all; "
        "repeatable or comma-separated.",
    ),
]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option("--include", help="Glob kept whatever --slim/--exclude say; repeatable."),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="Glob left out of the archives (never .dist-info); repeatable."),
]
WithLayerOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--with-layer",
        help="A layer .zip built elsewhere that the function uses: counted in the size budget; "
        "repeatable.",
    ),
]


def _settings(cli: dict[str, Any], project: Path | None, env: dict[str, str]) -> Settings:
    cwd = Path.cwd()
    project_dir = (project or cwd).resolve()
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in cli.items()}
    return resolve(
        cli={k: (v or None) if isinstance(v, list) else v for k, v in given.items()},
        file_table=load_tool_table(project_dir / "pyproject.toml"),
        env=env,
        project_dir=project_dir,
        cwd=cwd,
    )


@app.command()
def build(
    requirements: RequirementsOpt = None,
    runtime: RuntimeOpt = None,
    arch: ArchOpt = None,
    src: SrcOpt = None,
    output: OutputOpt = None,
    name: NameOpt = None,
    cache_dir: CacheDirOpt = None,
    build_image: BuildImageOpt = None,
    runtime_image: RuntimeImageOpt = None,
    glibc: GlibcOpt = None,
    extra: ExtraOpt = None,
    group: GroupOpt = None,
    project: ProjectOpt = None,
    jobs: JobsOpt = None,
    builder: BuilderOpt = None,
    cache: CacheOpt = None,
    cache_only: CacheOnlyOpt = None,
    no_cache: NoCacheOpt = None,
    cache_readonly: CacheReadonlyOpt = None,
    kind: KindOpt = None,
    layer_layout: LayerLayoutOpt = None,
    compile_: CompileOpt = None,
    slim: SlimOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    with_layer: WithLayerOpt = None,
    check: CheckOpt = None,
    repair: RepairOpt = None,
    verify_: VerifyFlagOpt = None,
    build_package: BuildPackageOpt = None,
    before_build: BeforeBuildOpt = None,
    publish_: PublishFlagOpt = False,
    layer_name: LayerNameOpt = None,
    function: FunctionOpt = None,
    s3: S3Opt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the plan (as `nativebuild plan`); build nothing."),
    ] = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build a Lambda function archive (.zip) from requirements and source."""
    cli = {
        "requirements": requirements, "runtime": runtime, "arch": arch, "src": src,
        "output": output, "name": name, "cache-dir": cache_dir, "build-image": build_image,
        "runtime-image": runtime_image, "glibc": glibc, "extras": extra, "groups": group,
        "jobs": jobs, "builders": builder, "cache": cache, "cache-only": cache_only,
        "no-cache": no_cache, "cache-readonly": cache_readonly,
        "kind": kind, "layer-layout": layer_layout, "compile": compile_, "slim": slim,
        "include": include, "exclude": exclude,
        "with-layers": [str(p) for p in with_layer] if with_layer else None,
        "check": check, "repair": repair, "verify": verify_, "build-packages": build_package,
        "before-build": before_build,
    }  # fmt: skip
    to_publish = {"layer_name": layer_name, "functions": function, "s3": s3} if publish_ else None
    _run(
        cli, project, dry_run=dry_run, json_output=json_output, verbose=verbose, quiet=quiet,
        to_publish=to_publish,
    )  # fmt: skip


@app.command()
def plan(
    requirements: RequirementsOpt = None,
    runtime: RuntimeOpt = None,
    arch: ArchOpt = None,
    cache_dir: CacheDirOpt = None,
    build_image: BuildImageOpt = None,
    glibc: GlibcOpt = None,
    extra: ExtraOpt = None,
    group: GroupOpt = None,
    project: ProjectOpt = None,
    cache: CacheOpt = None,
    cache_only: CacheOnlyOpt = None,
    no_cache: NoCacheOpt = None,
    cache_readonly: CacheReadonlyOpt = None,
    repair: RepairOpt = None,
    build_package: BuildPackageOpt = None,
    before_build: BeforeBuildOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Show what a build would do for each package: cached, download a wheel, or compile."""
    cli = {
        "requirements": requirements, "runtime": runtime, "arch": arch, "cache-dir": cache_dir,
        "build-image": build_image, "glibc": glibc, "extras": extra, "groups": group,
        "cache": cache, "cache-only": cache_only, "no-cache": no_cache,
        "cache-readonly": cache_readonly, "repair": repair, "build-packages": build_package,
        "before-build": before_build,
    }  # fmt: skip
    _run(cli, project, dry_run=True, json_output=json_output, verbose=verbose, quiet=quiet)


def _run(
    cli: dict[str, Any],
    project: Path | None,
    *,
    dry_run: bool,
    json_output: bool,
    verbose: bool,
    quiet: bool,
    to_publish: dict[str, Any] | None = None,
) -> None:
    console = Console(stderr=True, soft_wrap=True)
    env = dict(os.environ)
    with handle_errors(console):
        from nativebuild.engine.builders import make_builders
        from nativebuild.engine.docker import DockerRunner
        from nativebuild.pipeline import run as pipeline
        from nativebuild.pipeline.project import build_project, plan_project

        settings = _settings(cli, project, env)
        reporter = ConsoleReporter(console, verbose=verbose, quiet=quiet)
        runner = DockerRunner.from_env(env, reporter=reporter)
        builders = make_builders(settings, env, reporter)
        if dry_run:
            planned = plan_project(
                settings, runner=runner, env=env, reporter=reporter, verbose=verbose,
                builders=builders,
            )  # fmt: skip
            if json_output:
                typer.echo(pipeline.dump_json(planned))
            else:
                print_plan(planned)
            return
        result = build_project(
            settings, runner=runner, env=env, reporter=reporter, verbose=verbose,
            builders=builders,
        )  # fmt: skip
        if json_output:
            typer.echo(pipeline.dump_json(result))
        else:
            for archive in result.archives:
                typer.echo(str(archive.path))
        if to_publish is not None:
            publish_built(result.manifest, to_publish, reporter=reporter, console=console)


def print_plan(planned: PlanResult) -> None:
    # Wide enough for wheel file names when the output is not a terminal (a CI log, a file).
    console = Console(width=None if sys.stdout.isatty() else 200)
    for target_plan in planned.targets:
        table = Table(title=f"{target_plan.target.describe()} — {target_plan.plan.summary()}")
        for column in ("package", "version", "action", "file", "reason"):
            table.add_column(column)
        for item in target_plan.plan.items:
            table.add_row(
                item.pin.name, item.pin.version, item.action.value, item.pin.filename, item.reason
            )
        console.print(table)


app.add_typer(images_app, name="images")
app.add_typer(cache_app, name="cache")
app.command()(doctor)
app.command()(verify)
app.command()(publish)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
