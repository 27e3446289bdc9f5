"""``nativebuild verify ARCHIVE``: the command function, registered by ``nativebuild.cli``.

The target comes from the flags, else from the archive's name (``NAME-python3.12-arm64.zip``,
as ``build`` writes it), else from the configuration cascade.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nativebuild.cli.common import handle_errors
from nativebuild.cli.console import open_reporter, stderr_console
from nativebuild.config.settings import load_tool_table, resolve
from nativebuild.errors import AbiError, ConfigError

if TYPE_CHECKING:
    from nativebuild.abi.verify import VerifyReport
    from nativebuild.targets import Target

_ARCHIVE_NAME = re.compile(r"-(python3\.[0-9]+)-(x86_64|arm64)\.zip$")


def target_from_name(name: str) -> tuple[str | None, str | None]:
    """(runtime, arch) from an archive name as ``build`` writes it, else (None, None)."""
    match = _ARCHIVE_NAME.search(name)
    return (match.group(1), match.group(2)) if match else (None, None)


def _settings(
    archive: Path, cli: dict[str, Any], project: Path | None, env: dict[str, str]
) -> tuple[Target, Path | None]:
    """The one target to verify for, and the cache directory, after the cascade."""
    runtime, arch = target_from_name(archive.name)
    cli = {**cli, "runtime": cli["runtime"] or runtime, "arch": cli["arch"] or arch}
    cwd = Path.cwd()
    project_dir = (project or cwd).resolve()
    settings = resolve(
        cli={**cli, "arch": [cli["arch"]] if cli["arch"] else None},
        file_table=load_tool_table(project_dir / "pyproject.toml"),
        env=env,
        project_dir=project_dir,
        cwd=cwd,
    )
    targets = settings.targets()
    if len(targets) != 1:
        msg = f"Which architecture is {archive.name} for? The configuration names several."
        raise ConfigError(msg, hint="Pass --arch x86_64 or --arch arm64.")
    return targets[0], settings.cache_dir


def _event(path: Path | None) -> Any:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        msg = f"Cannot read the event {path}: {err}."
        raise ConfigError(msg, hint="Pass a file holding one JSON document.") from err


def verify(
    archive: Annotated[Path, typer.Argument(help="The function archive (.zip) to verify.")],
    layer: Annotated[
        list[Path] | None,
        typer.Option("--layer", help="A layer archive, extracted at /opt; repeat, in order."),
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="Lambda runtime. [default: from the archive name]")
    ] = None,
    arch: Annotated[
        str | None, typer.Option(help="x86_64 or arm64. [default: from the archive name]")
    ] = None,
    runtime_image: Annotated[
        str | None, typer.Option(help="Runtime image; {arch} and {runtime} are filled in.")
    ] = None,
    handler: Annotated[
        str | None, typer.Option(help="Also call this handler (module.function), as Lambda does.")
    ] = None,
    event: Annotated[
        Path | None, typer.Option(help="JSON file with the event for --handler. [default: {}]")
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache directory.")] = None,
    project: Annotated[
        Path | None, typer.Option(help="Directory holding pyproject.toml. [default: .]")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Stream container output live.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")] = False,
) -> None:
    """Import every module of an archive inside its runtime image, and check its binaries."""
    # Imported when the command runs: docker and the ABI check are not needed for --help.
    from nativebuild.abi.verify import verify_archive
    from nativebuild.cache.local import LocalCache, default_cache_dir
    from nativebuild.engine.docker import DockerRunner

    console = stderr_console()
    env = dict(os.environ)
    reporting = open_reporter(
        console, verbose=verbose, quiet=quiet, json_output=json_output, env=env
    )
    with handle_errors(console), reporting as reporter:
        if handler is not None and "." not in handler:
            msg = f"Invalid handler {handler!r}: expected module.function, e.g. app.handler."
            raise ConfigError(msg)
        if not archive.is_file():
            msg = f"Archive {archive} does not exist."
            raise ConfigError(msg, hint="Pass the .zip that `nativebuild build` wrote.")
        cli = {"runtime": runtime, "arch": arch, "runtime-image": runtime_image,
               "cache-dir": str(cache_dir) if cache_dir else None}  # fmt: skip
        target, configured_cache = _settings(archive, cli, project, env)
        cache_root = configured_cache or default_cache_dir(env)
        report = verify_archive(
            archive, target, layers=tuple(layer or ()), handler=handler, event=_event(event),
            runner=DockerRunner.from_env(env, reporter=reporter),
            cache=LocalCache(cache_root, reporter=reporter), reporter=reporter, verbose=verbose,
        )  # fmt: skip
        if json_output:
            typer.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
        else:
            print_report(report)
        if not report.ok:
            raise AbiError(_summary(report), hint=_hint(report))


def _summary(report: VerifyReport) -> str:
    parts = []
    if failed := report.failed_modules:
        names = ", ".join(m.name for m in failed)
        parts.append(f"{len(failed)} of {len(report.modules)} modules failed to import ({names})")
    if report.handler is not None and not report.handler.ok:
        parts.append(f"the handler {report.handler.handler} failed: {report.handler.error}")
    if errors := report.errors:
        parts.append(f"{len(errors)} binary check(s) failed")
    return f"{report.archive.name} does not work in {report.image}: " + "; ".join(parts) + "."


def _hint(report: VerifyReport) -> str:
    if report.errors:
        return "Each failed check above says what to do."
    return "The errors above come from the runtime image itself: fix the archive and verify again."


def print_report(report: VerifyReport) -> None:
    console = Console(highlight=False)
    table = Table(title=f"{report.archive.name} in {report.image} ({report.machine})")
    for column in ("module", "package", "result", "seconds"):
        table.add_column(column)
    for module in report.modules:
        result = "[green]ok[/green]" if module.ok else f"[red]{escape(module.error or '')}[/red]"
        table.add_row(module.name, module.package or "(source)", result, f"{module.seconds:.2f}")
    console.print(table)
    if report.handler is not None:
        called = report.handler
        outcome = f"returned {called.result}" if called.ok else f"failed: {called.error}"
        console.print(f"handler {escape(called.handler)} {escape(outcome)}", highlight=False)
    for finding in report.findings:
        style = "red" if finding.severity == "error" else "yellow"
        console.print(
            f"[{style}]{finding.severity}:[/{style}] {escape(finding.describe())}", highlight=False
        )
    console.print(f"runtime: {escape(report.runtime)}", highlight=False)
