"""A chunkserver's replicas on `rt.disk`: data, version and block checksums.

Files, per chunk handle H:

- `chunks/H.dat`: the chunk's bytes.
- `chunks/H.meta`: a log of checksummed records (api.frame_record), each
  msgpack {"v": version, "len": length, "from": block, "crc": [CRC32, ...]}:
  the replica's version and length, and the checksums of every block from
  `from` on (the blocks before it keep their earlier checksums). Appended
  after each mutation; rewritten whole as one record once it grows past
  `META_COMPACT_BYTES` (and on create and clone).

Rules this module keeps:

- Every mutation writes the data, syncs it, then appends the meta record and
  syncs that; `apply` returns only once both are durable (what a chunkserver
  acknowledges survives a crash). A batch of operations costs two fsyncs,
  and appending the meta never needs the directory synced again.
- A crash between the two syncs leaves a data file longer than its meta says
  (an append): `load` cuts it back to the meta's length, so the checksums
  still match; a torn last meta record (api.scan_records's rule: the file
  ends inside it) is cut. A data file shorter than its meta, a meta with no
  whole record, or a damaged meta (a record failing its checksum before the
  tail, or whose checksum matches but that does not decode) marks the
  replica damaged, and neither file is cut: the replica is reported as
  corrupt, never served and replaced from another (GFS §5.2), and the
  chunkserver goes on serving its other replicas. A damaged record is never
  applied, and never cut away as if it were a torn tail (that would
  silently roll the replica back past acknowledged mutations). (An overwrite whose meta did not make
  it leaves checksums that no longer match: the replica reads as corrupt
  and is replaced, never served wrong.)
- Reads fetch from disk only the whole blocks they touch (never the whole
  chunk) and verify the checksum of every one of them before returning a
  byte (`ChunkCorrupt` otherwise); overwrites verify the partial first and
  last blocks they touch before recomputing them. `verify=False` (the
  `no-checksum` planted bug) skips every verification.
- Writes past the end fill the gap with zeros (a replica that missed a
  failed mutation): the zeros are checksummed like any data.
- A disk error (`OSError`: EIO, ENOSPC) in a mutation marks the replica
  `failed` before it reaches the caller: part of the mutation may be in the
  file, in memory or nowhere, so the replica's bytes may differ from its
  peers' and from its own checksums. A failed replica serves no read (even
  with `verify=False`), takes no mutation and no new version
  (`ReplicaFailed`) until it is replaced whole by `install` or deleted. It
  is not remembered across a restart: `load` then finds only what was
  synced, which the rules above repair or mark damaged.
- Offsets and sizes are validated by the caller against the chunk size;
  this module asserts them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from systems.dfs.checksums import blocks_overlapping, crcs_of, extend_crcs, first_bad_block
from systems.runtime.api import CorruptData, Disk, frame_record, scan_records

PREFIX = "chunks/"
META_COMPACT_BYTES = 64 * 1024


class ChunkMissing(KeyError):
    """This chunkserver holds no replica of the chunk."""


class ReplicaFailed(RuntimeError):
    """A write or sync of this replica failed earlier: it may hold anything, so it is not used."""

    def __init__(self, handle: int) -> None:
        super().__init__(f"chunk {handle}: a disk write or sync of this replica failed; it awaits replacement")
        self.handle = handle


class ChunkCorrupt(ValueError):
    """A block's bytes do not match its checksum."""

    def __init__(self, handle: int, block: int) -> None:
        super().__init__(f"chunk {handle}: block {block} fails its checksum")
        self.handle = handle
        self.block = block


@dataclass
class Replica:
    version: int
    length: int = 0
    crcs: list[int] = field(default_factory=list)
    damaged: bool = False
    failed: bool = False
    """A disk write or sync of it failed (see the module rules)."""
    dirty_from: int | None = None
    """The first block whose checksum changed since the last meta record."""
    meta_bytes: int = 0

    def touch(self, block: int) -> None:
        self.dirty_from = block if self.dirty_from is None else min(self.dirty_from, block)

    def record(self, start: int) -> bytes:
        body = msgpack.packb({"v": self.version, "len": self.length, "from": start, "crc": self.crcs[start:]},
                             use_bin_type=True)
        return frame_record(body)


def data_name(handle: int) -> str:
    return f"{PREFIX}{handle}.dat"


def meta_name(handle: int) -> str:
    return f"{PREFIX}{handle}.meta"


Op = tuple[str, int, bytes]
"""("w", offset, data) writes data at offset; ("p", size, b"") pads with zeros up to size."""


class ChunkStore:
    def __init__(self, disk: Disk, *, block_size: int, verify: bool = True) -> None:
        self.disk = disk
        self.block_size = block_size
        self.verify = verify
        self.replicas: dict[int, Replica] = {}
        self.syncs = 0

    # ------------------------------------------------------------ loading
    def load(self) -> list[str]:
        """Read every replica's meta; repair torn appends. Returns what was found wrong, for the log."""
        notes: list[str] = []
        for name in self.disk.list(PREFIX):
            if not name.endswith(".meta"):
                continue
            try:
                handle = int(name[len(PREFIX) : -len(".meta")])
            except ValueError:
                notes.append(f"{name}: not a chunk meta")
                continue
            raw = self.disk.read(name) or b""
            try:
                rep = read_meta(raw, name)
            except CorruptData as e:
                self.replicas[handle] = Replica(version=0, damaged=True)
                notes.append(f"chunk {handle}: damaged meta, the replica is damaged: {e}")
                continue
            if rep is None:
                self.replicas[handle] = Replica(version=0, damaged=True)
                notes.append(f"chunk {handle}: unreadable meta")
                continue
            if rep.meta_bytes < len(raw):
                self.disk.truncate(name, rep.meta_bytes)
                notes.append(f"chunk {handle}: cut a torn meta record at byte {rep.meta_bytes}")
            data = self.disk.read(data_name(handle))
            size = len(data) if data is not None else -1
            if size > rep.length:
                self.disk.truncate(data_name(handle), rep.length)
                notes.append(f"chunk {handle}: cut a torn tail of {size - rep.length} bytes")
            elif size < rep.length:
                rep.damaged = True
                notes.append(f"chunk {handle}: data holds {max(size, 0)} of {rep.length} bytes")
            self.replicas[handle] = rep
        return notes

    # ------------------------------------------------------------ queries
    def has(self, handle: int) -> bool:
        return handle in self.replicas

    def get(self, handle: int) -> Replica:
        rep = self.replicas.get(handle)
        if rep is None:
            raise ChunkMissing(handle)
        return rep

    def handles(self) -> list[int]:
        return sorted(self.replicas)

    def read(self, handle: int, offset: int, size: int) -> bytes:
        """Bytes [offset, offset+size) cut at the chunk's length, every touched block verified."""
        rep = self.get(handle)
        if rep.failed:
            raise ReplicaFailed(handle)
        if rep.damaged and self.verify:
            raise ChunkCorrupt(handle, 0)
        if offset >= rep.length or size <= 0:
            return b""
        blocks = blocks_overlapping(offset, size, rep.length, self.block_size)
        start = blocks.start * self.block_size  # whole blocks only: each is verified before a byte leaves
        end = min(blocks.stop * self.block_size, rep.length)
        data = self.disk.read_range(data_name(handle), start, end - start) or b""
        if self.verify:
            bad = first_bad_block(data, rep.crcs, blocks, self.block_size, base=blocks.start)
            if bad is not None:
                raise ChunkCorrupt(handle, bad)
        return data[offset - start : min(offset + size, rep.length) - start]

    def bad_block(self, handle: int) -> int | None:
        """The first block that fails its checksum (always checked, whatever `verify` says)."""
        rep = self.get(handle)
        if rep.damaged or rep.failed:
            return 0
        data = self.disk.read(data_name(handle)) or b""
        if len(data) < rep.length:
            return len(data) // self.block_size
        return first_bad_block(data, rep.crcs, range(len(rep.crcs)), self.block_size)

    # ------------------------------------------------------------ mutations
    async def create(self, handle: int, version: int) -> None:
        rep = self.replicas[handle] = Replica(version=version)
        with _fails(rep):
            self.disk.write(data_name(handle), b"")
            await self._persist(handle, whole=True)

    async def set_version(self, handle: int, version: int) -> None:
        rep = self._usable(handle)
        with _fails(rep):
            rep.version = version
            await self._persist(handle, data=False)

    async def install(self, handle: int, version: int, data: bytes) -> None:
        """Replace the replica whole (a clone): checksums computed from the bytes received."""
        rep = Replica(version=version, length=len(data), crcs=crcs_of(data, self.block_size))
        self.replicas[handle] = rep
        with _fails(rep):
            self.disk.write(data_name(handle), data)
            await self._persist(handle, whole=True)

    async def apply(self, handle: int, ops: list[Op]) -> int:
        """Apply writes and pads in order, then make them durable. Returns the new length."""
        rep = self._usable(handle)
        with _fails(rep):
            for kind, arg, data in ops:
                if kind == "w":
                    self._write(handle, rep, arg, data)
                elif kind == "p" and arg > rep.length:
                    self._append(handle, rep, bytes(arg - rep.length))
            await self._persist(handle)
        return rep.length

    def delete(self, handle: int) -> None:
        self.replicas.pop(handle, None)
        self.disk.delete(data_name(handle))
        self.disk.delete(meta_name(handle))

    # ------------------------------------------------------------ internals
    def _usable(self, handle: int) -> Replica:
        rep = self.get(handle)
        if rep.failed:
            raise ReplicaFailed(handle)
        return rep

    def _write(self, handle: int, rep: Replica, offset: int, data: bytes) -> None:
        assert offset >= 0
        if offset > rep.length:
            self._append(handle, rep, bytes(offset - rep.length))
        if offset == rep.length:
            self._append(handle, rep, data)
        else:
            self._overwrite(handle, rep, offset, data)

    def _append(self, handle: int, rep: Replica, data: bytes) -> None:
        if not data:
            return
        self.disk.append(data_name(handle), data)
        rep.touch(max(0, len(rep.crcs) - 1) if rep.length % self.block_size else len(rep.crcs))
        rep.crcs = extend_crcs(rep.crcs, rep.length, data, self.block_size)
        rep.length += len(data)

    def _overwrite(self, handle: int, rep: Replica, offset: int, data: bytes) -> None:
        bs = self.block_size
        content = bytearray(self.disk.read(data_name(handle)) or b"")
        end = offset + len(data)
        if self.verify:
            edges = []
            if offset % bs:
                edges.append(offset // bs)
            if end % bs and end < rep.length:
                edges.append(end // bs)
            for i in edges:
                bad = first_bad_block(bytes(content), rep.crcs, range(i, i + 1), bs)
                if bad is not None:
                    raise ChunkCorrupt(handle, bad)
        content[offset:end] = data
        first, last = offset // bs, (end - 1) // bs
        rep.touch(first)
        fresh = crcs_of(bytes(content[first * bs : (last + 1) * bs]), bs)
        rep.crcs = rep.crcs[:first] + fresh + rep.crcs[last + 1 :]
        rep.length = len(content)
        self.disk.write(data_name(handle), bytes(content))

    async def _persist(self, handle: int, *, whole: bool = False, data: bool = True) -> None:
        """Make the data durable, then the meta: a new record, or the whole meta rewritten as one."""
        rep = self.get(handle)
        if data:
            await self.disk.sync(data_name(handle))
            self.syncs += 1
        start = len(rep.crcs) if rep.dirty_from is None else rep.dirty_from
        if whole or rep.meta_bytes >= META_COMPACT_BYTES:
            record = rep.record(0)
            self.disk.write(meta_name(handle), record)
            rep.meta_bytes = len(record)
        else:
            record = rep.record(start)
            self.disk.append(meta_name(handle), record)
            rep.meta_bytes += len(record)
        rep.dirty_from = None
        await self.disk.sync(meta_name(handle))
        self.syncs += 1


@contextlib.contextmanager
def _fails(rep: Replica) -> Iterator[None]:
    """Mark `rep` failed when a disk error escapes the block (the error goes on to the caller)."""
    try:
        yield
    except OSError:
        rep.failed = True
        raise


def decode_meta(raw: bytes | None) -> Replica | None:
    """The replica the meta log describes (None when it holds no whole, valid record, or is damaged)."""
    try:
        return read_meta(raw or b"", "meta")
    except CorruptData:
        return None


def read_meta(raw: bytes, name: str) -> Replica | None:
    """The replica the meta log describes, its `meta_bytes` where the good part ends (a torn tail
    after it is the caller's to cut); None when it holds no whole record; CorruptData naming the
    file and offset when a record before the tail is damaged or does not decode."""
    scan = scan_records(raw, name)
    rep: Replica | None = None
    for off, body in scan.records:
        try:
            m: Any = msgpack.unpackb(body, raw=False)
        except (ValueError, msgpack.UnpackException):
            raise CorruptData(name, off, "checksum matches but the record does not decode") from None
        v, length, start, crc = (m.get(k) for k in ("v", "len", "from", "crc")) if isinstance(m, dict) else (None,) * 4
        if not (type(v) is int and type(length) is int and type(start) is int and isinstance(crc, list)):
            raise CorruptData(name, off, "checksum matches but the record is not a replica's meta")
        if not all(type(c) is int for c in crc) or (rep is None and start != 0):
            raise CorruptData(name, off, "checksum matches but the record's checksums do not follow on")
        crcs = (rep.crcs[:start] if rep is not None else []) + list(crc)
        rep = Replica(version=v, length=length, crcs=crcs)
    if rep is not None:
        rep.meta_bytes = scan.end
    return rep
