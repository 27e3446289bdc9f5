"""Options that more than one command takes, in one place that imports no command.

Every default is None (or False for plain switches): the settings cascade supplies the value, so
``[tool.nativebuild]`` and ``NATIVEBUILD_*`` can win over a flag that was not given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Options shared by build and plan. Every default is None: the cascade supplies the value.
RequirementsOpt = Annotated[
    Path | None,
    typer.Option(
        "-r",
        "--requirements",
        help="requirements.txt, pyproject.toml, pylock.toml, uv.lock or poetry.lock. "
        "[default: requirements.txt]",
    ),
]
RuntimeOpt = Annotated[
    str | None, typer.Option(help="Lambda runtime, python3.9 … python3.14. [default: python3.12]")
]
ArchOpt = Annotated[
    list[str] | None, typer.Option(help="x86_64 or arm64; repeat for both. [default: x86_64]")
]
SrcOpt = Annotated[Path | None, typer.Option(help="The function's own source directory.")]
OutputOpt = Annotated[
    Path | None, typer.Option("-o", "--output", help="Output directory. [default: dist]")
]
NameOpt = Annotated[str | None, typer.Option(help="Archive base name. [default: function]")]
CacheDirOpt = Annotated[Path | None, typer.Option(help="Wheel cache directory.")]
BuildImageOpt = Annotated[
    str | None,
    typer.Option(
        help="Build image; {arch} is replaced by x86_64 or arm64, {runtime} by the runtime "
        "(python3.12)."
    ),
]
RuntimeImageOpt = Annotated[
    str | None,
    typer.Option(
        help="Runtime image; {arch} is replaced by x86_64 or arm64, {runtime} by the runtime "
        "(python3.12)."
    ),
]
GlibcOpt = Annotated[str | None, typer.Option(help="glibc ceiling of a custom image, e.g. 2.31.")]
ExtraOpt = Annotated[
    list[str] | None, typer.Option("--extra", help="Optional dependencies to include; repeatable.")
]
GroupOpt = Annotated[
    list[str] | None, typer.Option("--group", help="Dependency group to include; repeatable.")
]
ProjectOpt = Annotated[
    Path | None,
    typer.Option(help="Directory holding pyproject.toml with [tool.nativebuild]. [default: .]"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("-v", "--verbose", help="Stream container output live.")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")]
BuilderOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--builder",
        help="ARCH=ENGINE: compile that architecture on its own engine (ssh://, tcp://, unix://, "
        "a docker context name, or default: DOCKER_HOST's); repeatable, also for one "
        "architecture: its compile jobs are then spread over the pool.",
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Compile only shard K of N of the sdists (by cache key) into the cache, and write "
        "no archive or build directory; a later run with --cache-only assembles.",
    ),
]
JobsOpt = Annotated[
    int | None, typer.Option("-j", "--jobs", help="Targets built at once. [default: CPU count]")
]
CacheOpt = Annotated[
    str | None,
    typer.Option("--cache", help="A shared remote cache behind the local one: s3://bucket/prefix."),
]
CacheOnlyOpt = Annotated[
    bool | None,
    typer.Option("--cache-only", help="Fail, naming the packages, if anything would be compiled."),
]
NoCacheOpt = Annotated[
    bool | None,
    typer.Option("--no-cache", help="Read no cache, local or remote (a throwaway one is used)."),
]
CacheReadonlyOpt = Annotated[
    bool | None,
    typer.Option("--cache-readonly", help="Pull from the remote cache, never push to it."),
]

# Archives and layers (nativebuild.archive.layout, .slim, .bytecode, .budget).
KindOpt = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help="function (dependencies + --src), layer, split (a dependencies layer plus a "
        "code-only function), or image (a container image on --runtime-image). "
        "[default: function]",
    ),
]
LayerLayoutOpt = Annotated[
    str | None,
    typer.Option(
        "--layer-layout",
        help="Layer directory: python (python/) or site-packages "
        "(python/lib/python3.X/site-packages/). [default: python]",
    ),
]
CompileOpt = Annotated[
    bool | None,
    typer.Option(
        "--compile/--no-compile",
        help="Ship .pyc files (PEP 552 checked-hash), compiled by the target's Python.",
    ),
]
SlimOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--slim",
        help="Opt-in slimming: tests, docs, examples, runtime-provided, strip, or all; "
        "repeatable or comma-separated.",
    ),
]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option("--include", help="Glob kept whatever --slim/--exclude say; repeatable."),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="Glob left out of the archives (never .dist-info); repeatable."),
]
WithLayerOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--with-layer",
        help="A layer .zip built elsewhere that the function uses: counted in the size budget; "
        "repeatable.",
    ),
]
HandlerOpt = Annotated[
    str | None,
    typer.Option("--handler", help="An image's CMD, the Lambda handler: module.function."),
]
LoadOpt = Annotated[
    bool | None,
    typer.Option(
        "--load/--no-load",
        help="Load a built image into the engine as NAME:RUNTIME-ARCH (only the layers it lacks "
        "are sent).",
    ),
]
RemoteOpt = Annotated[
    str | None, typer.Option("--cache", help="The shared remote cache, s3://bucket/prefix.")
]

# Flags of `build` (and `plan`) about the ABI: checks, repair, system build dependencies.
CheckOpt = Annotated[
    bool | None,
    typer.Option(
        "--check/--no-check",
        help="Check every binary against the runtime before writing the archives. [default: on]",
    ),
]
RepairOpt = Annotated[
    bool | None,
    typer.Option(
        "--repair/--no-repair",
        help="Vendor the shared libraries the runtime lacks into the wheels compiled here. "
        "[default: on]",
    ),
]
VerifyFlagOpt = Annotated[
    bool | None,
    typer.Option(
        "--verify/--no-verify",
        help="Once built, import every module in the runtime image (as `nativebuild verify`).",
    ),
]
BuildPackageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--build-package",
        help="System package installed in the build image (dnf, yum or apt name); repeatable.",
    ),
]
BeforeBuildOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--before-build",
        help="Shell command run once in the build image before compiling; repeatable.",
    ),
]

# Publishing, by `publish` and `build --publish`.
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


ImageOpt = Annotated[
    str | None,
    typer.Option(
        "--image",
        help="Push each built image to REGISTRY/REPOSITORY:TAG ({arch}, {runtime} replaced) with "
        "docker's credentials; blobs the registry has are not sent.",
    ),
]
PublishFlagOpt = Annotated[
    bool,
    typer.Option(
        "--publish",
        help="Then publish what was built, as `nativebuild publish` does with --layer-name, "
        "--function, --s3 and --image.",
    ),
]
