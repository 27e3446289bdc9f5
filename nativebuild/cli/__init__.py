"""The command line: ``main`` (the console script and ``python -m nativebuild``) and the typer
app (:mod:`nativebuild.cli.typer_app`, loaded when first asked for as ``nativebuild.cli.app``).

``main`` first tries the quick answer of :mod:`nativebuild.cli.quick`: an unchanged ``build`` or
``sam build`` is answered from the standard library alone, before typer, rich or the settings
are imported. Anything else goes to the typer app.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    app: typer.Typer


def main() -> None:
    """Console-script entry point.

    The command's objects are frozen out of the garbage collector (``gc.freeze``) once its
    modules are loaded and again when it ends: a build allocates many objects that live until
    the process exits, and each full collection (during the run, and the ones the interpreter
    runs while it tears down its modules) would walk every one of them, some 100 ms in all
    for a small build. Nothing else changes at exit: modules are still torn down, atexit
    handlers run, and nativebuild closes every file it writes before it renames it into
    place; only cycles of frozen objects that became unreachable stay until the process ends.
    """
    from nativebuild.cli import quick

    invocation = quick.this_invocation()
    if quick.answer(invocation):
        return
    quick.current = invocation
    from nativebuild.cli.typer_app import app

    gc.freeze()
    try:
        app()
    finally:
        gc.freeze()


def __getattr__(name: str) -> Any:
    if name == "app":  # the typer app, imported when asked for
        from nativebuild.cli.typer_app import app

        globals()["app"] = app
        return app
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
