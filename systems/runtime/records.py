"""Checksummed durable data: log records and whole files, as every system writes them (like etcd's WAL).

Pure (bytes in, bytes out); re-exported by api.py, which is how systems use it.

Rules this module keeps:

- A log record is a 12-byte header then the body: the body's length (4
  bytes, big-endian), a CRC-32 of those 4 bytes, a CRC-32 of the body. The
  header checks itself, so a damaged length is never trusted.
- A whole file (Raft's meta and snapshot, KV's membership table) is the
  magic `PCF1`, a CRC-32 of the body, then the body.
- Reading a log file (`scan_records`) yields each record in order until the
  first bad one (a header cut short or failing its CRC, a body running past
  the end of the file or failing its CRC). That one is a *torn tail* (what a
  crash in the middle of an append leaves: unsynced, so never
  acknowledged) when no valid record starts anywhere after it in the file,
  or when its bytes hold a zero-filled piece of a 512-byte sector (a page
  the disk never got, etcd's rule). The caller cuts the file there and
  warns. Any other bad record is damage before the tail: `CorruptData`
  naming the file and the byte offset. It is never skipped and never
  applied.
- A whole file whose magic or CRC is wrong is `CorruptData` (files are
  replaced by an fsynced rename, so a crash leaves the old one or the new
  one, never a torn one).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_LEN = struct.Struct(">I")
_HEADER = struct.Struct(">III")
RECORD_HEADER_BYTES = _HEADER.size
FILE_MAGIC = b"PCF1"
_FILE_HEADER = struct.Struct(">4sI")
SECTOR_BYTES = 512


class CorruptData(Exception):
    """Durable data that fails its checksum before the tail: the node must not start on it."""

    def __init__(self, name: str, offset: int, reason: str) -> None:
        super().__init__(f"{name}: corrupt data at byte {offset}: {reason}")
        self.name = name
        self.offset = offset
        self.reason = reason


def frame_record(body: bytes) -> bytes:
    """One log record: header (length, its CRC, the body's CRC) + body."""
    n = _LEN.pack(len(body))
    return _HEADER.pack(len(body), zlib.crc32(n), zlib.crc32(body)) + body


def frame_file(body: bytes) -> bytes:
    """A whole checksummed file."""
    return _FILE_HEADER.pack(FILE_MAGIC, zlib.crc32(body)) + body


def unframe_file(data: bytes, name: str) -> bytes:
    """The body of a file made by `frame_file`, or CorruptData naming the file."""
    if len(data) < _FILE_HEADER.size:
        raise CorruptData(name, 0, f"{len(data)} bytes, shorter than the {_FILE_HEADER.size}-byte header")
    magic, crc = _FILE_HEADER.unpack_from(data)
    if magic != FILE_MAGIC:
        raise CorruptData(name, 0, f"magic {magic!r}, expected {FILE_MAGIC!r}")
    body = data[_FILE_HEADER.size :]
    if zlib.crc32(body) != crc:
        raise CorruptData(name, _FILE_HEADER.size, "checksum mismatch")
    return body


@dataclass(frozen=True, slots=True)
class Scan:
    """What a log file holds: its records' (offset, body), where the good part ends, and why it ends
    there (None when the whole file is good)."""

    records: list[tuple[int, bytes]]
    end: int
    torn: str | None


def _record_at(data: bytes, off: int) -> tuple[bytes | None, str]:
    """The body of a valid record at `off`, or None and why not."""
    if off + RECORD_HEADER_BYTES > len(data):
        return None, "header cut short by the end of the file"
    n, len_crc, body_crc = _HEADER.unpack_from(data, off)
    if zlib.crc32(data[off : off + 4]) != len_crc:
        return None, "record header checksum mismatch"
    start = off + RECORD_HEADER_BYTES
    if start + n > len(data):
        return None, f"body of {n} bytes runs past the end of the file"
    body = data[start : start + n]
    if zlib.crc32(body) != body_crc:
        return None, "record checksum mismatch"
    return body, ""


def _valid_record_after(data: bytes, off: int) -> int | None:
    """The offset of the first valid record starting after `off`, if any (the slow path: damage only)."""
    for pos in range(off + 1, len(data) - RECORD_HEADER_BYTES + 1):
        _, len_crc, _ = _HEADER.unpack_from(data, pos)
        if zlib.crc32(data[pos : pos + 4]) == len_crc and _record_at(data, pos)[0] is not None:
            return pos
    return None


def _holds_zero_sector_piece(data: bytes, off: int) -> bool:
    """Whether the bad record at `off` holds a sector-aligned piece that is all zeros (etcd's torn-write test)."""
    end = min(len(data), off + RECORD_HEADER_BYTES)
    if end - off == RECORD_HEADER_BYTES:
        n, len_crc, _ = _HEADER.unpack_from(data, off)
        if zlib.crc32(data[off : off + 4]) == len_crc:  # the length is trustworthy: the whole record
            end = min(len(data), off + RECORD_HEADER_BYTES + n)
    pos = off
    while pos < end:
        nxt = min(end, (pos // SECTOR_BYTES + 1) * SECTOR_BYTES)
        if not any(data[pos:nxt]):
            return True
        pos = nxt
    return False


def scan_records(data: bytes, name: str) -> Scan:
    """Read a log file's records (see the module rules); CorruptData for damage before the tail."""
    out: list[tuple[int, bytes]] = []
    off = 0
    while off < len(data):
        body, why = _record_at(data, off)
        if body is None:
            later = _valid_record_after(data, off)
            if later is None or _holds_zero_sector_piece(data, off):
                return Scan(out, off, why)
            raise CorruptData(name, off, f"{why}, and a valid record follows at byte {later}")
        out.append((off, body))
        off += RECORD_HEADER_BYTES + len(body)
    return Scan(out, off, None)
