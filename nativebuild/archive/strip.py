"""``--slim strip``: debug symbols out of the shared objects nativebuild compiled itself.

Only wheels compiled here from sdists are touched: third-party wheels' binaries are never
stripped (``strip`` on vendor builds has broken imports before: aws/aws-sdk-pandas#884).
``strip --strip-debug`` keeps every symbol the dynamic loader needs. It runs in the target's
build image, whose binutils are the target architecture's. The result is a new wheel (RECORD
updated with the stripped files' hashes and sizes) kept in the cache under a key of the original
wheel, the image and this recipe, so a warm rebuild starts no container.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import zipfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from nativebuild.archive.jobs import IN_DIR, OUT_DIR, host_path, run_jobs
from nativebuild.archive.plan import DOS_EPOCH
from nativebuild.archive.wheels import member_mode
from nativebuild.archive.zipwriter import ZipWriter, raw_member_data
from nativebuild.cache.keys import build_key
from nativebuild.cache.local import CachedFile, LocalCache
from nativebuild.engine.runner import ContainerRunner
from nativebuild.reporting import Reporter
from nativebuild.targets import Target

RECIPE = "1"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stripped:
    wheel: str  # the wheel's file name
    files: int
    before: int  # bytes of its shared objects before
    after: int


def is_shared_object(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".so") or ".so." in base


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def rewrite_wheel(original: Path, replaced: Mapping[str, bytes], dest: Path) -> None:
    """Copy ``original`` to ``dest`` with the members in ``replaced`` swapped for new bytes, and
    their RECORD rows updated; the rest is copied as it is."""
    with zipfile.ZipFile(original) as wheel, original.open("rb") as raw, dest.open("wb") as out:
        writer = ZipWriter(out)
        for info in wheel.infolist():
            if info.is_dir():
                continue
            mode = member_mode(info)
            name = info.filename
            if name in replaced:
                writer.add_bytes(name, mode, DOS_EPOCH, replaced[name], 6)
            elif name.count("/") == 1 and name.endswith(".dist-info/RECORD"):
                data = _rewrite_record(wheel.read(info), replaced)
                writer.add_bytes(name, mode, DOS_EPOCH, data, 6)
            elif info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & 1:
                raw_member_data(raw, info.header_offset)
                writer.add_deflated(
                    name,
                    mode,
                    DOS_EPOCH,
                    raw,
                    crc=info.CRC,
                    compress_size=info.compress_size,
                    file_size=info.file_size,
                )
            else:
                with wheel.open(info) as fh:
                    writer.add_stream(name, mode, DOS_EPOCH, fh, 6)
        writer.finish()


def _rewrite_record(data: bytes, replaced: Mapping[str, bytes]) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        if row and row[0] in replaced:
            new = replaced[row[0]]
            writer.writerow([row[0], _record_hash(new), str(len(new))])
        else:
            writer.writerow(row)
    return out.getvalue().encode("utf-8")


def _key(wheel: CachedFile, target: Target, image_id: str) -> str:
    return build_key(
        {
            "kind": "stripped-wheel",
            "wheel_sha256": wheel.sha256,
            "platform": target.arch.docker_platform,
            "build_image_id": image_id,
            "recipe": RECIPE,
        }
    )


def _elf_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        found = {}
        for info in archive.infolist():
            if not info.is_dir() and is_shared_object(info.filename):
                data = archive.read(info)
                if data.startswith(b"\x7fELF"):
                    found[info.filename] = data
        return found


def strip_wheels(
    wheels: Mapping[str, CachedFile],
    names: Collection[str],
    target: Target,
    *,
    image_id: str,
    runner: ContainerRunner,
    cache: LocalCache,
    reporter: Reporter,
    verbose: bool,
    job_target: Callable[[], Target] | None = None,
) -> tuple[dict[str, CachedFile], tuple[Stripped, ...]]:
    """``wheels`` with those of ``names`` (compiled here) replaced by stripped copies; the job
    runs in ``job_target()``'s build image, asked for only when something must be stripped."""
    result = dict(wheels)
    done: list[Stripped] = []
    todo: dict[str, dict[str, bytes]] = {}
    for name in sorted(names):
        wheel = wheels[name]
        hit = cache.get_built(_key(wheel, target, image_id))
        if hit is not None:
            result[name] = hit.wheel
            done.append(_stripped(hit.wheel.path.name, hit.manifest))
            continue
        members = _elf_members(wheel.path)
        if members:
            todo[name] = members
    if not todo:
        return result, tuple(done)
    count = sum(len(m) for m in todo.values())
    job = job_target() if job_target is not None else target
    reporter.step(f"Stripping debug symbols from {count} shared objects in {job.build_image}")
    with cache.scratch_dir() as work:
        jobs, where = [], {}
        for wi, (name, members) in enumerate(sorted(todo.items())):
            for mi, (member, data) in enumerate(sorted(members.items())):
                src = work / "in" / str(wi) / f"{mi}.so"
                src.parent.mkdir(parents=True, exist_ok=True)
                src.write_bytes(data)
                out = f"{OUT_DIR}/{wi}/{mi}.so"
                jobs.append({"src": f"{IN_DIR}/{wi}/{mi}.so", "out": out})
                where[out] = (name, member)
        results = run_jobs(
            {"strip": jobs},
            job,
            runner=runner,
            reporter=reporter,
            verbose=verbose,
            workdir=work,
            description="strip debug symbols",
        )
        for failure in results.get("strip_failed", []):
            reporter.warning(f"strip failed, kept as built: {failure.get('error', '')}")
        stripped: dict[str, dict[str, bytes]] = {}
        for out in results.get("stripped", []):
            name, member = where[str(out)]
            stripped.setdefault(name, {})[member] = host_path(str(out), work).read_bytes()
        for name, replaced in sorted(stripped.items()):
            original = wheels[name]
            dest = work / "wheels" / original.path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            rewrite_wheel(original.path, replaced, dest)
            manifest = {
                "kind": "stripped",
                "from_sha256": original.sha256,
                "stripped_files": sorted(replaced),
                "bytes_before": sum(len(todo[name][m]) for m in replaced),
                "bytes_after": sum(len(data) for data in replaced.values()),
            }
            entry = cache.put_built(_key(original, target, image_id), dest, manifest, move=True)
            result[name] = entry.wheel
            done.append(_stripped(entry.wheel.path.name, entry.manifest))
    return result, tuple(done)


def _stripped(wheel: str, manifest: Mapping[str, object]) -> Stripped:
    files = manifest.get("stripped_files")
    before, after = manifest.get("bytes_before"), manifest.get("bytes_after")
    return Stripped(
        wheel=wheel,
        files=len(files) if isinstance(files, list) else 0,
        before=before if isinstance(before, int) else 0,
        after=after if isinstance(after, int) else 0,
    )
