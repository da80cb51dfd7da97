"""Raft's durable state over `rt.disk`: hard state, a segmented log, and a snapshot.

Files:

- `meta`: msgpack {"term", "vote"}, replaced whole (atomic write).
- `log/<first index, 20 digits>`: log segments. Each holds records of
  [term, index, data], each framed as a 4-byte big-endian length then
  msgpack, for consecutive indexes starting at the one in its name. Only the
  last segment is appended to; a new one is started once it holds
  `segment_entries` records or `segment_bytes` bytes.
- `snap`: msgpack {"index", "term", "data"}, replaced whole.

Rules:

- The hot path only appends: `save` appends the new entries to the last
  segment (cutting it, and dropping later segments, when a follower's
  suffix conflicts), then syncs each touched file once (group commit: one
  sync covers every entry appended since the last). Nothing is
  acknowledged to anyone before `save` returns.
- Nothing is rewritten whole on the hot path: compaction (`compact`, after
  our own snapshot) writes the snapshot, syncs it, then deletes the
  segments whose every entry it covers; the node runs it in the background.
  A crash before the deletes leaves a snapshot plus segments whose older
  records are skipped on load (records at or below the snapshot index are
  ignored).
- An installed snapshot (from the leader) is synced before the segments it
  replaces are deleted. A crash in between may leave records after the
  snapshot from the replaced log; terms in a log never decrease, so loading
  stops at the first record whose term is below its predecessor's (or the
  snapshot's): those records were cut away.
- Loading tolerates a torn last record (a crash mid-append) and drops it,
  and everything after a record that does not follow its predecessor.
- Planted bugs: `sync=False` (no-fsync) writes but never syncs;
  `persist_vote=False` (double-vote) never records votedFor.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import msgpack

from systems.raft.core import HardState
from systems.raft.log import Entry, Snapshot
from systems.runtime.api import Disk

META, SNAP, LOG_DIR = "meta", "snap", "log/"
_LEN = struct.Struct(">I")

SEGMENT_ENTRIES = 1024
SEGMENT_BYTES = 4 * 1024 * 1024


def segment_name(first_index: int) -> str:
    return f"{LOG_DIR}{first_index:020d}"


@dataclass
class Segment:
    """One log file: records for indexes first .. first + len(offsets) - 1."""

    first: int
    offsets: list[int] = field(default_factory=list)
    """Byte offset of each record, in index order."""
    size: int = 0

    @property
    def name(self) -> str:
        return segment_name(self.first)

    @property
    def last(self) -> int:
        """The last index held (first - 1 when empty)."""
        return self.first + len(self.offsets) - 1


@dataclass
class Loaded:
    hard: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)
    torn_tail: bool = False


def _frame(e: Entry) -> bytes:
    body = msgpack.packb(e.to_wire(), use_bin_type=True)
    return _LEN.pack(len(body)) + body


class RaftStorage:
    def __init__(
        self,
        disk: Disk,
        *,
        sync: bool = True,
        persist_vote: bool = True,
        segment_entries: int = SEGMENT_ENTRIES,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.disk = disk
        self.sync_enabled = sync
        self.persist_vote = persist_vote
        self.segment_entries = max(1, segment_entries)
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []
        self.snapshot_index = 0
        self.snapshot_bytes = 0
        self.syncs = 0

    # ------------------------------------------------------------ loading
    def load(self) -> Loaded:
        out = Loaded()
        raw = self.disk.read(META)
        if raw:
            m = msgpack.unpackb(raw, raw=False)
            out.hard = HardState(int(m["term"]), m.get("vote"))
        raw = self.disk.read(SNAP)
        if raw:
            s = msgpack.unpackb(raw, raw=False)
            out.snapshot = Snapshot(int(s["index"]), int(s["term"]), s["data"])
            self.snapshot_bytes = len(raw)
        snap_index = out.snapshot.index if out.snapshot else 0
        last_term = out.snapshot.term if out.snapshot else 0
        self.snapshot_index = snap_index
        entries: list[Entry] = []
        self.segments = []
        names = self.disk.list(LOG_DIR)
        for pos, name in enumerate(names):
            try:
                first = int(name[len(LOG_DIR) :])
            except ValueError:
                continue  # not ours
            seg = Segment(first)
            data = self.disk.read(name) or b""
            expected = entries[-1].index + 1 if entries else None
            off, cut = 0, False
            index = first
            while off < len(data):
                if off + 4 > len(data) or off + 4 + _LEN.unpack_from(data, off)[0] > len(data):
                    cut = True  # a torn record: the crash came mid-append
                    break
                (n,) = _LEN.unpack_from(data, off)
                e = Entry.from_wire(msgpack.unpackb(data[off + 4 : off + 4 + n], raw=False))
                if e.index != index:
                    cut = True  # not the record this segment should hold next
                    break
                if e.index > snap_index:
                    follows = e.index == (expected if expected is not None else snap_index + 1)
                    if not follows or e.term < last_term:
                        cut = True  # a gap, or a record of a log the snapshot replaced
                        break
                    entries.append(e)
                    last_term = e.term
                    expected = e.index + 1
                seg.offsets.append(off)
                off += 4 + n
                index += 1
            seg.size = off
            self.segments.append(seg)
            if cut:
                out.torn_tail = True
                self.disk.truncate(name, off)
                for later in names[pos + 1 :]:
                    self.disk.delete(later)
                break
        out.entries = entries
        return out

    # ------------------------------------------------------------ saving
    async def save(self, hard: HardState | None, snapshot: Snapshot | None, entries: list[Entry]) -> None:
        """Persist what a Ready holds; returns once it is durable (unless the no-fsync bug is on)."""
        touched: list[str] = []
        if snapshot is not None:
            await self._install_snapshot(snapshot)
        if hard is not None:
            vote = hard.vote if self.persist_vote else None
            self.disk.write(META, msgpack.packb({"term": hard.term, "vote": vote}, use_bin_type=True))
            touched.append(META)
        if entries:
            self._cut(entries[0].index)
            for name in self._append(entries):
                if name not in touched:
                    touched.append(name)
        for name in touched:
            await self._sync(name)

    def _cut(self, index: int) -> None:
        """Drop every record at `index` and after (a conflicting suffix)."""
        while self.segments and self.segments[-1].first > index:
            self.disk.delete(self.segments.pop().name)
        if self.segments and self.segments[-1].last >= index:
            seg = self.segments[-1]
            keep = index - seg.first
            seg.size = seg.offsets[keep]
            del seg.offsets[keep:]
            self.disk.truncate(seg.name, seg.size)

    def _append(self, entries: list[Entry]) -> list[str]:
        """Append consecutive entries, starting new segments as they fill; the names touched."""
        touched: list[str] = []
        buf = bytearray()
        seg = self._tail_for(entries[0].index)
        for e in entries:
            if seg.offsets and (len(seg.offsets) >= self.segment_entries or seg.size >= self.segment_bytes):
                if buf:
                    self.disk.append(seg.name, bytes(buf))
                    buf = bytearray()
                seg = Segment(e.index)
                self.segments.append(seg)
            if seg.name not in touched:
                touched.append(seg.name)
            frame = _frame(e)
            seg.offsets.append(seg.size)
            seg.size += len(frame)
            buf += frame
        if buf:
            self.disk.append(seg.name, bytes(buf))
        return touched

    def _tail_for(self, index: int) -> Segment:
        """The segment the record for `index` goes to (a new one when the last does not end at index - 1)."""
        if self.segments and self.segments[-1].last == index - 1:
            return self.segments[-1]
        # After an installed snapshot or at the very start: a fresh segment beginning at `index`.
        seg = Segment(index)
        self.disk.truncate(seg.name, 0)  # a stale file of that name (from a cut log) must not linger
        self.segments.append(seg)
        return seg

    async def _install_snapshot(self, snapshot: Snapshot) -> None:
        """A leader's snapshot replaces our whole log: sync it, then drop every segment."""
        await self._write_snapshot(snapshot)
        for seg in self.segments:
            self.disk.delete(seg.name)
        self.segments = []

    async def compact(self, snapshot: Snapshot) -> None:
        """Install our own snapshot, then delete the segments it covers entirely. Run in the background."""
        if snapshot.index <= self.snapshot_index:
            return
        await self._write_snapshot(snapshot)
        while len(self.segments) > 1 and self.segments[0].last <= snapshot.index:
            self.disk.delete(self.segments.pop(0).name)

    async def _write_snapshot(self, snapshot: Snapshot) -> None:
        blob = msgpack.packb(
            {"index": snapshot.index, "term": snapshot.term, "data": snapshot.data}, use_bin_type=True
        )
        self.disk.write(SNAP, blob)
        self.snapshot_index = snapshot.index
        self.snapshot_bytes = len(blob)
        await self._sync(SNAP)

    async def _sync(self, name: str) -> None:
        if self.sync_enabled:
            await self.disk.sync(name)
            self.syncs += 1

    def log_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def sizes(self) -> dict[str, int]:
        return {
            "log_bytes": self.log_bytes(),
            "log_records": sum(len(s.offsets) for s in self.segments),
            "log_segments": len(self.segments),
            "snapshot_bytes": self.snapshot_bytes,
        }
