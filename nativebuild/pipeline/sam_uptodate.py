"""``nativebuild sam build`` with nothing changed: answered from the record of the last build into
the same build directory, before the pipeline (or docker) is imported.

The record is :mod:`nativebuild.pipeline.uptodate`'s, keyed by the build directory: the settings,
the template and its parameter overrides, every requirements, lock and pip configuration file,
every code folder of a built resource (and local projects), the id of every image used, and
every file of the build directory as written. Any difference means a real build. Image
functions (loaded into the engine) and ``--verify``/``--no-cache`` builds are never answered so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nativebuild.config.settings import Settings
from nativebuild.index.pip_config import pip_config_files
from nativebuild.pipeline import uptodate
from nativebuild.pipeline.quick import tree_files


def request_fields(
    template: Path, overrides: Mapping[str, str], *, unzipped_layers: bool
) -> dict[str, Any]:
    return {
        "command": "sam build",
        "template": str(template.absolute()),
        "parameter_overrides": dict(sorted(overrides.items())),
        "unzipped_layers": unzipped_layers,
    }


def _keyed(settings: Settings, build_dir: Path) -> Settings:
    # The record is per build directory, as build's is per output directory.
    return dataclasses.replace(settings, output=build_dir.absolute())


def sam_up_to_date(
    settings: Settings, env: Mapping[str, str], *, build_dir: Path, request: Mapping[str, Any]
) -> uptodate.UpToDate | None:
    """The last build's ``--json`` answer when nothing it was made from changed, else None;
    every resource it built is now ``cached`` and no container started."""
    if settings.verify or settings.no_cache:
        return None  # each asks for work that outlives the build directory
    found = uptodate.check(
        _keyed(settings, build_dir), env, image_ids=uptodate.engine_image_ids(env),
        request=request,
    )  # fmt: skip
    if found is None:
        return None
    done = found.result
    done["resources"] = [
        {**r, "status": "cached"} if r.get("status") == "built" else r
        for r in done.get("resources", [])
    ]
    return found


def forget(settings: Settings, env: Mapping[str, str], *, build_dir: Path) -> None:
    """Before a build replaces ``build_dir``: no record survives a build that fails."""
    uptodate.forget(uptodate.state_path(_keyed(settings, build_dir), env))


def remember(
    settings: Settings,
    env: Mapping[str, str],
    *,
    build_dir: Path,
    request: Mapping[str, Any],
    files: Iterable[Path],
    trees: Iterable[Path],
    images: Mapping[str, str],
    result: Mapping[str, Any],
) -> None:
    """Keep what the build that just wrote ``build_dir`` was made from."""
    if "unconfirmed" in images.values():
        return  # an image could not be asked for its id: the next build must ask again
    config_files = pip_config_files(env, Path(env.get("HOME", str(Path.home()))))
    keyed = _keyed(settings, build_dir)
    try:
        record = uptodate.capture(
            keyed, env,
            input_files=[*dict.fromkeys(files), *(p for p in config_files if p.is_file())],
            input_trees=list(dict.fromkeys(trees)),
            absent_files=[p for p in config_files if not p.exists()],
            images=images,
            outputs=[Path(p) for p in tree_files(build_dir)],
            result=result,
            request=request,
        )  # fmt: skip
        uptodate.write(uptodate.state_path(keyed, env), record)
    except OSError:
        return  # an input went away meanwhile: no record, so the next build is a real one
