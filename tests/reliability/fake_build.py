"""Run ``nativebuild`` in this process with the fakes of tests/fakes.py at the system seams.

Usage: ``python fake_build.py INDEX_PICKLE nativebuild-args...``. The reliability tests start
this as a real subprocess so they can SIGKILL it; a build takes well under a second. With
NB_PHASES=1 each phase (download, compile, cache write, archive write) is announced on stderr
as ``PHASE <name>`` just before it starts, so a test can aim its kill.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nativebuild import cli
from nativebuild.cache import local as cache
from nativebuild.index import downloads as fetch
from nativebuild.pipeline import assemble
from tests.fakes import FakeRunner, FakeUv


def announce(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sys.stderr.write(f"PHASE {name}\n")
        sys.stderr.flush()
        return func(*args, **kwargs)

    return wrapper


def main() -> None:
    index = pickle.loads(Path(sys.argv[1]).read_bytes())  # noqa: S301 - the test's own file
    runner = FakeRunner(index)
    uv = FakeUv(index)
    from nativebuild.engine import docker as container
    from nativebuild.pipeline import context

    container.DockerRunner.from_env = lambda env, **_: runner  # type: ignore[method-assign,assignment]
    context.HostUv = lambda: uv  # type: ignore[attr-defined,assignment,misc]
    if os.environ.get("NB_PHASES"):
        fetch.download_to = announce("download", fetch.download_to)
        FakeRunner._compile = announce("compile", FakeRunner._compile)  # type: ignore[method-assign]
        cache.LocalCache.put_file = announce("cache-write", cache.LocalCache.put_file)  # type: ignore[method-assign]
        cache.LocalCache.put_built = announce("cache-write", cache.LocalCache.put_built)  # type: ignore[method-assign]
        assemble.write_zip = announce("archive-write", assemble.write_zip)  # type: ignore[attr-defined]
    sys.argv = ["nativebuild", *sys.argv[2:]]
    cli.main()


if __name__ == "__main__":
    main()
