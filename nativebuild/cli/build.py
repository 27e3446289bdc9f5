"""``nativebuild build``: archives from requirements and source."""

from __future__ import annotations

from pathlib import Path
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
    CheckOpt,
    CompileOpt,
    ExcludeOpt,
    ExtraOpt,
    FunctionOpt,
    GlibcOpt,
    GroupOpt,
    HandlerOpt,
    ImageOpt,
    IncludeOpt,
    JobsOpt,
    JsonOpt,
    KindOpt,
    LayerLayoutOpt,
    LayerNameOpt,
    LoadOpt,
    NameOpt,
    NoCacheOpt,
    OutputOpt,
    ProjectOpt,
    PublishFlagOpt,
    QuietOpt,
    RepairOpt,
    RequirementsOpt,
    RuntimeImageOpt,
    RuntimeOpt,
    S3Opt,
    ShardOpt,
    SlimOpt,
    SrcOpt,
    VerboseOpt,
    VerifyFlagOpt,
    WithLayerOpt,
)


def build(
    requirements: RequirementsOpt = None,
    runtime: RuntimeOpt = None,
    arch: ArchOpt = None,
    src: SrcOpt = None,
    output: OutputOpt = None,
    name: NameOpt = None,
    cache_dir: CacheDirOpt = None,
    build_image: BuildImageOpt = None,
    runtime_image: RuntimeImageOpt = None,
    glibc: GlibcOpt = None,
    extra: ExtraOpt = None,
    group: GroupOpt = None,
    project: ProjectOpt = None,
    jobs: JobsOpt = None,
    builder: BuilderOpt = None,
    cache: CacheOpt = None,
    cache_only: CacheOnlyOpt = None,
    no_cache: NoCacheOpt = None,
    cache_readonly: CacheReadonlyOpt = None,
    shard: ShardOpt = None,
    kind: KindOpt = None,
    layer_layout: LayerLayoutOpt = None,
    compile_: CompileOpt = None,
    slim: SlimOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    with_layer: WithLayerOpt = None,
    handler: HandlerOpt = None,
    load: LoadOpt = None,
    check: CheckOpt = None,
    repair: RepairOpt = None,
    verify_: VerifyFlagOpt = None,
    build_package: BuildPackageOpt = None,
    before_build: BeforeBuildOpt = None,
    publish_: PublishFlagOpt = False,
    layer_name: LayerNameOpt = None,
    function: FunctionOpt = None,
    s3: S3Opt = None,
    image: ImageOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the plan (as `nativebuild plan`); build nothing."),
    ] = False,
    artifacts_dir: Annotated[
        Path | None,
        typer.Option(
            "--artifacts-dir",
            help="Also unpack the archive into this folder: a SAM makefile target's "
            "$(ARTIFACTS_DIR). One archive only (one --arch; function or layer).",
        ),
    ] = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build a Lambda function archive (.zip), layer, or container image from requirements and
    source."""
    cli = {
        "requirements": requirements, "runtime": runtime, "arch": arch, "src": src,
        "output": output, "name": name, "cache-dir": cache_dir, "build-image": build_image,
        "runtime-image": runtime_image, "glibc": glibc, "extras": extra, "groups": group,
        "jobs": jobs, "builders": builder, "cache": cache, "cache-only": cache_only,
        "no-cache": no_cache, "cache-readonly": cache_readonly, "shard": shard,
        "kind": kind, "layer-layout": layer_layout, "compile": compile_, "slim": slim,
        "include": include, "exclude": exclude,
        "with-layers": [str(p) for p in with_layer] if with_layer else None,
        "check": check, "repair": repair, "verify": verify_, "build-packages": build_package,
        "before-build": before_build, "handler": handler, "load": load,
    }  # fmt: skip
    to_publish = (
        {"layer_name": layer_name, "functions": function, "s3": s3, "image": image}
        if publish_
        else None
    )
    run_build(
        cli, project, dry_run=dry_run, json_output=json_output, verbose=verbose, quiet=quiet,
        to_publish=to_publish, artifacts_dir=artifacts_dir,
    )  # fmt: skip
