"""Block checksums of a chunk (GFS §5.2): one CRC32 per `block_size` bytes.

Rules this module keeps:

- A chunk of length L has ceil(L / block_size) blocks; block i covers bytes
  [i * block_size, min((i + 1) * block_size, L)) and its checksum is the CRC32
  of exactly those bytes (the last block may be partial).
- Appending continues the last partial block's CRC from its stored value
  (`zlib.crc32(new, old)`), never recomputing it from the bytes on disk: a
  corruption already in that block stays detectable, as the paper requires.
- Overwriting recomputes the checksums of the blocks it touches, but the
  caller first verifies the partial first and last blocks (`verify_blocks`),
  so new checksums never paper over old corruption.
- Pure functions of bytes and lists: no disk, no clock.
"""

from __future__ import annotations

import zlib

DEFAULT_BLOCK_SIZE = 64 * 1024


def block_count(length: int, block_size: int) -> int:
    return (length + block_size - 1) // block_size


def blocks_overlapping(offset: int, size: int, length: int, block_size: int) -> range:
    """Indexes of the blocks of a chunk of `length` bytes that [offset, offset+size) touches."""
    end = min(offset + size, length)
    if size <= 0 or offset >= end:
        return range(0)
    return range(offset // block_size, (end - 1) // block_size + 1)


def crcs_of(data: bytes, block_size: int) -> list[int]:
    """The checksum of every block of `data`."""
    view = memoryview(data)
    return [zlib.crc32(view[i : i + block_size]) for i in range(0, len(data), block_size)]


def extend_crcs(crcs: list[int], length: int, new: bytes, block_size: int) -> list[int]:
    """The checksums after appending `new` to a chunk of `length` bytes whose checksums are `crcs`."""
    out = list(crcs)
    view = memoryview(new)
    pos = 0
    tail = length % block_size
    if tail and view:
        take = min(block_size - tail, len(view))
        out[-1] = zlib.crc32(view[:take], out[-1])
        pos = take
    while pos < len(view):
        out.append(zlib.crc32(view[pos : pos + block_size]))
        pos += block_size
    return out


def first_bad_block(data: bytes, crcs: list[int], blocks: range, block_size: int, *, base: int = 0) -> int | None:
    """The first block in `blocks` whose bytes do not match `crcs`; `data` holds the chunk from block `base` on
    (the whole chunk when 0). A block cut short in `data` (a truncated file) fails its checksum."""
    view = memoryview(data)
    for i in blocks:
        lo = (i - base) * block_size
        if i >= len(crcs) or lo < 0 or zlib.crc32(view[lo : lo + block_size]) != crcs[i]:
            return i
    return None
