"""The console entry freezes the objects of a command out of the garbage collector once its
modules are loaded and when it ends, so the collections during the run and the interpreter's
own at exit do not walk them (some 100 ms of a small build)."""

from __future__ import annotations

import gc
import sys

import pytest

from nativebuild import cli
from nativebuild.cli import quick


def test_main_leaves_the_heap_frozen_for_the_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["nativebuild", "--help"])
    monkeypatch.setattr(quick, "current", quick.current)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main()
        assert exited.value.code == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
