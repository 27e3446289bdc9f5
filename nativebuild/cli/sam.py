"""``nativebuild sam build``: a drop-in for ``sam build --use-container``.

Reads the SAM template, builds every Python function and layer in one run, and leaves a
``.aws-sam/build`` that ``sam package``, ``sam deploy`` and ``sam local invoke`` take as they
take SAM's own (see nativebuild.pipeline.sam).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nativebuild.cli import quick
from nativebuild.cli.common import handle_errors, settings_from_flags
from nativebuild.cli.console import ConsoleReporter, open_reporter, stderr_console
from nativebuild.cli.options import (
    BeforeBuildOpt,
    BuilderOpt,
    BuildImageOpt,
    BuildPackageOpt,
    CacheDirOpt,
    CacheOnlyOpt,
    CacheOpt,
    CacheReadonlyOpt,
    CheckOpt,
    CompileOpt,
    ExcludeOpt,
    GlibcOpt,
    IncludeOpt,
    JobsOpt,
    JsonOpt,
    LayerLayoutOpt,
    NoCacheOpt,
    QuietOpt,
    RepairOpt,
    RuntimeImageOpt,
    ShardOpt,
    SlimOpt,
    VerboseOpt,
    VerifyFlagOpt,
)
from nativebuild.config.values import recording_paths
from nativebuild.targets import deprecation_notices

if TYPE_CHECKING:
    from nativebuild.config.settings import Settings
    from nativebuild.pipeline.quick import Output
    from nativebuild.pipeline.uptodate import UpToDate
    from nativebuild.reporting import Reporter

sam_app = typer.Typer(
    help="SAM templates: build every Python function and layer of template.yaml, for sam "
    "package / deploy / local invoke.",
    no_args_is_help=True,
)

DEFAULT_BUILD_DIR = Path(".aws-sam") / "build"  # as sam build: in the current directory

TemplateOpt = Annotated[
    Path | None,
    typer.Option(
        "-t", "--template", "--template-file",
        help="The SAM template (default: template.yaml or template.yml here).",
    ),
]  # fmt: skip
BuildDirOpt = Annotated[
    Path | None,
    typer.Option(
        "-b",
        "--build-dir",
        help="Where the built template and archives go (default: .aws-sam/build).",
    ),
]
ParameterOverridesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--parameter-overrides",
        help="Template parameters: Key=Value (several per flag, space-separated, or repeat the "
        "flag); also ParameterKey=K,ParameterValue=V.",
    ),
]
SamProjectOpt = Annotated[
    Path | None,
    typer.Option(
        help="Directory of the pyproject.toml with nativebuild's settings (default: the template's)."
    ),
]


UnzippedLayersOpt = Annotated[
    bool,
    typer.Option(
        "--unzipped-layers",
        help="Point layers at their unpacked folders, for sam local invoke (which does not "
        "unzip a layer archive); sam package then zips those folders itself.",
    ),
]


@sam_app.command("build")
def sam_build(
    template: TemplateOpt = None,
    build_dir: BuildDirOpt = None,
    parameter_overrides: ParameterOverridesOpt = None,
    build_image: BuildImageOpt = None,
    runtime_image: RuntimeImageOpt = None,
    glibc: GlibcOpt = None,
    cache_dir: CacheDirOpt = None,
    cache: CacheOpt = None,
    cache_only: CacheOnlyOpt = None,
    no_cache: NoCacheOpt = None,
    cache_readonly: CacheReadonlyOpt = None,
    jobs: JobsOpt = None,
    builder: BuilderOpt = None,
    shard: ShardOpt = None,
    layer_layout: LayerLayoutOpt = None,
    compile_: CompileOpt = None,
    slim: SlimOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    check: CheckOpt = None,
    repair: RepairOpt = None,
    verify_: VerifyFlagOpt = None,
    build_package: BuildPackageOpt = None,
    before_build: BeforeBuildOpt = None,
    project: SamProjectOpt = None,
    unzipped_layers: UnzippedLayersOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build the Python functions and layers of a SAM template into .aws-sam/build."""
    console = stderr_console()
    env = dict(os.environ)
    reporting = open_reporter(
        console, verbose=verbose, quiet=quiet, json_output=json_output, env=env
    )
    # The reporter closes (the live display erased) before an error or the summary is printed.
    done: dict[str, Any] = {}  # a real build's answer
    found: UpToDate | None = None  # the last build's answer, when nothing changed
    with handle_errors(console):
        with reporting as reporter, recording_paths() as links:
            from nativebuild.sam.request import (
                TEMPLATE_NAMES,
                find_template,
                parse_parameter_overrides,
            )

            template_path = (template or find_template(Path.cwd())).absolute()
            cli = {
                "cache-dir": cache_dir, "build-image": build_image, "runtime-image": runtime_image,
                "glibc": glibc, "jobs": jobs, "builders": builder, "cache": cache,
                "cache-only": cache_only, "no-cache": no_cache, "cache-readonly": cache_readonly,
                "shard": shard, "layer-layout": layer_layout, "compile": compile_, "slim": slim,
                "include": include, "exclude": exclude, "check": check, "repair": repair,
                "verify": verify_, "build-packages": build_package, "before-build": before_build,
            }  # fmt: skip
            settings = settings_from_flags(cli, project or template_path.parent, env)
            overrides = parse_parameter_overrides(parameter_overrides or [])
            target_dir = (build_dir or DEFAULT_BUILD_DIR).absolute()
            # The warm no-op: before the pipeline (or docker) is even imported.
            from nativebuild.pipeline.sam_uptodate import request_fields, sam_up_to_date

            fields = request_fields(template_path, overrides, unzipped_layers=unzipped_layers)
            if settings.shard is None:  # a shard writes no build directory: nothing is up to date
                found = sam_up_to_date(settings, env, build_dir=target_dir, request=fields)
            if found is None:
                done = _build(
                    settings, template_path, target_dir, overrides, env=env, reporter=reporter,
                    verbose=verbose, unzipped_layers=unzipped_layers,
                )  # fmt: skip
        if "shard" in done:  # no build directory: nothing on stdout
            if json_output:
                typer.echo(json.dumps(done, indent=2, sort_keys=True))
            elif not quiet:
                print_shard_summary(done, console)
            return
        looked_for = [] if template else [Path.cwd() / name for name in TEMPLATE_NAMES]
        config = [(project or template_path.parent).resolve() / "pyproject.toml", *looked_for]
        shown = {"verbose": verbose, "quiet": quiet, "json_output": json_output}
        if found is not None:
            output = up_to_date_output(found, target_dir, console, **shown)
            quick.emit(output)
            quick.keep(output, found=found, config=config, links=links)
            return
        if json_output:
            typer.echo(json.dumps(done, indent=2, sort_keys=True))
        else:
            if not quiet:
                print_summary(done, target_dir, console)
            typer.echo(str(target_dir / "template.yaml"))
        if quick.current is not None:
            # The next identical invocation is up to date: keep its answer now, so that even
            # the first unchanged build after this one is answered quickly.
            found = sam_up_to_date(settings, env, build_dir=target_dir, request=fields)
            if found is not None:
                output = up_to_date_output(found, target_dir, console, **shown)
                quick.keep(output, found=found, config=config, links=links)


def _build(
    settings: Settings,
    template_path: Path,
    target_dir: Path,
    overrides: Mapping[str, str],
    *,
    env: dict[str, str],
    reporter: Reporter,
    verbose: bool,
    unzipped_layers: bool,
) -> dict[str, Any]:
    """The whole template into ``target_dir``, or with ``--shard`` that shard's compiles, into
    the cache only."""
    from nativebuild.engine.builders import make_builders
    from nativebuild.engine.docker import DockerRunner
    from nativebuild.pipeline.sam_sets import SamRequest

    request = SamRequest(
        template=template_path, build_dir=target_dir, parameter_overrides=overrides,
        unzipped_layers=unzipped_layers,
    )  # fmt: skip
    runner = DockerRunner.from_env(env, reporter=reporter)
    builders = make_builders(settings.builders, env, reporter)
    if settings.shard is not None:
        from nativebuild.pipeline.sam_shard import build_template_shard

        return build_template_shard(
            request, settings, runner=runner, env=env, reporter=reporter, verbose=verbose,
            builders=builders,
        ).to_json()  # fmt: skip
    from nativebuild.pipeline.sam import build_template

    return build_template(
        request, settings, runner=runner, env=env, reporter=reporter, verbose=verbose,
        builders=builders,
    ).to_json()  # fmt: skip


def print_shard_summary(done: Mapping[str, Any], console: Console) -> None:
    """A shard's part: its wheels (compiled here, or found in the cache) and what it left."""
    by_source: dict[str, list[str]] = {}
    for wheel in done["wheels"]:
        by_source.setdefault(wheel["source"], []).append(f"{wheel['name']} ({wheel['arch']})")
    parts = [f"{source}: {', '.join(names)}" for source, names in sorted(by_source.items())]
    left = len(done["left_to_other_shards"])
    console.print(
        escape(
            f"shard {done['shard']}: {'; '.join(parts) or 'no sdist of its own'}; {left} left to "
            f"the other shards ({done['containers_started']} containers started)"
        ),
        highlight=False,
    )


def up_to_date_output(
    found: UpToDate,
    build_dir: Path,
    console: Console,
    *,
    verbose: bool,
    quiet: bool,
    json_output: bool,
) -> Output:
    """What ``sam build`` prints when ``found`` says nothing changed: the step, the deprecation
    warnings of the built resources' runtimes and the summary on stderr (as ``console`` renders
    them), the result on stdout."""
    done = found.result
    reporter = ConsoleReporter(console, verbose=verbose, quiet=quiet)
    with console.capture() as captured:
        reporter.step(f"Up to date: nothing changed since the build that wrote {build_dir}")
        # Built resources' runtimes (those left to SAM may be any language's).
        built = [r for r in done["resources"] if r.get("status") != "skipped"]
        notices = deprecation_notices(
            r["runtime"] for r in built if str(r.get("runtime")).startswith("python")
        )
        for notice in notices:
            reporter.warning(notice.message)
        done["deprecations"] = [notice.to_json() for notice in notices]
        if not json_output and not quiet:
            print_summary(done, build_dir, console)
    if json_output:
        printed = json.dumps(done, indent=2, sort_keys=True) + "\n"
    else:
        printed = f"{build_dir / 'template.yaml'}\n"
    return [("stderr", captured.get()), ("stdout", printed)]


def print_summary(done: Mapping[str, Any], build_dir: Path, console: Console) -> None:
    """One row per resource: what was built, what was left to SAM or skipped, and why."""
    table = Table(title=f"{build_dir} ({done['containers_started']} containers started)")
    for column in ("resource", "runtime", "arch", "status", "why"):
        table.add_column(column)
    for outcome in done["resources"]:
        reason = str(outcome["reason"])
        status = {"built": "[green]built[/]", "cached": "[cyan]cached[/]"}.get(
            outcome["status"],
            "[yellow]left to SAM[/]" if "left to SAM" in reason else "[dim]skipped[/]",
        )
        table.add_row(
            escape(outcome["logical_id"]), outcome["runtime"] or "", outcome["arch"] or "",
            status, escape(reason),
        )  # fmt: skip
    console.print(table)
