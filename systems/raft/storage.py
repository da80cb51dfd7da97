"""Raft's durable state over `rt.disk`: hard state, a segmented log, and a snapshot.

Files (every one checksummed, api.frame_record / api.frame_file):

- `meta`: msgpack {"term", "vote"} as a checksummed file, replaced whole
  (atomic write).
- `log/<first index, 20 digits>`: log segments. Each holds checksummed
  records of msgpack [term, index, data], for consecutive indexes starting
  at the one in its name. Only the last segment is appended to; a new one
  is started once it holds `segment_entries` records or `segment_bytes`
  bytes, and only after the full one is synced (so a crash can tear only
  the segment being appended to).
- `snap`: msgpack {"index", "term", "data"} as a checksummed file, replaced
  whole.

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
- Loading cuts a torn tail (a crash mid-append: api.scan_records's rule)
  with a warning naming the file and offset, and drops everything after a
  record that does not follow its predecessor. Damage before the tail, a
  checksum-valid record that is not a log entry, or a meta or snapshot
  file that fails its checksum is `CorruptData` naming the file and
  offset: the node refuses to start rather than apply it. A term or index
  outside 0..INT_MAX on disk is damage too.
- Planted bugs: `sync=False` (no-fsync) writes but never syncs;
  `persist_vote=False` (double-vote) never records votedFor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from systems.raft.core import HardState
from systems.raft.log import Entry, Snapshot
from systems.runtime.api import INT_MAX, CorruptData, Disk, frame_file, frame_record, scan_records, unframe_file

META, SNAP, LOG_DIR = "meta", "snap", "log/"

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
    cuts: list[dict[str, Any]] = field(default_factory=list)
    """What loading cut away: {file, offset, why} for each torn tail or stale record."""


def _frame(e: Entry) -> bytes:
    return frame_record(msgpack.packb(e.to_wire(), use_bin_type=True))


def _int(v: Any) -> bool:
    return type(v) is int and 0 <= v <= INT_MAX


def _read_file(disk: Disk, name: str) -> dict[str, Any] | None:
    raw = disk.read(name)
    if raw is None:
        return None
    body = unframe_file(raw, name)
    try:
        doc = msgpack.unpackb(body, raw=False)
    except Exception as e:  # msgpack raises several unrelated types
        raise CorruptData(name, 0, f"checksum matches but the content does not decode: {e}") from None
    if not isinstance(doc, dict):
        raise CorruptData(name, 0, "not a map")
    return doc


def _entry(body: bytes, name: str, off: int) -> Entry:
    try:
        w = msgpack.unpackb(body, raw=False)
        term, index, data = w
    except Exception:  # msgpack errors, or not a 3-element array
        raise CorruptData(name, off, "checksum matches but the record is not a log entry") from None
    if not (_int(term) and _int(index) and (data is None or isinstance(data, bytes))):
        raise CorruptData(name, off, f"log entry out of range: term {term!r}, index {index!r}")
    return Entry(term, index, data)


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
        """Read what is on disk (see the module rules). Raises CorruptData for damage before a tail."""
        out = Loaded()
        m = _read_file(self.disk, META)
        if m is not None:
            term, vote = m.get("term"), m.get("vote")
            if not _int(term) or not (vote is None or isinstance(vote, str)):
                raise CorruptData(META, 0, f"hard state out of range: term {term!r}, vote {vote!r}")
            out.hard = HardState(term, vote)
        s = _read_file(self.disk, SNAP)
        if s is not None:
            index, term, data = s.get("index"), s.get("term"), s.get("data")
            if not (_int(index) and _int(term) and isinstance(data, bytes)):
                raise CorruptData(SNAP, 0, f"snapshot header out of range: index {index!r}, term {term!r}")
            out.snapshot = Snapshot(index, term, data)
            self.snapshot_bytes = len(self.disk.read(SNAP) or b"")
        snap_index = out.snapshot.index if out.snapshot else 0
        last_term = out.snapshot.term if out.snapshot else 0
        self.snapshot_index = snap_index
        entries: list[Entry] = []
        self.segments = []
        names = [n for n in self.disk.list(LOG_DIR) if n[len(LOG_DIR) :].isdigit()]
        for pos, name in enumerate(names):
            first = int(name[len(LOG_DIR) :])
            seg = Segment(first)
            scan = scan_records(self.disk.read(name) or b"", name)
            expected = entries[-1].index + 1 if entries else None
            cut: tuple[int, str] | None = (scan.end, f"torn tail: {scan.torn}") if scan.torn else None
            index = first
            for off, body in scan.records:
                e = _entry(body, name, off)
                if e.index != index:
                    cut = (off, f"record holds index {e.index}, expected {index}")
                    break
                if e.index > snap_index:
                    follows = e.index == (expected if expected is not None else snap_index + 1)
                    if not follows or e.term < last_term:
                        cut = (off, "a gap, or a record of a log the snapshot replaced")
                        break
                    entries.append(e)
                    last_term = e.term
                    expected = e.index + 1
                seg.offsets.append(off)
                index += 1
            seg.size = cut[0] if cut is not None else scan.end
            self.segments.append(seg)
            if cut is not None:
                out.torn_tail = True
                out.cuts.append({"file": name, "offset": cut[0], "why": cut[1], "dropped_files": names[pos + 1 :]})
                self.disk.truncate(name, seg.size)
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
            self.disk.write(META, frame_file(msgpack.packb({"term": hard.term, "vote": vote}, use_bin_type=True)))
            touched.append(META)
        if entries:
            self._cut(entries[0].index)
            chunks = self._append(entries)
            for i, (name, data) in enumerate(chunks):
                self.disk.append(name, data)
                if i < len(chunks) - 1:
                    await self._sync(name)  # a full segment is whole on disk before the next one begins
            touched.append(chunks[-1][0])
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

    def _append(self, entries: list[Entry]) -> list[tuple[str, bytes]]:
        """Lay consecutive entries out over segments, starting new ones as they fill; returns what to
        append to which segment, in order (the caller writes it)."""
        chunks: list[tuple[str, bytes]] = []
        buf = bytearray()
        seg = self._tail_for(entries[0].index)
        for e in entries:
            if seg.offsets and (len(seg.offsets) >= self.segment_entries or seg.size >= self.segment_bytes):
                if buf:
                    chunks.append((seg.name, bytes(buf)))
                    buf = bytearray()
                seg = Segment(e.index)
                self.segments.append(seg)
            frame = _frame(e)
            seg.offsets.append(seg.size)
            seg.size += len(frame)
            buf += frame
        chunks.append((seg.name, bytes(buf)))
        return chunks

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
        blob = frame_file(msgpack.packb(
            {"index": snapshot.index, "term": snapshot.term, "data": snapshot.data}, use_bin_type=True
        ))
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
