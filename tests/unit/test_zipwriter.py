"""The streaming zip writer: readable by every unzipper, same bytes for the same entries,
compressed bytes of wheels reused but checked."""

from __future__ import annotations

import hashlib
import io
import shutil
import stat
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

from nativebuild.archive.zipwriter import ZipFormatError, ZipWriter, raw_member_data

EPOCH = (1980, 1, 1, 0, 0, 0)


def write(entries: list[tuple[str, bytes, int]], dest: Path) -> tuple[str, int]:
    with dest.open("wb") as fh:
        writer = ZipWriter(fh)
        for name, data, mode in entries:
            writer.add_bytes(name, mode, EPOCH, data, 6)
        return writer.finish()


ENTRIES = [
    ("a/b.py", b"print('hi')\n" * 50, 0o644),
    ("bin/tool", b"#!/bin/sh\necho\n", 0o755),
    ("données/é.txt", "ünïcode".encode() * 9, 0o644),
    ("empty", b"", 0o644),
]


def test_entries_read_back_with_fixed_metadata(tmp_path: Path) -> None:
    digest, size = write(ENTRIES, tmp_path / "out.zip")
    data = (tmp_path / "out.zip").read_bytes()
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [name for name, _, _ in ENTRIES]
        for (name, content, mode), info in zip(ENTRIES, archive.infolist(), strict=True):
            assert archive.read(name) == content
            assert info.external_attr >> 16 == stat.S_IFREG | mode
            assert info.create_system == 3
            assert info.extra == b""
            # Plain deflate (2.0), one disk, binary data: nothing a reader may act on.
            assert (info.create_version, info.extract_version, info.reserved) == (20, 20, 0)
            assert (info.volume, info.internal_attr) == (0, 0)
            # Only a name that is not ASCII is flagged as UTF-8.
            assert info.flag_bits == (0 if name.isascii() else 0x800)
            assert info.date_time == EPOCH
            assert info.compress_type == zipfile.ZIP_DEFLATED


@pytest.mark.skipif(
    shutil.which("unzip") is None,
    reason="Info-ZIP unzip is not installed (scripts/ensure-test-tools installs it)",
)
def test_info_zip_accepts_it(tmp_path: Path) -> None:
    write(ENTRIES, tmp_path / "out.zip")
    result = subprocess.run(
        ["unzip", "-t", str(tmp_path / "out.zip")], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_same_entries_same_bytes(tmp_path: Path) -> None:
    assert write(ENTRIES, tmp_path / "a.zip") == write(ENTRIES, tmp_path / "b.zip")
    assert write(ENTRIES[::-1], tmp_path / "c.zip") != write(ENTRIES, tmp_path / "d.zip")


def test_more_than_65535_entries_use_zip64_end_records(tmp_path: Path) -> None:
    entries = [(f"m/{i:05}", b"", 0o644) for i in range(65_537)]
    write(entries, tmp_path / "many.zip")
    with zipfile.ZipFile(tmp_path / "many.zip") as archive:
        assert len(archive.infolist()) == 65_537
        assert archive.namelist()[-1] == "m/65536"
    assert b"PK\x06\x06" in (tmp_path / "many.zip").read_bytes()[-200:]


def _wheel_like(tmp_path: Path, data: bytes) -> tuple[Path, zipfile.ZipInfo]:
    path = tmp_path / "in.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("pkg/data.txt", data)
    with zipfile.ZipFile(path) as archive:
        return path, archive.getinfo("pkg/data.txt")


def test_deflated_member_is_copied_byte_for_byte(tmp_path: Path) -> None:
    data = b"".join(b"line %d\n" % i for i in range(5000))
    source, info = _wheel_like(tmp_path, data)
    with source.open("rb") as raw, (tmp_path / "out.zip").open("wb") as fh:
        writer = ZipWriter(fh)
        start = raw_member_data(raw, info.header_offset)
        writer.add_deflated(
            "copied.txt", 0o644, EPOCH, raw, crc=info.CRC,
            compress_size=info.compress_size, file_size=info.file_size,
        )  # fmt: skip
        writer.finish()
        raw.seek(start)
        original = raw.read(info.compress_size)
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        copied = archive.getinfo("copied.txt")
        assert archive.read("copied.txt") == data
        assert copied.compress_size == info.compress_size  # level 9 kept: not recompressed
    assert original in (tmp_path / "out.zip").read_bytes()


@pytest.mark.parametrize("offset", [2, -3])
def test_corrupt_deflated_member_is_refused(tmp_path: Path, offset: int) -> None:
    """A flipped byte either breaks the deflate stream or the CRC: both are caught."""
    data = bytes(range(256)) * 40
    source, info = _wheel_like(tmp_path, data)
    blob = bytearray(source.read_bytes())
    with source.open("rb") as raw:
        start = raw_member_data(raw, info.header_offset)
    blob[start + (offset if offset > 0 else info.compress_size + offset)] ^= 0x55
    raw = io.BytesIO(bytes(blob))
    raw.seek(start)
    with (tmp_path / "out.zip").open("wb") as fh, pytest.raises((ZipFormatError, zlib.error)):
        ZipWriter(fh).add_deflated(
            "x", 0o644, EPOCH, raw, crc=info.CRC,
            compress_size=info.compress_size, file_size=info.file_size,
        )  # fmt: skip


def test_entries_over_4_gib_are_refused(tmp_path: Path) -> None:
    with (tmp_path / "out.zip").open("wb") as fh:
        writer = ZipWriter(fh)
        with pytest.raises(ZipFormatError, match="4 GiB"):
            writer.add_deflated(
                "huge", 0o644, EPOCH, io.BytesIO(b""), crc=0, compress_size=1,
                file_size=5 * 1024**3,
            )  # fmt: skip


def test_bad_local_header_is_refused() -> None:
    with pytest.raises(ZipFormatError, match="local file header"):
        raw_member_data(io.BytesIO(b"not a zip at all, no header here"), 0)


# --- the raw copy, extra fields and the zip64 end records (mutation run) -----------------------


@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
def test_an_already_checked_member_is_copied_in_chunks_without_inflating(
    tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nativebuild.archive.zipwriter._CHUNK", chunk)
    data = b"".join(b"row %d\n" % i for i in range(300))
    source, info = _wheel_like(tmp_path, data)
    with source.open("rb") as raw, (tmp_path / "out.zip").open("wb") as fh:
        writer = ZipWriter(fh)
        raw_member_data(raw, info.header_offset)
        writer.add_deflated(
            "copied.txt", 0o644, EPOCH, raw, crc=info.CRC,
            compress_size=info.compress_size, file_size=info.file_size, check=False,
        )  # fmt: skip
        writer.add_bytes("after.txt", 0o644, EPOCH, b"next", 6)
        writer.finish()
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.testzip() is None
        assert archive.read("copied.txt") == data
        assert archive.read("after.txt") == b"next"
        assert writer.compressed_sizes[0] == info.compress_size
        after = archive.getinfo("after.txt").header_offset
    # Exactly the member's bytes were copied: the next header follows them, and nothing of
    # the source's own central directory (which names pkg/data.txt) came along.
    assert after == 30 + len("copied.txt") + info.compress_size
    assert b"pkg/data.txt" not in (tmp_path / "out.zip").read_bytes()


@pytest.mark.parametrize("check", [True, False])
def test_compressed_data_that_ends_early_is_refused(tmp_path: Path, check: bool) -> None:
    data = bytes(range(256)) * 40
    source, info = _wheel_like(tmp_path, data)
    with source.open("rb") as raw:
        start = raw_member_data(raw, info.header_offset)
        raw.seek(start)
        short = io.BytesIO(raw.read(info.compress_size - 5))
    with (tmp_path / "out.zip").open("wb") as fh, pytest.raises(ZipFormatError) as caught:
        ZipWriter(fh).add_deflated(
            "x", 0o644, EPOCH, short, crc=info.CRC,
            compress_size=info.compress_size, file_size=info.file_size, check=check,
        )  # fmt: skip
    assert str(caught.value) == "the compressed data ends early"


def test_a_wrong_crc_is_refused_in_words(tmp_path: Path) -> None:
    data = b"abc" * 1000
    source, info = _wheel_like(tmp_path, data)
    with source.open("rb") as raw, (tmp_path / "out.zip").open("wb") as fh:
        raw_member_data(raw, info.header_offset)
        with pytest.raises(ZipFormatError) as caught:
            ZipWriter(fh).add_deflated(
                "x", 0o644, EPOCH, raw, crc=info.CRC ^ 1,
                compress_size=info.compress_size, file_size=info.file_size,
            )  # fmt: skip
    assert str(caught.value) == "the compressed data does not match its CRC (a corrupt file)"


def test_the_data_of_a_member_with_an_extra_field_is_found(tmp_path: Path) -> None:
    path = tmp_path / "extra.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        info = zipfile.ZipInfo("with-extra.txt", date_time=EPOCH)
        info.extra = b"\xfe\xca\x04\x00abcd"  # an unknown 8-byte extra field
        archive.writestr(info, b"PAYLOAD")
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo("with-extra.txt").header_offset
    with path.open("rb") as raw:
        start = raw_member_data(raw, offset)
        assert start == offset + 30 + len("with-extra.txt") + 8
        assert raw.read(7) == b"PAYLOAD"


@pytest.mark.parametrize(("count", "zip64"), [(4, False), (5, True)])
def test_more_entries_than_the_end_record_holds_use_zip64_end_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, zip64: bool
) -> None:
    """The limit is 65,535 entries; a small stand-in limit (4) shows both sides of it."""
    monkeypatch.setattr("nativebuild.archive.zipwriter._MAX16", 4)
    entries = [(f"f{i}", b"x", 0o644) for i in range(count)]
    write(entries, tmp_path / "out.zip")
    blob = (tmp_path / "out.zip").read_bytes()
    assert (b"PK\x06\x06" in blob, b"PK\x06\x07" in blob) == (zip64, zip64)
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [name for name, _, _ in entries]
    end = blob[blob.rindex(b"PK\x05\x06") :]
    assert end[4:8] == b"\x00\x00\x00\x00"  # this disk and the central directory's: both 0


def _one_entry(dest: Path, name: str, data: bytes) -> bytes:
    write([(name, data, 0o644)], dest)
    return dest.read_bytes()


def _central(blob: bytes) -> tuple[int, int]:
    """(start, size) of the central directory, from the end record."""
    end = blob[blob.rindex(b"PK\x05\x06") :]
    return int.from_bytes(end[16:20], "little"), int.from_bytes(end[12:16], "little")


@pytest.mark.parametrize("which", ["start", "size"])
def test_zip64_end_records_start_just_past_the_32_bit_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """The 4 GiB limit (0xFFFFFFFF) on where the central directory starts and how long it is,
    both sides, with a small stand-in limit. One entry with incompressible data puts the
    central directory's start past its size; empty data and a long name, the other way."""
    name = "n" * 40
    noise = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(8))  # 256 bytes
    data = noise if which == "start" else b""
    start, size = _central(_one_entry(tmp_path / "plain.zip", name, data))
    assert (start > size) == (which == "start")
    limit = start if which == "start" else size
    for stand_in, zip64 in ((limit, False), (limit - 1, True)):
        monkeypatch.setattr("nativebuild.archive.zipwriter._MAX32", stand_in)
        blob = _one_entry(tmp_path / f"{which}-{stand_in}.zip", name, data)
        assert (b"PK\x06\x06" in blob) == zip64, (which, stand_in)
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            assert archive.namelist() == [name]


@pytest.mark.parametrize(("size", "refused"), [(64, False), (65, True)])
def test_an_entry_just_past_the_32_bit_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, refused: bool
) -> None:
    """Entries must stay within 0xFFFFFFFF bytes; a stand-in limit of 64 shows both sides."""
    monkeypatch.setattr("nativebuild.archive.zipwriter._MAX32", 64)
    with (tmp_path / "out.zip").open("wb") as fh:
        writer = ZipWriter(fh)
        if refused:
            with pytest.raises(ZipFormatError, match="would pass 4 GiB"):
                writer.add_bytes("big", 0o644, EPOCH, bytes(size), 6)
        else:
            writer.add_bytes("big", 0o644, EPOCH, bytes(size), 6)  # zeros: a few bytes zipped


def test_local_headers_agree_with_the_central_directory(tmp_path: Path) -> None:
    # unzip reads "version needed to extract" from the local header (2 bytes: 20 is 2.0).
    write(ENTRIES, tmp_path / "out.zip")
    blob = (tmp_path / "out.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        for info in archive.infolist():
            local = struct.unpack("<4s5H3L2H", blob[info.header_offset : info.header_offset + 30])
            assert local == (
                b"PK\x03\x04", 20, info.flag_bits, zipfile.ZIP_DEFLATED,
                *_dos_fields(info), info.CRC, info.compress_size, info.file_size,
                len(info.filename.encode()), 0,
            )  # fmt: skip


def _dos_fields(info: zipfile.ZipInfo) -> tuple[int, int]:
    year, month, day, hour, minute, second = info.date_time
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


def test_zip64_end_records_are_well_formed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """APPNOTE 4.3.14-15: the record's size counts what follows its first 12 bytes; one disk."""
    monkeypatch.setattr("nativebuild.archive.zipwriter._MAX16", 2)
    write([(f"f{i}", b"x", 0o644) for i in range(3)], tmp_path / "out.zip")
    blob = (tmp_path / "out.zip").read_bytes()
    at = blob.rindex(b"PK\x06\x06")
    fields = struct.unpack("<4sQ2H2L4Q", blob[at : at + 56])
    start, size = _central(blob)
    assert fields[1] == 56 - 12
    assert fields[2:] == (
        45,
        45,
        0,
        0,
        3,
        3,
        at - blob.index(b"PK\x01\x02"),
        blob.index(b"PK\x01\x02"),
    )
    assert struct.unpack("<4sLQL", blob[at + 56 : at + 76]) == (b"PK\x06\x07", 0, at, 1)
    assert (start, size) == (0xFFFFFFFF, at - blob.index(b"PK\x01\x02"))


@pytest.mark.parametrize(("limit", "refused"), [(33, False), (32, True)])
def test_an_entry_that_starts_past_the_32_bit_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, refused: bool
) -> None:
    """The first entry takes 33 bytes (30 of header, a 1-byte name, 2 of data): the second
    one's header starts at offset 33, which must fit in 32 bits (a stand-in limit)."""
    monkeypatch.setattr("nativebuild.archive.zipwriter._MAX32", limit)
    empty = zlib.compressobj(6, zlib.DEFLATED, -15).flush()  # an empty deflate stream
    assert len(empty) == 2
    with (tmp_path / "out.zip").open("wb") as fh:
        writer = ZipWriter(fh)
        add = lambda name: writer.add_deflated(
            name, 0o644, EPOCH, io.BytesIO(empty), crc=0, compress_size=2, file_size=0
        )
        add("a")
        if refused:
            with pytest.raises(ZipFormatError, match="b would pass 4 GiB"):
                add("b")
        else:
            add("b")


@pytest.mark.parametrize(("size", "refused"), [(64, False), (65, True)])
def test_compressed_data_past_the_32_bit_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, refused: bool
) -> None:
    monkeypatch.setattr("nativebuild.archive.zipwriter._MAX32", 64)
    with (tmp_path / "out.zip").open("wb") as fh:
        writer = ZipWriter(fh)
        copy = lambda: writer.add_deflated(
            "big", 0o644, EPOCH, io.BytesIO(bytes(size)), crc=0, compress_size=size,
            file_size=1, check=False,
        )  # fmt: skip
        if refused:
            with pytest.raises(ZipFormatError, match="would pass 4 GiB"):
                copy()
        else:
            copy()
            assert writer.compressed_sizes == [size]


def test_a_member_whose_compressed_data_ends_one_byte_past_a_chunk_is_copied(
    tmp_path: Path,
) -> None:
    """Compressed data is read 1 MiB at a time: a last read of a single byte still counts."""
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(40_000))
    # Stored deflate blocks: 5 bytes of header per 65,535 bytes, so the size is exact.
    length = next(
        n
        for n in range(1024 * 1024 - 100, 1024 * 1024)
        if len(_raw_stored(noise[:n])) == 1024 * 1024 + 1
    )
    raw = _raw_stored(noise[:length])
    with (tmp_path / "out.zip").open("wb") as fh:
        writer = ZipWriter(fh)
        writer.add_deflated(
            "x", 0o644, EPOCH, io.BytesIO(raw), crc=zlib.crc32(noise[:length]),
            compress_size=len(raw), file_size=length,
        )  # fmt: skip
        writer.finish()
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.read("x") == noise[:length]


def _raw_stored(data: bytes) -> bytes:
    compressor = zlib.compressobj(0, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def test_the_data_of_a_member_with_a_long_extra_field_is_found(tmp_path: Path) -> None:
    # Name and extra lengths are unsigned 16-bit: up to 65,535 bytes.
    path = tmp_path / "extra.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        info = zipfile.ZipInfo("long-extra.txt", date_time=EPOCH)
        info.extra = b"\xfe\xca" + (40_000).to_bytes(2, "little") + bytes(40_000)
        archive.writestr(info, b"PAYLOAD")
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo("long-extra.txt").header_offset
    with path.open("rb") as raw:
        raw_member_data(raw, offset)
        assert raw.read(7) == b"PAYLOAD"
