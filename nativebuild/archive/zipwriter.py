"""A zip writer that produces the same bytes for the same entries, and hashes as it writes.

Python's ``zipfile`` cannot copy an entry's compressed bytes from another zip, and seeks back to
patch headers, which rules out hashing while writing. This writer does neither: it writes each
entry once, front to back — local header, data, then the central directory — with no extra
fields, no data descriptors, Unix modes and a fixed timestamp, so the output depends only on the
entries given. Entries already deflated in a wheel are copied as they are, after inflating them
once to check their CRC: the wheel's sha256 pins those bytes, and skipping recompression is most
of the time an archive takes.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import stat
import struct
import tempfile
import zlib
from typing import IO, BinaryIO

_CHUNK = 1024 * 1024
_SPOOL = 8 * 1024 * 1024  # compressed entries up to this size stay in memory
_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF
_DEFLATED = 8
_VERSION = 20  # 2.0: deflate, what Python's zipfile and Info-ZIP write
_VERSION_ZIP64 = 45
_UNIX = 3
_UTF8_FLAG = 0x800
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")

DateTime = tuple[int, int, int, int, int, int]


class ZipFormatError(ValueError):
    """An entry cannot be written: too large, or its source bytes are corrupt."""


def _dos(date_time: DateTime) -> tuple[int, int]:
    year, month, day, hour, minute, second = date_time
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


class _HashingWriter:
    """Writes through to a file, counting and hashing every byte."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.out.write(data)
        self.digest.update(data)
        self.offset += len(data)
        return len(data)


class _Deflater(io.RawIOBase):
    """A writable stream that deflates into ``sink`` and tracks the CRC and size."""

    def __init__(self, sink: IO[bytes], level: int) -> None:
        self.sink = sink
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        self.crc = 0
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self.sink.write(self.compressor.compress(data))
        return len(data)

    def finish(self) -> None:
        self.sink.write(self.compressor.flush())


class _Inflating(io.RawIOBase):
    """Reads ``size`` raw deflate bytes from ``source`` and, as a side effect, inflates them to
    check the CRC and size the central directory promised."""

    def __init__(self, source: IO[bytes], size: int, crc: int, file_size: int) -> None:
        self.source = source
        self.left = size
        self.crc_expected = crc
        self.size_expected = file_size
        self.inflater = zlib.decompressobj(-15)
        self.crc = 0
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            return 0
        data = self.source.read(min(len(buffer), self.left))
        if not data:
            msg = "the compressed data ends early"
            raise ZipFormatError(msg)
        self.left -= len(data)
        plain = self.inflater.decompress(data)
        self.crc = zlib.crc32(plain, self.crc)
        self.size += len(plain)
        buffer[: len(data)] = data
        return len(data)

    def verify(self) -> None:
        tail = self.inflater.flush()
        self.crc = zlib.crc32(tail, self.crc)
        self.size += len(tail)
        if not self.inflater.eof or (self.crc, self.size) != (
            self.crc_expected,
            self.size_expected,
        ):
            msg = "the compressed data does not match its CRC (a corrupt file)"
            raise ZipFormatError(msg)


def raw_member_data(archive: IO[bytes], header_offset: int) -> int:
    """Position ``archive`` at the data of the member whose local header is at
    ``header_offset``; returns that position."""
    archive.seek(header_offset)
    header = archive.read(_LOCAL.size)
    if len(header) != _LOCAL.size or header[:4] != b"PK\x03\x04":
        msg = "bad local file header"
        raise ZipFormatError(msg)
    name_length, extra_length = struct.unpack("<2H", header[26:30])
    archive.seek(header_offset + _LOCAL.size + name_length + extra_length)
    return archive.tell()


class ZipWriter:
    """Appends entries to ``out`` (positioned at 0); :meth:`finish` writes the directory."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = _HashingWriter(out)
        self._central: list[bytes] = []
        self.compressed_sizes: list[int] = []
        self.uncompressed = 0

    def _header(
        self, name: str, mode: int, date_time: DateTime, crc: int, csize: int, usize: int
    ) -> None:
        if usize > _MAX32 or csize > _MAX32 or self._out.offset > _MAX32:
            msg = f"{name} would pass 4 GiB of archive, more than Lambda accepts"
            raise ZipFormatError(msg)
        encoded = name.encode("utf-8")
        flags = 0 if name.isascii() else _UTF8_FLAG
        time, date = _dos(date_time)
        self._out.write(
            _LOCAL.pack(
                b"PK\x03\x04",
                _VERSION,
                0,
                flags,
                _DEFLATED,
                time,
                date,
                crc,
                csize,
                usize,
                len(encoded),
                0,
            )
        )
        self._out.write(encoded)
        attributes = (stat.S_IFREG | mode) << 16
        self._central.append(
            _CENTRAL.pack(
                b"PK\x01\x02",
                _VERSION,
                _UNIX,
                _VERSION,
                0,
                flags,
                _DEFLATED,
                time,
                date,
                crc,
                csize,
                usize,
                len(encoded),
                0,
                0,
                0,
                0,
                attributes,
                self._out.offset - _LOCAL.size - len(encoded),
            )
            + encoded
        )
        self.compressed_sizes.append(csize)
        self.uncompressed += usize

    def add_stream(
        self, name: str, mode: int, date_time: DateTime, source: IO[bytes], level: int
    ) -> None:
        """Deflate everything ``source`` yields into a new entry."""
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as spool:
            deflater = _Deflater(spool, level)
            shutil.copyfileobj(source, deflater, _CHUNK)
            deflater.finish()
            csize = spool.tell()
            spool.seek(0)
            self._header(name, mode, date_time, deflater.crc, csize, deflater.size)
            shutil.copyfileobj(spool, self._out, _CHUNK)

    def add_bytes(self, name: str, mode: int, date_time: DateTime, data: bytes, level: int) -> None:
        self.add_stream(name, mode, date_time, io.BytesIO(data), level)

    def add_deflated(
        self,
        name: str,
        mode: int,
        date_time: DateTime,
        source: IO[bytes],
        *,
        crc: int,
        compress_size: int,
        file_size: int,
        check: bool = True,
    ) -> None:
        """Copy ``compress_size`` bytes of raw deflate data from ``source`` as they are,
        inflating them on the way to check ``crc`` and ``file_size`` (``check=False``: the
        caller has checked these bytes already)."""
        self._header(name, mode, date_time, crc, compress_size, file_size)
        if not check:
            left = compress_size
            while left > 0:
                data = source.read(min(_CHUNK, left))
                if not data:
                    msg = "the compressed data ends early"
                    raise ZipFormatError(msg)
                self._out.write(data)
                left -= len(data)
            return
        reader = _Inflating(source, compress_size, crc, file_size)
        shutil.copyfileobj(reader, self._out, _CHUNK)
        reader.verify()

    def finish(self) -> tuple[str, int]:
        """Write the central directory; returns the sha256 (hex) and size of the whole zip."""
        start = self._out.offset
        for record in self._central:
            self._out.write(record)
        size = self._out.offset - start
        count = len(self._central)
        if count > _MAX16 or start > _MAX32 or size > _MAX32:
            # Zip64 end records only: entries stay under 4 GiB (refused above), but a layer
            # may hold more than 65,535 files.
            end64 = self._out.offset
            self._out.write(
                _END64.pack(
                    b"PK\x06\x06",
                    _END64.size - 12,
                    _VERSION_ZIP64,
                    _VERSION_ZIP64,
                    0,
                    0,
                    count,
                    count,
                    size,
                    start,
                )
            )
            self._out.write(_LOCATOR64.pack(b"PK\x06\x07", 0, end64, 1))
            count16, start32, size32 = _MAX16, _MAX32, min(size, _MAX32)
        else:
            count16, start32, size32 = count, start, size
        self._out.write(_END.pack(b"PK\x05\x06", 0, 0, count16, count16, size32, start32, 0))
        return self._out.digest.hexdigest(), self._out.offset
