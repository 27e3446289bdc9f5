"""``nativebuild publish``: the command function, registered by ``cli.py``.

``--function`` takes ``NAME`` (for every function archive of the manifest; ``{arch}`` and
``{runtime}`` in it are replaced, so ``orders-{arch}`` covers both architectures) or
``ARCH=NAME`` (repeat it, once per architecture). ``--layer-name`` takes the same placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from nativebuild.errors import ConfigError

if TYPE_CHECKING:
    from nativebuild.aws.lambda_api import PublishResult
    from nativebuild.reporting import Reporter

ManifestOpt = Annotated[
    Path,
    typer.Option("--manifest", help="The manifest `nativebuild build` wrote."),
]
LayerNameOpt = Annotated[
    str | None,
    typer.Option(
        "--layer-name",
        help="Publish the layer archives as versions of this layer; {arch} and {runtime} are "
        "replaced.",
    ),
]
FunctionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--function",
        help="Update this function's code: NAME ({arch}, {runtime} replaced) or ARCH=NAME; "
        "repeatable.",
    ),
]
S3Opt = Annotated[
    str | None,
    typer.Option(
        "--s3",
        help="Upload every archive to s3://bucket/prefix/<sha256>/<file> (once per content); "
        "archives over 50 MiB are published from there.",
    ),
]


PublishFlagOpt = Annotated[
    bool,
    typer.Option(
        "--publish",
        help="Then publish what was built, as `nativebuild publish` does with --layer-name, "
        "--function and --s3.",
    ),
]


def publish(
    manifest: ManifestOpt = Path("dist/manifest.json"),
    layer_name: LayerNameOpt = None,
    function: FunctionOpt = None,
    s3: S3Opt = None,
    description: Annotated[
        str | None, typer.Option(help="Layer version description. [default: name, target, hash]")
    ] = None,
    license_info: Annotated[
        str | None, typer.Option("--license", help="Layer version license (SPDX id or URL).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would be published or skipped; write nothing."),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")] = False,
) -> None:
    """Publish the built archives: layer versions, function code, S3 objects — only what changed."""
    # Imported here: cli.py imports this module to register the command.
    from nativebuild.cli import ConsoleReporter, handle_errors

    console = Console(stderr=True, soft_wrap=True)
    with handle_errors(console):
        reporter = ConsoleReporter(console, verbose=False, quiet=quiet)
        result = run_publish(
            manifest, layer_name=layer_name, functions=tuple(function or ()), s3=s3,
            description=description, license_info=license_info, dry_run=dry_run,
            reporter=reporter,
        )  # fmt: skip
        if json_output:
            typer.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        else:
            print_result(result)


def run_publish(
    manifest: Path,
    *,
    layer_name: str | None,
    functions: tuple[str, ...],
    s3: str | None,
    description: str | None = None,
    license_info: str | None = None,
    dry_run: bool = False,
    reporter: Reporter | None = None,
) -> PublishResult:
    """The publish step, shared by ``publish`` and ``build --publish``."""
    from nativebuild.aws.lambda_api import publish as do_publish
    from nativebuild.aws.publish_plan import PublishOptions, S3Prefix, load_manifest

    options = PublishOptions(
        layer_name=layer_name,
        functions=functions,
        s3=S3Prefix.parse(s3) if s3 else None,
        description=description or "",
        license=license_info,
    )
    return do_publish(load_manifest(manifest), options, dry_run=dry_run, reporter=reporter)


def print_result(result: PublishResult, *, console: Console | None = None) -> None:
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
        reporter=reporter,
    )  # fmt: skip
    print_result(result, console=console)
