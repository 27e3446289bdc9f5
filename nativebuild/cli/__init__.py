"""The command line: ``main`` (the console script and ``python -m nativebuild``) and the typer
app (:mod:`nativebuild.cli.typer_app`, loaded when first asked for as ``nativebuild.cli.app``).

``main`` first tries the quick answer of :mod:`nativebuild.cli.quick`: an unchanged ``build`` or
``sam build`` is answered from the standard library alone, before typer, rich or the settings
are imported. Anything else goes to the typer app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    app: typer.Typer


def main() -> None:
    """Console-script entry point."""
    from nativebuild.cli import quick

    invocation = quick.this_invocation()
    if quick.answer(invocation):
        return
    quick.current = invocation
    from nativebuild.cli.typer_app import app

    app()


def __getattr__(name: str) -> Any:
    if name == "app":  # the typer app, imported when asked for
        from nativebuild.cli.typer_app import app

        globals()["app"] = app
        return app
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
