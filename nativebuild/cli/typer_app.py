"""The typer app and its commands (one module each).

Commands print and exit; nothing else in nativebuild does. Every flag defaults to None so that
pyproject.toml and NATIVEBUILD_* variables can supply the value (flags win when given). Shared
options live in :mod:`nativebuild.cli.options`, shared behaviour in :mod:`nativebuild.cli.common`.
Loaded by :func:`nativebuild.cli.main` only when the quick answer (:mod:`nativebuild.cli.quick`)
has none.
"""

from __future__ import annotations

from typing import Annotated

import typer

from nativebuild import __version__
from nativebuild.cli.build import build
from nativebuild.cli.cache import cache_app
from nativebuild.cli.doctor import doctor
from nativebuild.cli.images import images_app
from nativebuild.cli.plan import plan
from nativebuild.cli.publish import publish
from nativebuild.cli.sam import sam_app
from nativebuild.cli.verify import verify

app = typer.Typer(
    name="nativebuild",
    help="Build AWS Lambda Python archives: native dependencies compiled once, in Lambda-like "
    "containers, cached, and packed into byte-reproducible zips.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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


app.command()(build)
app.command()(plan)
app.add_typer(images_app, name="images")
app.add_typer(cache_app, name="cache")
app.command()(doctor)
app.command()(verify)
app.command()(publish)
app.add_typer(sam_app, name="sam")
