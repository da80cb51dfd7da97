"""The master's operation log and checkpoint on `rt.disk` (GFS §2.6.3).

Files (checksummed like every system's durable state: api.frame_record / frame_file):

- `master/log`: records, each api.frame_record(msgpack [seq, record]);
  appended, synced before any reply that depends on them.
- `master/checkpoint`: api.frame_file(msgpack {"seq": last record it covers,
  "ns": Namespace.to_wire()}), replaced whole.

Rules this module keeps:

- `append` assigns the next sequence number and writes the record at once;
  `sync` makes every record appended so far durable (concurrent callers share
  one fsync: the disk's group commit).
- `load` = the checkpoint, then every log record with a higher sequence
  number, in order. A torn tail (a crash mid-append: api.scan_records's
  rule) is cut off and said in `cut` (file, offset, why) for the master to
  log. Anything else wrong is `CorruptData` naming the file and the byte
  offset, and the master does not start: a checkpoint failing its checksum
  or not decoding, a damaged record before the tail, a record whose
  checksum matches but that does not decode or that the namespace refuses
  (every record was checked before it was written). A damaged record is
  never applied and never silently dropped (it may be an acknowledged
  create).
- `checkpoint(ns)` writes and syncs a checkpoint of `ns` first, then rewrites
  the log keeping only records appended after the checkpoint's sequence
  number, then syncs the log. A crash in between leaves a checkpoint and a
  log whose older records are skipped on load. Records appended while the
  checkpoint is being synced are kept.
- `sync=False` (a switch for experiments) writes but never syncs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from systems.dfs.namespace import Namespace
from systems.runtime.api import CorruptData, Disk, frame_file, frame_record, scan_records, unframe_file

LOG = "master/log"
CHECKPOINT = "master/checkpoint"


@dataclass
class Loaded:
    ns: Namespace
    seq: int
    replayed: int = 0
    torn_tail: bool = False
    cut: dict[str, Any] | None = None
    """Where a torn tail was cut: {"file", "offset", "why"}."""


def _frame(seq: int, rec: list[Any]) -> bytes:
    return frame_record(msgpack.packb([seq, rec], use_bin_type=True))


def _checkpoint(raw: bytes) -> tuple[int, Namespace]:
    body = unframe_file(raw, CHECKPOINT)
    try:
        cp = msgpack.unpackb(body, raw=False, strict_map_key=False)
        return int(cp["seq"]), Namespace.from_wire(cp["ns"])
    except Exception as e:  # the checksum matched, so these are not bits the disk flipped: still, never start on it
        raise CorruptData(CHECKPOINT, 0, f"checksum matches but the checkpoint does not decode: {e!r:.80}") from None


def _record(body: bytes, off: int) -> tuple[int, list[Any]]:
    try:
        rseq, rec = msgpack.unpackb(body, raw=False)
    except Exception as e:
        raise CorruptData(LOG, off, f"checksum matches but the record does not decode: {e!r:.80}") from None
    if type(rseq) is not int or not isinstance(rec, list):
        raise CorruptData(LOG, off, "checksum matches but the record is not [seq, record]")
    return rseq, rec


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
        """The namespace the checkpoint and the log hold (see the module rules); CorruptData on damage."""
        ns = Namespace()
        seq = 0
        raw = self.disk.read(CHECKPOINT)
        if raw:
            seq, ns = _checkpoint(raw)
        out = Loaded(ns, seq)
        scan = scan_records(self.disk.read(LOG) or b"", LOG)
        kept: list[tuple[int, list[Any]]] = []
        for off, body in scan.records:
            rseq, rec = _record(body, off)
            if rseq <= out.seq:
                continue
            err = ns.check(rec)
            if err is not None:
                raise CorruptData(LOG, off, f"checksum matches but record {rseq} does not apply: {err}")
            ns.apply(rec)
            out.seq = rseq
            out.replayed += 1
            kept.append((rseq, rec))
        if scan.torn is not None:
            self.disk.truncate(LOG, scan.end)
            out.torn_tail = True
            out.cut = {"file": LOG, "offset": scan.end, "why": scan.torn}
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
        blob = frame_file(msgpack.packb({"seq": covered, "ns": ns.to_wire()}, use_bin_type=True))
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
