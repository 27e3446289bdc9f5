"""Moving a container's inputs and outputs through the Docker API instead of bind mounts.

A remote engine (a native arm64 builder over ssh or tcp) cannot see the host's files, so the
mounts of a ContainerSpec travel as tar streams: in with ``put_archive`` before the container
starts, out with ``get_archive`` before it is removed. No docker import here: the container
runner passes the bytes.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from nativebuild.errors import ContainerError

_UNSAFE_HINT = (
    "Check the builder engine and the build image: a build writes plain files and directories "
    "into its output directory."
)


def _owner(user: str | None) -> tuple[int, int]:
    if not user:
        return 0, 0
    uid, _, gid = user.partition(":")
    return (int(uid), int(gid or uid)) if uid.isdigit() else (0, 0)


def _add(archive: tarfile.TarFile, path: Path, name: str, uid: int, gid: int) -> None:
    info = archive.gettarinfo(str(path), arcname=name)
    info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
    if info.isdir():
        info.mode = 0o755
        archive.addfile(info)
        for child in sorted(path.iterdir()):
            _add(archive, child, f"{name}/{child.name}", uid, gid)
    elif info.isfile():
        with path.open("rb") as handle:
            archive.addfile(info, handle)
    # sockets, devices and links are not inputs of ours: left out


def pack_inputs(mounts: Iterable[tuple[Path, str]], *, user: str | None) -> bytes:
    """One tar, to extract at ``/``, holding every (host source, container target) pair;
    owned by the container's user so it may write where a read-write mount would let it."""
    uid, gid = _owner(user)
    buffer = io.BytesIO()
    made: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for source, target in mounts:
            parts = PurePosixPath(target).parts[1:]
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent not in made:
                    made.add(parent)
                    info = tarfile.TarInfo(parent)
                    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
                    archive.addfile(info)
            _add(archive, source, "/".join(parts), uid, gid)
    return buffer.getvalue()


def _unsafe(member: tarfile.TarInfo) -> bool:
    """An absolute name, a ``..`` anywhere, or a link: a remote engine (or what runs in it)
    could aim any of these outside the directory being filled."""
    name = PurePosixPath(member.name)
    return name.is_absolute() or ".." in name.parts or member.issym() or member.islnk()


def unpack_output(chunks: Iterable[bytes], dest: Path) -> None:
    """Extract what ``get_archive`` returned for one directory into ``dest`` (its contents,
    not the directory itself), refusing anything that would land outside ``dest``: then
    nothing of it is written."""
    stream = io.BytesIO(b"".join(chunks))
    root = dest.resolve()
    with tarfile.open(fileobj=stream, mode="r") as archive:
        placed: list[tuple[tarfile.TarInfo, Path]] = []
        for member in archive.getmembers():
            relative = PurePosixPath(member.name).parts[1:]  # drop the directory's own name
            target = (root / Path(*relative)).resolve()
            if _unsafe(member) or not target.is_relative_to(root):
                msg = (
                    f"The container's output holds an unsafe entry {member.name!r} (an absolute "
                    "path, a '..' or a link); none of the output was copied back."
                )
                raise ContainerError(msg, hint=_UNSAFE_HINT)
            if relative:
                placed.append((member, target))
        for member, target in placed:
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is None:  # pragma: no cover - regular members always have data
                    continue
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
                target.chmod(0o755 if member.mode & 0o111 else 0o644)
