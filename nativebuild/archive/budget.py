"""Sizes against Lambda's limits: per package, per archive, and per function with its layers.

Limits [src: ../shared/reference/lambda-facts.md §3, AWS gettingstarted-limits]:

- 262,144,000 bytes (250 MiB) unzipped for a function and all its layers together; Lambda
  wants less ("Unzipped size must be smaller than 262144000 bytes"), so exactly the limit is
  refused too. At or over it: an error that lists the largest packages.
- 50 MiB zipped for a direct upload (``ZipFile`` of CreateFunction / UpdateFunctionCode /
  PublishLayerVersion). The API caps the request at 69,905,067 bytes, which is exactly the
  base64 of 52,428,800 bytes, so that size still goes. Larger archives deploy through S3, so
  this is a warning.
- 5 layers per function.

Sizes before writing come from the plan (unzipped: exact); after writing, the zipped sizes of
each entry come from the writer.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from nativebuild.archive.plan import ArchivePlan
from nativebuild.errors import ArchiveError

UNZIPPED_LIMIT = 262_144_000
DIRECT_UPLOAD_LIMIT = 52_428_800
MAX_LAYERS = 5
NEAR = 0.9  # warn from 90% of a limit
LISTED = 15
YOUR_SOURCE = "your source"

OVER_HINT = (
    "Make it smaller: --slim tests,docs,examples drops dependencies' test suites and docs; "
    "--slim runtime-provided leaves out boto3 and the rest the runtime has; --exclude GLOB drops "
    "files you know are unused (see the listing). Otherwise split the function, or deploy it "
    "as a container image (up to 10 GB)."
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PackageSize:
    name: str  # "numpy 2.0.1", or "your source"
    archive: str  # file name of the archive it is in
    files: int
    unzipped: int
    zipped: int | None = None  # known once written


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExternalLayer:
    """A layer built elsewhere (``--with-layer``), counted in the budget."""

    path: Path
    unzipped: int
    files: int


def human(size: int) -> str:
    """A size for people: 512 B, 3.4 KiB, 120.0 MiB."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def package_sizes(
    plan: ArchivePlan, archive: str, compressed_sizes: Sequence[int] | None = None
) -> tuple[PackageSize, ...]:
    """Sizes per owning distribution (bytecode counts with its package), largest first."""
    totals: dict[str, list[int]] = {}
    zipped = compressed_sizes if compressed_sizes is not None else [0] * len(plan.entries)
    for entry, compressed in zip(plan.entries, zipped, strict=True):
        row = totals.setdefault(entry.owner or YOUR_SOURCE, [0, 0, 0])
        row[0] += 1
        row[1] += entry.size
        row[2] += compressed
    sizes = [
        PackageSize(
            name=name,
            archive=archive,
            files=files,
            unzipped=unzipped,
            zipped=packed if compressed_sizes is not None else None,
        )
        for name, (files, unzipped, packed) in totals.items()
    ]
    return tuple(sorted(sizes, key=lambda p: (-p.unzipped, p.name)))


def read_layer(path: Path) -> ExternalLayer:
    """The unzipped size of a layer zip from its central directory."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
    except (OSError, zipfile.BadZipFile) as err:
        msg = f"Cannot read the layer {path}: {err}."
        raise ArchiveError(msg, hint="Pass --with-layer the path of a layer .zip file.") from err
    return ExternalLayer(path=path, unzipped=sum(i.file_size for i in infos), files=len(infos))


def check_group(
    plans: Sequence[tuple[str, ArchivePlan]], external: Sequence[ExternalLayer], *, layers: int
) -> list[str]:
    """Check archives deployed together (a function and its layers) against the unzipped limit
    and the layer count; ``layers`` of ``plans`` are layers. Returns warnings; raises
    ArchiveError over a limit."""
    names = [name for name, _ in plans] + [layer.path.name for layer in external]
    what = names[0] if len(names) == 1 else f"{names[0]} with {', '.join(names[1:])}"
    layer_count = layers + len(external)
    if layer_count > MAX_LAYERS:
        msg = f"{what} needs {layer_count} layers; a function can use at most {MAX_LAYERS}."
        raise ArchiveError(msg, hint="Merge layers, or pass fewer --with-layer.")
    total = sum(plan.unzipped_size for _, plan in plans) + sum(l.unzipped for l in external)
    if total >= UNZIPPED_LIMIT:  # "must be smaller than": the limit itself is refused
        packages = sorted(
            (size for name, plan in plans for size in package_sizes(plan, name)),
            key=lambda p: (-p.unzipped, p.name, p.archive),
        )
        rows = [
            f"  {p.name:<40} {human(p.unzipped):>11}  {p.files:>6} files  in {p.archive}"
            for p in packages[:LISTED]
        ]
        rows += [
            f"  {'(layer built elsewhere)':<40} {human(l.unzipped):>11}  {l.files:>6} files  in {l.path.name}"
            for l in external
        ]
        if len(packages) > LISTED:
            rest = packages[LISTED:]
            rows.append(f"  ... and {len(rest)} more ({human(sum(p.unzipped for p in rest))})")
        listing = "\n".join(rows)
        msg = (
            f"{what} is {total:,} bytes unzipped ({human(total)}): over Lambda's limit of "
            f"{UNZIPPED_LIMIT:,} bytes for a function and all its layers, which must be smaller; "
            f"{total - UNZIPPED_LIMIT + 1:,} bytes too many."
            f"\nLargest packages:\n{listing}"
        )
        raise ArchiveError(msg, hint=OVER_HINT)
    if total >= NEAR * UNZIPPED_LIMIT:
        share = 100 * total / UNZIPPED_LIMIT
        warning = (
            f"{what} is {total:,} bytes unzipped, {share:.0f}% of Lambda's {UNZIPPED_LIMIT:,}: "
            "little room for growth (see --slim)."
        )
        return [warning]
    return []


def zipped_warnings(name: str, size: int) -> list[str]:
    if size > DIRECT_UPLOAD_LIMIT:
        warning = (
            f"{name} is {size:,} bytes zipped: over the {DIRECT_UPLOAD_LIMIT:,}-byte (50 MiB) "
            "limit of a direct upload. Deploy it through S3 (SAM, CDK, Terraform s3_bucket, "
            "or `nativebuild publish --s3`)."
        )
        return [warning]
    if size >= NEAR * DIRECT_UPLOAD_LIMIT:
        return [f"{name} is {size:,} bytes zipped, near the 50 MiB limit of a direct upload."]
    return []


def render_table(name: str, size: int, packages: Iterable[PackageSize]) -> list[str]:
    """The per-package table of one written archive, as lines for the build summary."""
    rows = list(packages)
    unzipped = sum(p.unzipped for p in rows)
    share = 100 * unzipped / UNZIPPED_LIMIT
    lines = [
        f"{name}: {size:,} bytes zipped, {unzipped:,} unzipped ({share:.1f}% of {UNZIPPED_LIMIT:,})",
        f"  {'package':<40} {'files':>6} {'unzipped':>11} {'zipped':>11}",
    ]
    for p in rows[:LISTED]:
        zipped = human(p.zipped) if p.zipped is not None else "-"
        lines.append(f"  {p.name:<40} {p.files:>6} {human(p.unzipped):>11} {zipped:>11}")
    if len(rows) > LISTED:
        lines.append(f"  ... and {len(rows) - LISTED} more")
    return lines
