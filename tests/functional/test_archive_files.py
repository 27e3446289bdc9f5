"""Write real function archives from real wheels and source trees, and read them back."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from nativebuild.archive.plan import (
    ArchiveInfo,
    ArchivePlan,
    plan_function_archive,
    write_zip,
    zip_datetime,
)
from nativebuild.errors import ArchiveError
from tests.wheelfactory import DateTime, make_tree, make_wheel

HANDLER = """\
import alpha
import beta


def handler(event, context):
    return f"{alpha.greet()} {beta.VALUE}"
"""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Host:
    """What differs between two machines (or checkouts) that must not change the archive."""

    file_mode: int = 0o644
    exec_mode: int = 0o755
    mtime: float = 1_600_000_000
    date_time: DateTime = (2020, 2, 2, 12, 0, 0)


def make_inputs(base: Path, host: Host = Host()) -> tuple[list[Path], Path]:
    """Three wheels (pure, platform with .data, namespace sharer) and a source tree."""
    dt = host.date_time
    wheels = base / "wheels"
    alpha = make_wheel(
        wheels,
        "alpha",
        "1.0",
        {"alpha/__init__.py": "def greet():\n    return 'hi'\n", "ns/__init__.py": ""},
        date_time=dt,
        file_mode=host.file_mode,
        exec_mode=host.exec_mode,
    )
    beta = make_wheel(
        wheels,
        "beta",
        "2.0",
        {"beta/__init__.py": "from beta._impl import VALUE\n", "beta/tool": "#!/bin/sh\n"},
        tag="cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
        data_files={
            "platlib/beta/_impl.py": "VALUE = 42\n",
            "scripts/beta-cli": "#!python\nimport beta\n",
            "headers/beta.h": "int beta;\n",
            "data/share/beta/notes.txt": "x" * 5000,
        },
        executable={"beta/tool"},
        directory_entries=True,
        date_time=dt,
        file_mode=host.file_mode,
        exec_mode=host.exec_mode,
    )
    gamma = make_wheel(
        wheels,
        "gamma",
        "0.1",
        {"ns/__init__.py": "", "ns/gamma.py": "G = 3\n"},
        date_time=dt,
        file_mode=host.file_mode,
        exec_mode=host.exec_mode,
    )
    for wheel in (alpha, beta, gamma):
        os.utime(wheel, (host.mtime, host.mtime))
    src = make_tree(
        base / "src",
        {
            "handler.py": HANDLER,
            "app/__init__.py": "",
            "app/run.sh": "#!/bin/sh\necho run\n",
            "app/__pycache__/handler.cpython-312.pyc": b"\x00",
        },
        executable={"app/run.sh"},
        mtime=host.mtime,
        file_mode=host.file_mode,
        exec_mode=host.exec_mode,
    )
    return [alpha, beta, gamma], src


def build(base: Path, dest: Path, *, epoch: int | None = None, host: Host = Host()) -> ArchiveInfo:
    wheels, src = make_inputs(base, host)
    plan = plan_function_archive(wheels, src, python="3.12")
    return write_zip(plan, dest, epoch=epoch)


EXPECTED_NAMES = [
    "alpha-1.0.dist-info/METADATA",
    "alpha-1.0.dist-info/RECORD",
    "alpha-1.0.dist-info/WHEEL",
    "alpha/__init__.py",
    "app/__init__.py",
    "app/run.sh",
    "beta-2.0.dist-info/METADATA",
    "beta-2.0.dist-info/RECORD",
    "beta-2.0.dist-info/WHEEL",
    "beta/__init__.py",
    "beta/_impl.py",
    "beta/tool",
    "bin/beta-cli",
    "gamma-0.1.dist-info/METADATA",
    "gamma-0.1.dist-info/RECORD",
    "gamma-0.1.dist-info/WHEEL",
    "handler.py",
    "include/beta/beta.h",
    "ns/__init__.py",
    "ns/gamma.py",
    "share/beta/notes.txt",
]
EXECUTABLE = {"app/run.sh", "beta/tool", "bin/beta-cli"}


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[ArchiveInfo, zipfile.ZipFile]]:
    info = build(tmp_path / "in", tmp_path / "out" / "function.zip", epoch=1_700_000_000)
    with zipfile.ZipFile(info.path) as zf:
        yield info, zf


def test_names_sorted_files_only(archive: tuple[ArchiveInfo, zipfile.ZipFile]) -> None:
    _, zf = archive
    assert zf.namelist() == EXPECTED_NAMES
    assert not any(info.is_dir() for info in zf.infolist())


def test_entry_metadata_normalised(archive: tuple[ArchiveInfo, zipfile.ZipFile]) -> None:
    _, zf = archive
    assert zf.comment == b""
    for info in zf.infolist():
        expected_mode = 0o755 if info.filename in EXECUTABLE else 0o644
        assert info.external_attr >> 16 == stat.S_IFREG | expected_mode, info.filename
        assert info.external_attr & 0xFFFF == 0
        assert info.date_time == zip_datetime(1_700_000_000) == (2023, 11, 14, 22, 13, 20)
        assert info.create_system == 3
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.extra == b""
        assert info.comment == b""
    assert zf.testzip() is None


def test_contents_and_info(archive: tuple[ArchiveInfo, zipfile.ZipFile]) -> None:
    info, zf = archive
    assert zf.read("bin/beta-cli") == b"#!/var/lang/bin/python3.12\nimport beta\n"
    assert zf.read("beta/tool") == b"#!/bin/sh\n"
    assert zf.read("share/beta/notes.txt") == b"x" * 5000
    assert b"beta/_impl.py" in zf.read("beta-2.0.dist-info/RECORD")
    data = info.path.read_bytes()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert info.entries == len(EXPECTED_NAMES)
    assert info.uncompressed_size == sum(i.file_size for i in zf.infolist())
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o644
    assert sorted(p.name for p in info.path.parent.iterdir()) == ["function.zip"]


def test_extracted_archive_imports(
    archive: tuple[ArchiveInfo, zipfile.ZipFile], tmp_path: Path
) -> None:
    _, zf = archive
    target = tmp_path / "task"
    zf.extractall(target)
    code = f"import sys; sys.path.insert(0, {str(target)!r}); import handler; print(handler.handler({{}}, None))"
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "hi 42\n"


def test_same_inputs_elsewhere_give_same_bytes(tmp_path: Path) -> None:
    first = build(tmp_path / "a" / "inputs", tmp_path / "a" / "function.zip", epoch=1_700_000_000)
    old_umask = os.umask(0o077)
    try:
        second = build(
            tmp_path / "b" / "deeper" / "inputs",
            tmp_path / "b" / "out.zip",
            epoch=1_700_000_000,
            host=Host(
                file_mode=0o600,
                exec_mode=0o700,
                mtime=1_000_000_000,
                date_time=(1999, 9, 9, 9, 9, 8),
            ),
        )
    finally:
        os.umask(old_umask)
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.code_sha256 == second.code_sha256


def test_wheel_order_does_not_matter(tmp_path: Path) -> None:
    wheels, src = make_inputs(tmp_path / "in")
    forward = write_zip(plan_function_archive(wheels, src, python="3.12"), tmp_path / "f.zip")
    reverse = write_zip(plan_function_archive(wheels[::-1], src, python="3.12"), tmp_path / "r.zip")
    assert forward.sha256 == reverse.sha256


def test_epoch_and_level_change_bytes(tmp_path: Path) -> None:
    # Guards the determinism test against passing because nothing is written at all.
    wheels, src = make_inputs(tmp_path / "in")
    plan = plan_function_archive(wheels, src, python="3.12")
    default = write_zip(plan, tmp_path / "default.zip")
    later = write_zip(plan, tmp_path / "later.zip", epoch=1_700_000_000)
    fast = write_zip(plan, tmp_path / "fast.zip", compresslevel=1)
    assert len({default.sha256, later.sha256, fast.sha256}) == 3
    with zipfile.ZipFile(default.path) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_python_version_sets_shebang(tmp_path: Path) -> None:
    wheels, src = make_inputs(tmp_path / "in")
    info = write_zip(plan_function_archive(wheels, src, python="3.9"), tmp_path / "f.zip")
    with zipfile.ZipFile(info.path) as zf:
        assert zf.read("bin/beta-cli").startswith(b"#!/var/lang/bin/python3.9\n")


def test_large_member_streamed_intact(tmp_path: Path) -> None:
    blob = os.urandom(3 * 1024 * 1024 + 17)
    wheel = make_wheel(tmp_path / "w", "big", "1.0", {"big/blob.bin": blob})
    src = make_tree(tmp_path / "src", {"big.bin": blob[::-1]})
    info = write_zip(plan_function_archive([wheel], src, python="3.12"), tmp_path / "f.zip")
    with zipfile.ZipFile(info.path) as zf:
        assert zf.read("big/blob.bin") == blob
        assert zf.read("big.bin") == blob[::-1]
        assert all(i.extra == b"" for i in zf.infolist())


def test_parent_directory_created(tmp_path: Path) -> None:
    wheels, src = make_inputs(tmp_path / "in")
    dest = tmp_path / "a" / "b" / "c" / "function.zip"
    assert write_zip(plan_function_archive(wheels, src, python="3.12"), dest).path.is_file()


# --- failures leave nothing behind -------------------------------------------------------------


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, bytes, ArchivePlan]:
    """A dest that already holds an archive, and a plan that would replace it."""
    wheels, src = make_inputs(tmp_path / "in")
    plan = plan_function_archive(wheels, src, python="3.12")
    dest = tmp_path / "out" / "function.zip"
    dest.parent.mkdir()
    dest.write_bytes(b"previous archive")
    return dest, dest.read_bytes(), plan


def assert_untouched(dest: Path, before: bytes) -> None:
    assert dest.read_bytes() == before
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]


def test_source_file_vanished_mid_write(
    previous: tuple[Path, bytes, ArchivePlan], tmp_path: Path
) -> None:
    dest, before, plan = previous
    (tmp_path / "in" / "src" / "handler.py").unlink()
    with pytest.raises(ArchiveError, match=r"while adding handler\.py"):
        write_zip(plan, dest)
    assert_untouched(dest, before)


def test_corrupt_wheel_member_mid_write(
    previous: tuple[Path, bytes, ArchivePlan], tmp_path: Path
) -> None:
    dest, before, plan = previous
    wheel = (
        tmp_path
        / "in"
        / "wheels"
        / "beta-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    )
    with zipfile.ZipFile(wheel) as zf:
        member = zf.getinfo("beta-2.0.data/data/share/beta/notes.txt")
        start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    data = bytearray(wheel.read_bytes())
    data[start : start + member.compress_size] = b"\xff" * member.compress_size
    wheel.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"while adding share/beta/notes\.txt"):
        write_zip(plan, dest)
    assert_untouched(dest, before)


def test_keyboard_interrupt_mid_write(
    previous: tuple[Path, bytes, ArchivePlan], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, before, plan = previous
    real_copy = shutil.copyfileobj
    calls = []

    def interrupted(fsrc: IO[bytes], fdst: IO[bytes], length: int = 0) -> None:
        calls.append(1)
        if len(calls) == 5:
            fdst.write(fsrc.read(3))
            raise KeyboardInterrupt
        real_copy(fsrc, fdst, length)

    monkeypatch.setattr(shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_zip(plan, dest)
    assert len(calls) == 5
    assert_untouched(dest, before)


def test_unwritable_destination(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ArchiveError, match="Cannot create"):
        write_zip(ArchivePlan(entries=(), interpreter="/x"), blocker / "function.zip")
