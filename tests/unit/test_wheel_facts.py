"""Reading a cached wheel once: CRCs checked, binaries kept, the answer reused; and the archive
writer's copy without inflating gives the same bytes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from nativebuild.abi.elf import BinaryKind
from nativebuild.abi.wheel_facts import WheelFacts, inspect_wheel
from nativebuild.archive.plan import plan_archive, write_zip
from nativebuild.errors import ArchiveError
from tests.elffixtures import STATX_C, pe_file, shared_library
from tests.wheelfactory import make_wheel


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    library = shared_library(tmp_path / "so", "_stat.so", STATX_C)
    return make_wheel(
        tmp_path / "wheels", "demo", "1.0",
        {"demo/__init__.py": "x = 1\n" * 200, "demo/_stat.so": library.read_bytes(),
         "demo/tool.exe": pe_file()},
        tag="cp39-cp39-linux_x86_64",
    )  # fmt: skip


def test_binaries_are_found_and_survive_a_round_trip(wheel: Path) -> None:
    facts = inspect_wheel(wheel)
    assert set(facts.binaries) == {"demo/_stat.so", "demo/tool.exe"}
    elf = facts.binaries["demo/_stat.so"]
    assert elf.kind is BinaryKind.ELF
    assert elf.package == "demo 1.0"
    assert elf.elf is not None
    assert any(need.version == "GLIBC_2.28" for need in elf.elf.version_needs)
    assert facts.binaries["demo/tool.exe"].kind is BinaryKind.PE
    assert WheelFacts.from_json(facts.to_json()) == facts


def test_a_member_whose_bytes_do_not_match_its_crc_is_an_error(wheel: Path) -> None:
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as archive:
        info = archive.getinfo("demo/__init__.py")
    # Inside the member's compressed data: past its local header (30 bytes, name, extra).
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 5
    data[offset] ^= 0xFF
    wheel.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"demo/__init__\.py"):
        inspect_wheel(wheel)


def test_copying_verified_members_as_they_are_gives_the_same_archive(
    wheel: Path, tmp_path: Path
) -> None:
    plan = plan_archive([wheel], None, python="3.9")
    checked = write_zip(plan, tmp_path / "checked.zip")
    trusted = write_zip(plan, tmp_path / "trusted.zip", verified={wheel})
    assert trusted.sha256 == checked.sha256
    assert (tmp_path / "trusted.zip").read_bytes() == (tmp_path / "checked.zip").read_bytes()
