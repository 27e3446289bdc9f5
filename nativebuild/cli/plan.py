"""``nativebuild plan``: what a build would do for each package; it builds nothing."""

from __future__ import annotations

from typing import Annotated

import typer

from nativebuild.cli.common import run_build
from nativebuild.cli.options import (
    ArchOpt,
    BeforeBuildOpt,
    BuilderOpt,
    BuildImageOpt,
    BuildPackageOpt,
    CacheDirOpt,
    CacheOnlyOpt,
    CacheOpt,
    CacheReadonlyOpt,
    ExtraOpt,
    GlibcOpt,
    GroupOpt,
    JsonOpt,
    NoCacheOpt,
    ProjectOpt,
    QuietOpt,
    RepairOpt,
    RequirementsOpt,
    RuntimeImageOpt,
    RuntimeOpt,
    VerboseOpt,
)


def plan(
    requirements: RequirementsOpt = None,
    runtime: RuntimeOpt = None,
    arch: ArchOpt = None,
    cache_dir: CacheDirOpt = None,
    build_image: BuildImageOpt = None,
    runtime_image: RuntimeImageOpt = None,
    glibc: GlibcOpt = None,
    extra: ExtraOpt = None,
    group: GroupOpt = None,
    project: ProjectOpt = None,
    cache: CacheOpt = None,
    cache_only: CacheOnlyOpt = None,
    no_cache: NoCacheOpt = None,
    cache_readonly: CacheReadonlyOpt = None,
    builder: BuilderOpt = None,
    repair: RepairOpt = None,
    build_package: BuildPackageOpt = None,
    before_build: BeforeBuildOpt = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            metavar="N",
            help="With --json: each compile job's shard of N (its key, and the matrix of "
            "architectures and shards with work), for a CI fan-out with build --shard K/N.",
        ),
    ] = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Show what a build would do for each package: cached, download a wheel, or compile."""
    cli = {
        "requirements": requirements, "runtime": runtime, "arch": arch, "cache-dir": cache_dir,
        "build-image": build_image, "runtime-image": runtime_image, "glibc": glibc,
        "extras": extra, "groups": group, "cache": cache, "cache-only": cache_only,
        "no-cache": no_cache, "cache-readonly": cache_readonly, "builders": builder,
        "repair": repair, "build-packages": build_package, "before-build": before_build,
    }  # fmt: skip
    run_build(
        cli, project, dry_run=True, json_output=json_output, verbose=verbose, quiet=quiet,
        shards=shards,
    )  # fmt: skip
