"""What every command shares: the error mapping, settings from flags, and the build, plan and
publish runs that more than one command starts. Imports no command; the reporters are in
nativebuild.cli.console.

The only place, with the command modules, that prints or exits. Heavy modules (the pipeline,
docker, boto3) are imported when a command runs, so `--help` and warm builds stay fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nativebuild.cli import quick
from nativebuild.cli.console import ConsoleReporter, open_reporter, stderr_console
from nativebuild.config.settings import Settings, load_tool_table, resolve
from nativebuild.config.values import note_path, recording_paths
from nativebuild.errors import ConfigError, NativebuildError
from nativebuild.targets import deprecation_notices

if TYPE_CHECKING:
    from nativebuild.aws.publish_plan import PublishResult
    from nativebuild.pipeline.quick import Output
    from nativebuild.pipeline.run import PlanResult
    from nativebuild.pipeline.uptodate import UpToDate
    from nativebuild.reporting import Reporter

INTERRUPTED = 130


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


def settings_from_flags(cli: dict[str, Any], project: Path | None, env: dict[str, str]) -> Settings:
    cwd = Path.cwd()
    project_dir = (project or cwd).resolve()
    note_path(cwd / (project or cwd), project_dir)
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in cli.items()}
    return resolve(
        cli={k: (v or None) if isinstance(v, list) else v for k, v in given.items()},
        file_table=load_tool_table(project_dir / "pyproject.toml"),
        env=env,
        project_dir=project_dir,
        cwd=cwd,
    )


def run_build(
    cli: dict[str, Any],
    project: Path | None,
    *,
    dry_run: bool,
    json_output: bool,
    verbose: bool,
    quiet: bool,
    to_publish: dict[str, Any] | None = None,
    shards: int | None = None,
    artifacts_dir: Path | None = None,
) -> None:
    console = stderr_console()
    env = dict(os.environ)
    reporting = open_reporter(
        console, verbose=verbose, quiet=quiet, json_output=json_output, env=env
    )
    # The reporter closes (the live display erased) before an error is printed.
    with handle_errors(console), reporting as reporter:
        with recording_paths() as links:
            settings = settings_from_flags(cli, project, env)
        if artifacts_dir is not None:
            check_one_archive(settings)
        if not dry_run and to_publish is None:
            from nativebuild.pipeline.uptodate import up_to_date_result

            # The warm no-op: before the pipeline (or docker) is even imported.
            found = up_to_date_result(settings, env)
            if found is not None:
                output = up_to_date_output(
                    found, settings, console, verbose=verbose, quiet=quiet, json_output=json_output
                )
                quick.emit(output[:1])
                if artifacts_dir is not None:  # a fresh $(ARTIFACTS_DIR) wants the files again
                    unpack_into(Path(found.result["archives"][0]["path"]), artifacts_dir, reporter)
                quick.emit(output[1:])
                if artifacts_dir is None:  # unpacking is work a quick answer would not do
                    keep_answer(output, found, project=project, links=links)
                return
        from nativebuild.engine.builders import make_builders
        from nativebuild.engine.docker import DockerRunner
        from nativebuild.pipeline.project import build_project, plan_project
        from nativebuild.pipeline.run import dump_json

        runner = DockerRunner.from_env(env, reporter=reporter)
        builders = make_builders(settings.builders, env, reporter, default=runner)
        if dry_run:
            planned = plan_project(
                settings, runner=runner, env=env, reporter=reporter, verbose=verbose,
                builders=builders, shards=shards,
            )  # fmt: skip
            if json_output:
                typer.echo(dump_json(planned))
            else:
                print_plan(planned)
            return
        if to_publish is not None and settings.shard is not None:
            msg = f"--shard {settings.shard} writes no archive, so there is nothing to publish."
            raise ConfigError(msg, hint="Publish from the assembly (build --cache-only) instead.")
        if artifacts_dir is not None and settings.shard is not None:
            msg = f"--shard {settings.shard} writes no archive, so there is nothing to unpack."
            raise ConfigError(
                msg, hint="Give --artifacts-dir to the assembly (build --cache-only) instead."
            )
        result = build_project(
            settings, runner=runner, env=env, reporter=reporter, verbose=verbose,
            builders=builders,
        )  # fmt: skip
        if artifacts_dir is not None:
            (archive,) = result.archives
            unpack_into(archive.path, artifacts_dir, reporter)
        if json_output:
            typer.echo(dump_json(result))
        else:
            for archive in result.archives:
                typer.echo(str(archive.path))
        if to_publish is not None:
            publish_built(result.manifest, to_publish, reporter=reporter, console=console)
            return
    if artifacts_dir is None and quick.current is not None and not settings.shard:
        # The next identical invocation is up to date: keep its answer now (the reporter
        # closed), so that even the first unchanged build after this one is answered quickly.
        from nativebuild.pipeline.uptodate import up_to_date_result

        found = up_to_date_result(settings, env)
        if found is not None:
            output = up_to_date_output(
                found, settings, console, verbose=verbose, quiet=quiet, json_output=json_output
            )
            keep_answer(output, found, project=project, links=links)


def up_to_date_output(
    found: UpToDate,
    settings: Settings,
    console: Console,
    *,
    verbose: bool,
    quiet: bool,
    json_output: bool,
) -> Output:
    """What ``build`` prints when ``found`` says nothing changed: the step and the runtime's
    deprecation warnings on stderr (as ``console`` renders them), the result on stdout."""
    done = found.result
    reporter = ConsoleReporter(console, verbose=verbose, quiet=quiet)
    with console.capture() as captured:
        reporter.step(f"Up to date: nothing changed since the build that wrote {settings.output}")
        # Lambda's dates move on while the inputs stay: say it as a real build would.
        notices = deprecation_notices([settings.runtime])
        for notice in notices:
            reporter.warning(notice.message)
    done["deprecations"] = [notice.to_json() for notice in notices]
    if json_output:
        printed = json.dumps(done, indent=2, sort_keys=True) + "\n"
    else:
        printed = "".join(f"{archive['path']}\n" for archive in done["archives"])
    return [("stderr", captured.get()), ("stdout", printed)]


def keep_answer(
    output: Output, found: UpToDate, *, project: Path | None, links: Mapping[str, str]
) -> None:
    """Keep ``output`` as this invocation's quick answer (see nativebuild.cli.quick)."""
    config = (project or Path.cwd()).resolve() / "pyproject.toml"
    quick.keep(output, found=found, config=[config], links=links)


def unpack_into(archive: Path, artifacts_dir: Path, reporter: Reporter) -> None:
    """``--artifacts-dir``: the archive's files, unzipped, where SAM's makefile route wants them."""
    from nativebuild.archive.unpack import unpack_archive

    files = unpack_archive(archive, artifacts_dir)
    reporter.detail(f"unpacked {archive.name} into {artifacts_dir} ({files} files)")


def check_one_archive(settings: Settings) -> None:
    """``--artifacts-dir`` unpacks one archive: one architecture, a function or a layer."""
    from nativebuild.archive.layout import Kind

    if len(settings.archs) != 1 or settings.kind is Kind.SPLIT or settings.functions:
        msg = "--artifacts-dir unpacks one archive: build one --arch, and a function or a layer."
        hint = "A SAM makefile target builds one resource: give it its own nativebuild build."
        raise ConfigError(msg, hint=hint)


def print_plan(planned: PlanResult) -> None:
    # Wide enough for wheel file names when the output is not a terminal (a CI log, a file).
    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    for target_plan in planned.targets:
        table = Table(title=f"{target_plan.target.describe()} — {target_plan.plan.summary()}")
        for column in ("package", "version", "action", "file", "reason"):
            table.add_column(column)
        for item in target_plan.plan.items:
            table.add_row(
                item.pin.name, item.pin.version, item.action.value, item.pin.filename, item.reason
            )
        console.print(table)


def run_publish(
    manifest: Path,
    *,
    layer_name: str | None,
    functions: tuple[str, ...],
    s3: str | None,
    image: str | None = None,
    description: str | None = None,
    license_info: str | None = None,
    dry_run: bool = False,
    reporter: Reporter | None = None,
) -> PublishResult:
    """The publish step, shared by ``publish`` and ``build --publish``: images to their
    registry first (no AWS SDK needed for that), then Lambda and S3."""
    from nativebuild.aws.publish_plan import PublishOptions, PublishResult, S3Prefix, load_manifest

    archives = load_manifest(manifest)
    result = PublishResult(published=(), skipped=(), dry_run=dry_run)
    if image:
        from nativebuild.aws.registry import push_images

        result += push_images(
            archives, image, env=dict(os.environ), dry_run=dry_run, reporter=reporter
        )
        if not (layer_name or functions or s3):
            return result
    from nativebuild.aws.lambda_api import publish as do_publish

    options = PublishOptions(
        layer_name=layer_name,
        functions=functions,
        s3=S3Prefix.parse(s3) if s3 else None,
        description=description or "",
        license=license_info,
    )
    return result + do_publish(archives, options, dry_run=dry_run, reporter=reporter)


def print_publish_result(result: PublishResult, *, console: Console | None = None) -> None:
    console = console or Console(highlight=False, soft_wrap=True, emoji=False)
    verb = "would publish" if result.dry_run else "published"
    for item in result.published:
        where = f" → {item.arn}" if item.arn else ""
        what = f"{item.archive} → {item.target}"
        console.print(
            f"[green]{verb}[/green] {escape(what)}{escape(where)}: {escape(item.reason)}",
            emoji=False,
            highlight=False,
        )
    for item in result.skipped:
        where = f" ({item.arn})" if item.arn else ""
        what = f"{item.archive} → {item.target}"
        console.print(
            f"[dim]skipped[/dim] {escape(what)}{escape(where)}: {escape(item.reason)}",
            emoji=False,
            highlight=False,
        )


def publish_built(
    manifest: Path | None, options: Mapping[str, Any], *, reporter: Reporter, console: Console
) -> None:
    """``build --publish``: publish the manifest just written; the summary goes to stderr so
    that ``build --json`` keeps one object on stdout."""
    if manifest is None:
        msg = "The build wrote no manifest, so there is nothing to publish."
        raise ConfigError(msg, hint="Build archives first (not --dry-run).")
    result = run_publish(
        manifest, layer_name=options.get("layer_name"),
        functions=tuple(options.get("functions") or ()), s3=options.get("s3"),
        image=options.get("image"), reporter=reporter,
    )  # fmt: skip
    print_publish_result(result, console=console)
