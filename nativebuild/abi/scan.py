"""Every binary of an archive, planned (wheels and source files, before anything is written) or
written (a zip), as the runtime will mount it: a function at /var/task, layers merged at /opt.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from nativebuild.abi.elf import Binary, binary_of, package_of
from nativebuild.archive.layout import FUNCTION_ROOT, LAYER_ROOT
from nativebuild.archive.plan import ArchivePlan, SourceFile
from nativebuild.archive.wheels import install_path
from nativebuild.errors import ArchiveError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mounted:
    """An archive as the runtime sees it: extracted at ``root`` (/var/task, or /opt for layers)."""

    root: str
    files: frozenset[str]
    binaries: tuple[Binary, ...]


def merge_layers(layers: Sequence[Mounted]) -> Mounted:
    """Layers as Lambda merges them at /opt: a later layer's file replaces an earlier one's."""
    binaries: dict[str, Binary] = {}
    for layer in layers:
        for path in layer.files:
            binaries.pop(path, None)
        binaries.update((b.path, b) for b in layer.binaries)
    files = frozenset().union(*(layer.files for layer in layers))
    return Mounted(root=LAYER_ROOT, files=files, binaries=tuple(binaries.values()))


def scan_archive_plan(
    plan: ArchivePlan,
    *,
    root: str = FUNCTION_ROOT,
    wheels: Callable[[Path], Mapping[str, Binary]] | None = None,
) -> Mounted:
    """Read the binaries of a planned archive from its wheels and source files; ``wheels``
    gives each wheel's binaries by member name when they are already known."""
    binaries = []
    current = ""
    try:
        with contextlib.ExitStack() as stack:
            opened: dict[Path, zipfile.ZipFile] = {}
            for entry in plan.entries:
                current = entry.path
                source = entry.source
                if isinstance(source, SourceFile):
                    with source.path.open("rb") as fh:
                        found = binary_of(entry.path, fh, None, None)
                elif wheels is not None:
                    known = wheels(source.wheel).get(source.member)
                    found = None if known is None else dataclasses.replace(known, path=entry.path)
                else:
                    if source.wheel not in opened:
                        opened[source.wheel] = stack.enter_context(zipfile.ZipFile(source.wheel))
                    name = source.wheel.name
                    with opened[source.wheel].open(source.member) as fh:
                        found = binary_of(entry.path, fh, package_of(name), name)
                if found is not None:
                    binaries.append(found)
    except (OSError, zipfile.BadZipFile, KeyError) as err:
        msg = f"Cannot read {current} to check it: {err}."
        raise ArchiveError(msg, hint="Check the input files, then build again.") from err
    files = frozenset(entry.path for entry in plan.entries)
    return Mounted(root=root, files=files, binaries=tuple(binaries))


def zip_owners(archive: zipfile.ZipFile) -> dict[str, str]:
    """Archive path → "name version" of the distribution whose RECORD lists it; in a layer,
    the RECORDs sit under ``python/`` (or its site-packages), and so do the paths they list."""
    owners: dict[str, str] = {}
    for record in archive.namelist():
        prefix, _, leaf = record.rpartition("/")
        prefix, _, top = prefix.rpartition("/")
        if leaf != "RECORD" or not top.endswith(".dist-info"):
            continue
        prefix = f"{prefix}/" if prefix else ""
        stem = top.removesuffix(".dist-info")
        name, _, version = stem.partition("-")
        text = archive.read(record).decode("utf-8", errors="replace")
        for row in csv.reader(io.StringIO(text)):
            if not row or not row[0]:
                continue
            with contextlib.suppress(ArchiveError):  # a .data path outside the known keys
                path, _ = install_path(row[0], data_dir=f"{stem}.data", dist_name=name)
                owners[prefix + path] = f"{name} {version}"
    return owners


def scan_zip(path: Path, *, root: str = FUNCTION_ROOT) -> Mounted:
    """Read the binaries of a built archive (or layer) zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            owners = zip_owners(archive)
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
            binaries = []
            for name in names:
                with archive.open(name) as fh:
                    found = binary_of(name, fh, owners.get(name), None)
                if found is not None:
                    binaries.append(found)
    except (OSError, zipfile.BadZipFile) as err:
        msg = f"Cannot read the archive {path}: {err}."
        raise ArchiveError(msg, hint="Check the path; build the archive again.") from err
    return Mounted(root=root, files=frozenset(names), binaries=tuple(binaries))
