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
  acknowledged) when the file ends inside it (its header cut short, or a
  sound header whose body runs past the end), or when its bytes hold a
  zero-filled piece of a 512-byte sector (a page the disk never got: etcd's
  rule). The caller cuts the file there and warns. Any other bad record,
  the last one included, is damage: `CorruptData` naming the file and the
  byte offset, never skipped, never applied, never cut away (a record whose
  bytes are all there was written whole, may have been synced and
  acknowledged, and a node that silently lost an acknowledged Raft entry
  could later elect a leader without a committed one).
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


def _record_at(data: bytes, off: int) -> tuple[bytes | None, str, bool]:
    """The body of a valid record at `off`, or None, why not, and whether the file ends inside it."""
    if off + RECORD_HEADER_BYTES > len(data):
        return None, "header cut short by the end of the file", True
    n, len_crc, body_crc = _HEADER.unpack_from(data, off)
    if zlib.crc32(data[off : off + 4]) != len_crc:
        return None, "record header checksum mismatch", False
    start = off + RECORD_HEADER_BYTES
    if start + n > len(data):
        return None, f"body of {n} bytes runs past the end of the file", True
    body = data[start : start + n]
    if zlib.crc32(body) != body_crc:
        return None, "record checksum mismatch", False
    return body, "", False


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
        body, why, cut_short = _record_at(data, off)
        if body is None:
            if cut_short:
                return Scan(out, off, why)
            if _holds_zero_sector_piece(data, off):
                return Scan(out, off, f"{why} (a zero-filled sector: a write the disk never got)")
            raise CorruptData(name, off, why)
        out.append((off, body))
        off += RECORD_HEADER_BYTES + len(body)
    return Scan(out, off, None)
