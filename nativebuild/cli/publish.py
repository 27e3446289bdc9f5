"""``nativebuild publish``: the command function, registered by ``nativebuild.cli``.

``--function`` takes ``NAME`` (for every function archive of the manifest; ``{arch}`` and
``{runtime}`` in it are replaced, so ``orders-{arch}`` covers both architectures) or
``ARCH=NAME`` (repeat it, once per architecture). ``--layer-name`` takes the same placeholders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from nativebuild.cli.common import ConsoleReporter, handle_errors, print_publish_result, run_publish
from nativebuild.cli.options import FunctionOpt, ImageOpt, LayerNameOpt, S3Opt

ManifestOpt = Annotated[
    Path,
    typer.Option("--manifest", help="The manifest `nativebuild build` wrote."),
]


def publish(
    manifest: ManifestOpt = Path("dist/manifest.json"),
    layer_name: LayerNameOpt = None,
    function: FunctionOpt = None,
    s3: S3Opt = None,
    image: ImageOpt = None,
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
    """Publish the built archives: layer versions, function code, S3 objects, images — only
    what changed."""
    console = Console(stderr=True, soft_wrap=True)
    with handle_errors(console):
        reporter = ConsoleReporter(console, verbose=False, quiet=quiet)
        result = run_publish(
            manifest, layer_name=layer_name, functions=tuple(function or ()), s3=s3, image=image,
            description=description, license_info=license_info, dry_run=dry_run,
            reporter=reporter,
        )  # fmt: skip
        if json_output:
            typer.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        else:
            print_publish_result(result)
