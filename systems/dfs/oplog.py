"""The master's operation log and checkpoint on `rt.disk` (GFS §2.6.3).

Files:

- `master/log`: records framed as a 4-byte big-endian length then msgpack
  [seq, record]; appended, synced before any reply that depends on them.
- `master/checkpoint`: msgpack {"seq": last record it covers, "ns": Namespace.to_wire()},
  replaced whole.

Rules this module keeps:

- `append` assigns the next sequence number and writes the record at once;
  `sync` makes every record appended so far durable (concurrent callers share
  one fsync: the disk's group commit).
- `load` = the checkpoint, then every log record with a higher sequence
  number, in order. A torn last record (a crash mid-append) is cut off; a
  record the namespace refuses stops the replay there (logged by the caller).
- `checkpoint(ns)` writes and syncs a checkpoint of `ns` first, then rewrites
  the log keeping only records appended after the checkpoint's sequence
  number, then syncs the log. A crash in between leaves a checkpoint and a
  log whose older records are skipped on load. Records appended while the
  checkpoint is being synced are kept.
- `sync=False` (a switch for experiments) writes but never syncs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import msgpack

from systems.dfs.namespace import Namespace
from systems.runtime.api import Disk

LOG = "master/log"
CHECKPOINT = "master/checkpoint"
_LEN = struct.Struct(">I")


@dataclass
class Loaded:
    ns: Namespace
    seq: int
    replayed: int = 0
    torn_tail: bool = False
    refused: list[str] = field(default_factory=list)


def _frame(seq: int, rec: list[Any]) -> bytes:
    body = msgpack.packb([seq, rec], use_bin_type=True)
    return _LEN.pack(len(body)) + body


class OpLog:
    def __init__(self, disk: Disk, *, sync: bool = True) -> None:
        self.disk = disk
        self.sync_enabled = sync
        self.seq = 0
        self.records_since_checkpoint = 0
        self._tail: list[tuple[int, list[Any]]] = []
        """Records appended since the last checkpoint began (to keep when it rewrites the log)."""
        self.syncs = 0
        self.checkpoints = 0

    def load(self) -> Loaded:
        ns = Namespace()
        seq = 0
        raw = self.disk.read(CHECKPOINT)
        if raw:
            cp = msgpack.unpackb(raw, raw=False, strict_map_key=False)
            ns = Namespace.from_wire(cp["ns"])
            seq = int(cp["seq"])
        out = Loaded(ns, seq)
        data = self.disk.read(LOG) or b""
        pos = 0
        kept: list[tuple[int, list[Any]]] = []
        while pos < len(data):
            if pos + 4 > len(data):
                out.torn_tail = True
                break
            (n,) = _LEN.unpack_from(data, pos)
            if pos + 4 + n > len(data):
                out.torn_tail = True
                break
            try:
                rseq, rec = msgpack.unpackb(data[pos + 4 : pos + 4 + n], raw=False)
            except (ValueError, msgpack.UnpackException):
                out.torn_tail = True
                break
            pos += 4 + n
            if rseq <= out.seq:
                continue
            err = ns.check(rec)
            if err is not None:
                out.refused.append(f"record {rseq} {rec!r:.80}: {err}")
                pos -= 4 + n
                out.torn_tail = True
                break
            ns.apply(rec)
            out.seq = rseq
            out.replayed += 1
            kept.append((rseq, rec))
        if out.torn_tail:
            self.disk.truncate(LOG, pos)
        self.seq = out.seq
        self.records_since_checkpoint = len(kept)
        self._tail = kept
        return out

    def append(self, rec: list[Any]) -> int:
        self.disk.append(LOG, _frame(self.seq + 1, rec))  # raises before anything changes on a failing disk
        self.seq += 1
        self._tail.append((self.seq, rec))
        self.records_since_checkpoint += 1
        return self.seq

    async def sync(self) -> None:
        if self.sync_enabled:
            await self.disk.sync(LOG)
            self.syncs += 1

    async def checkpoint(self, ns: Namespace) -> None:
        covered = self.seq
        blob = msgpack.packb({"seq": covered, "ns": ns.to_wire()}, use_bin_type=True)
        self.disk.write(CHECKPOINT, blob)
        if self.sync_enabled:
            await self.disk.sync(CHECKPOINT)
        self._tail = [(s, r) for s, r in self._tail if s > covered]
        self.disk.write(LOG, b"".join(_frame(s, r) for s, r in self._tail))
        self.records_since_checkpoint = len(self._tail)
        await self.sync()
        self.checkpoints += 1

    def sizes(self) -> dict[str, int]:
        return {
            "log_bytes": len(self.disk.read(LOG) or b""),
            "checkpoint_bytes": len(self.disk.read(CHECKPOINT) or b""),
            "log_records": self.records_since_checkpoint,
        }
