"""Files copied to and from a container through the engine's API (remote builders): what comes
back is a tar from a machine we do not control, so every member must land inside the output
directory; an absolute name, a ``..`` or a link is refused and nothing of that output is
written."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from nativebuild.engine.transfer import pack_inputs, unpack_output
from nativebuild.errors import ContainerError


def tar_of(*members: tuple[str, bytes | None, str | None]) -> bytes:
    """A tar like ``get_archive``'s: (name, file data or None for a directory, link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                archive.addfile(info)
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_contents_of_the_output_directory_land_in_dest(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    data = tar_of(("out", None, None), ("out/wheels", None, None), ("out/wheels/a.whl", b"w", None))
    unpack_output([data[:100], data[100:]], dest)  # the engine streams it in chunks
    assert (dest / "wheels" / "a.whl").read_bytes() == b"w"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "wheels",
        "wheels/a.whl",
    ]


def test_inputs_round_trip_with_their_modes_and_the_containers_owner(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    (source / "pkg" / "run.sh").chmod(0o700)
    (source / "pkg" / "data.txt").write_text("data")
    packed = pack_inputs([(source, "/nativebuild/in")], user="1000:1001")
    with tarfile.open(fileobj=io.BytesIO(packed)) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert sorted(members) == [
        "nativebuild",
        "nativebuild/in",
        "nativebuild/in/pkg",
        "nativebuild/in/pkg/data.txt",
        "nativebuild/in/pkg/run.sh",
    ]
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(1000, 1001, "", "")}
    assert {m.mode for m in members.values() if m.isdir()} == {0o755}
    # What get_archive("/nativebuild/in") returns: the directory under its own name.
    back = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(packed)) as archive,
        tarfile.open(fileobj=back, mode="w") as out,
    ):
        for member in archive.getmembers():
            if member.name.startswith("nativebuild/in"):
                payload = archive.extractfile(member) if member.isfile() else None
                member.name = member.name.removeprefix("nativebuild/")
                out.addfile(member, payload)
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack_output([back.getvalue()], dest)
    assert (dest / "pkg" / "data.txt").read_text() == "data"
    assert (dest / "pkg" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "pkg" / "data.txt").stat().st_mode & 0o777 == 0o644


def test_mounts_share_their_parent_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b.txt").write_text("b")
    packed = pack_inputs(
        [(tmp_path / "a", "/nativebuild/deep/in"), (tmp_path / "b.txt", "/nativebuild/deep/b.txt")],
        user=None,
    )
    with tarfile.open(fileobj=io.BytesIO(packed)) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == [
        "nativebuild",
        "nativebuild/deep",
        "nativebuild/deep/in",
        "nativebuild/deep/b.txt",
    ]
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}  # no user: root's


@pytest.mark.parametrize(
    ("user", "owner"),
    [(None, (0, 0)), ("", (0, 0)), ("993", (993, 993)), ("993:994", (993, 994)), ("sbx", (0, 0))],
)
def test_inputs_belong_to_the_containers_numeric_user(
    tmp_path: Path, user: str | None, owner: tuple[int, int]
) -> None:
    (tmp_path / "f").write_text("f")
    with tarfile.open(fileobj=io.BytesIO(pack_inputs([(tmp_path / "f", "/in/f")], user=user))) as t:
        assert {(m.uid, m.gid) for m in t.getmembers()} == {owner}


def test_directories_and_files_land_whatever_order_the_tar_gives(tmp_path: Path) -> None:
    data = tar_of(
        ("out", None, None),
        ("out/x/y/deep.txt", b"no directory entries before it", None),
        ("out/p/q", None, None),  # a directory whose parent has no entry
        ("out/x/y", None, None),  # a directory entry after its contents
    )
    unpack_output([data], tmp_path)
    assert (tmp_path / "x" / "y" / "deep.txt").read_bytes() == b"no directory entries before it"
    assert (tmp_path / "p" / "q").is_dir()


@pytest.mark.parametrize(("mode", "kept"), [(0o601, 0o755), (0o602, 0o644), (0o710, 0o755)])
def test_any_execute_bit_makes_an_executable(tmp_path: Path, mode: int, kept: int) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("out/tool")
        info.size, info.mode = 1, mode
        archive.addfile(info, io.BytesIO(b"x"))
    unpack_output([buffer.getvalue()], tmp_path)
    assert (tmp_path / "tool").stat().st_mode & 0o777 == kept


@pytest.mark.parametrize(
    ("member", "link"),
    [
        ("out/../../escaped", None),  # climbs out of dest
        ("../escaped", None),  # the top entry itself climbs
        ("out/sub/../../../escaped", None),
        ("out/sub/../inside", None),  # resolves inside, but any '..' is refused
        ("/escaped", None),  # absolute
        ("/out/escaped", None),
        ("out/link", "/etc/passwd"),  # a link could aim anywhere
        ("out/link", "inside"),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_written(
    tmp_path: Path, member: str, link: str | None
) -> None:
    dest = tmp_path / "a" / "b" / "out"
    dest.mkdir(parents=True)
    data = tar_of(
        ("out", None, None),
        ("out/first.txt", b"safe, but before the unsafe one", None),
        (member, None if link else b"evil", link),
    )
    with pytest.raises(ContainerError) as caught:
        unpack_output([data], dest)
    assert str(caught.value) == (
        f"The container's output holds an unsafe entry {member!r} (an absolute path, a '..' "
        "or a link); none of the output was copied back."
    )
    assert caught.value.exit_code == 12
    assert caught.value.hint == (
        "Check the builder engine and the build image: a build writes plain files and "
        "directories into its output directory."
    )
    assert list(dest.iterdir()) == [], "nothing of a refused output is written"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "out"]


def test_a_hard_link_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("out/hard")
        info.type, info.linkname = tarfile.LNKTYPE, "etc/shadow"
        archive.addfile(info)
    with pytest.raises(ContainerError, match="'out/hard'"):
        unpack_output([buffer.getvalue()], tmp_path)
    assert list(tmp_path.iterdir()) == []
