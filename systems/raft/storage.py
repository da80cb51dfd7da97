"""Raft's durable state over `rt.disk`: hard state, log and snapshot.

Files:

- `meta`: msgpack {"term", "vote"}, replaced whole (atomic write).
- `log`: records of [term, index, data], each framed as a 4-byte big-endian
  length then msgpack. Appended; cut with `truncate` when a follower's
  suffix conflicts; rewritten whole after a snapshot so it stays bounded.
- `snap`: msgpack {"index", "term", "data"}, replaced whole.

Rules:

- `save` writes everything a Ready asks for, then syncs each touched file
  once (group commit: one sync covers every entry appended since the last).
  Nothing is acknowledged to anyone before `save` returns.
- Order for a snapshot: the snapshot is synced before the log is rewritten,
  so a crash in between leaves a snapshot plus a log whose older records are
  skipped on load (records at or below the snapshot index are ignored).
- Loading tolerates a torn last record (a crash mid-append) and drops it.
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

META, LOG, SNAP = "meta", "log", "snap"
_LEN = struct.Struct(">I")


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
    def __init__(self, disk: Disk, *, sync: bool = True, persist_vote: bool = True) -> None:
        self.disk = disk
        self.sync_enabled = sync
        self.persist_vote = persist_vote
        self.offsets: dict[int, int] = {}
        """Byte offset in `log` of the record holding each index."""
        self.size = 0
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
        snap_index = out.snapshot.index if out.snapshot else 0
        data = self.disk.read(LOG) or b""
        pos = 0
        entries: list[Entry] = []
        offsets: dict[int, int] = {}
        while pos < len(data):
            if pos + 4 > len(data):
                out.torn_tail = True
                break
            (n,) = _LEN.unpack_from(data, pos)
            if pos + 4 + n > len(data):
                out.torn_tail = True
                break
            e = Entry.from_wire(msgpack.unpackb(data[pos + 4 : pos + 4 + n], raw=False))
            if e.index > snap_index:
                expected = entries[-1].index + 1 if entries else snap_index + 1
                if e.index != expected:
                    # A record that does not follow: what came before it was cut away; stop here.
                    out.torn_tail = True
                    break
                entries.append(e)
                offsets[e.index] = pos
            pos += 4 + n
        if out.torn_tail:
            self.disk.truncate(LOG, pos)
        self.offsets = offsets
        self.size = pos
        out.entries = entries
        return out

    # ------------------------------------------------------------ saving
    async def save(self, hard: HardState | None, snapshot: Snapshot | None, entries: list[Entry]) -> None:
        """Persist what a Ready holds; returns once it is durable (unless the no-fsync bug is on)."""
        touched: list[str] = []
        if snapshot is not None:
            await self._write_snapshot(snapshot)
            self._rewrite_log([])
            touched.append(LOG)
        if hard is not None:
            vote = hard.vote if self.persist_vote else None
            self.disk.write(META, msgpack.packb({"term": hard.term, "vote": vote}, use_bin_type=True))
            touched.append(META)
        if entries:
            first = entries[0].index
            if first in self.offsets:
                cut = self.offsets[first]
                self.disk.truncate(LOG, cut)
                self.size = cut
                self.offsets = {i: o for i, o in self.offsets.items() if i < first}
            buf = bytearray()
            for e in entries:
                self.offsets[e.index] = self.size + len(buf)
                buf += _frame(e)
            self.disk.append(LOG, bytes(buf))
            self.size += len(buf)
            if LOG not in touched:
                touched.append(LOG)
        for name in touched:
            await self._sync(name)

    async def compact(self, snapshot: Snapshot, kept: list[Entry]) -> None:
        """Install our own snapshot and rewrite the log to hold only `kept` (entries after it)."""
        await self._write_snapshot(snapshot)
        self._rewrite_log(kept)
        await self._sync(LOG)

    async def _write_snapshot(self, snapshot: Snapshot) -> None:
        blob = msgpack.packb(
            {"index": snapshot.index, "term": snapshot.term, "data": snapshot.data}, use_bin_type=True
        )
        self.disk.write(SNAP, blob)
        await self._sync(SNAP)

    def _rewrite_log(self, kept: list[Entry]) -> None:
        buf = bytearray()
        self.offsets = {}
        for e in kept:
            self.offsets[e.index] = len(buf)
            buf += _frame(e)
        self.disk.write(LOG, bytes(buf))
        self.size = len(buf)

    async def _sync(self, name: str) -> None:
        if self.sync_enabled:
            await self.disk.sync(name)
            self.syncs += 1

    def sizes(self) -> dict[str, int]:
        snap = self.disk.read(SNAP)
        return {"log_bytes": self.size, "log_records": len(self.offsets), "snapshot_bytes": len(snap or b"")}
