"""One node's durable copy of the keys it has seen, and its hints: a write-ahead log with group commit.

Rules this module keeps:

- Everything lives in memory and in a log of records, in segment files
  "wal/<n, 12 digits>"; only the last segment is appended to. A record is a
  checksummed record (api.frame_record) of msgpack `[kind, a, b]`:
  `["k", key, {"v": state, "o": owned}]` a key's whole `Versioned` state and
  its `owned` flag (the node replicated the key as a member of its
  preference list and has not yet handed it to new owners);
  `["x", key, state]` the state held for another node (sloppy quorum);
  `["h", node, key]` a hint added; `["d", node, key]` a hint delivered.
  Replaying the segments in order rebuilds the state: a later record of a
  key replaces an earlier one (each holds the whole state).
- A change is installed in memory and appended with no await in between, so
  concurrent writes to one key serialise; then the segment is synced before
  the change is acknowledged. Concurrent changes share fsyncs (group commit:
  the disk's sync covers every append made before it started).
- Records are never forgotten: a node keeps the clock of every key it has
  seen, so it never issues the same dot twice (see vclock.py), and a stale
  copy is harmless because merging is idempotent.
- A dot this node issued leaves it only once durable: `shippable(key)` is
  false and `get_durable(key)` waits while the key's latest own write
  (`update`) is not yet synced. A state read during that fsync and sent on
  (to a client as a read context, to a peer by fetch, read repair,
  anti-entropy or handoff) would outlive a crash that lost the record, and
  the restarted node would issue the same dot again for another value: two
  values under one dot, or a context that covers a write its holder never
  saw. (Dots of other nodes' writes are their issuers' to make durable.)
- Writes taken as a stand-in for another node (sloppy quorum) go to "x"
  records, never into the key's own record: the node does not replicate
  that key, and the data must reach its owners by hinted handoff.
- A hint says: this node holds a write meant for <node>, which must be
  delivered to it. It is synced before the write it belongs to is
  acknowledged; a delivered hint is logged unsynced (a hint brought back by
  a crash is delivered again, harmlessly).
- Compaction (`compact`, run by the node in the background once the log is
  `COMPACT_RATIO` times its live size and at least `COMPACT_MIN_BYTES`):
  the live state is written as the first records of a new segment, which is
  synced, and only then are the older segments deleted. Nothing is ever
  rewritten in place.
- Loading cuts a segment at a torn tail (a crash mid-append: api.scan_records's
  rule; noted in `cuts` for the node to log) and goes on with the next
  segment, which begins with the whole live state. Damage before a tail, or
  a checksum-valid record that is not one of ours, is `CorruptData` naming
  the file and offset: the node refuses to start rather than apply it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from systems.kv import vclock
from systems.kv.vclock import Sibling, Versioned, VersionError
from systems.runtime.api import RECORD_HEADER_BYTES, CorruptData, Disk, frame_record, scan_records

WAL_DIR = "wal/"
COMPACT_MIN_BYTES = 1 << 20
COMPACT_RATIO = 4


EMPTY = Versioned()
"""The state of a key never written (shared: states are never changed in place)."""


def segment_name(n: int) -> str:
    return f"{WAL_DIR}{n:012d}"


def _record(kind: str, a: str, b: Any) -> bytes:
    return frame_record(msgpack.packb([kind, a, b], use_bin_type=True))


@dataclass(frozen=True, slots=True, order=True)
class Hint:
    node: str
    key: str


class Store:
    """Key records and hints over a `Disk` (see the module rules)."""

    def __init__(
        self, disk: Disk, *, last_writer_wins: bool = False, compact_min_bytes: int = COMPACT_MIN_BYTES
    ) -> None:
        self.disk = disk
        self.compact_min_bytes = compact_min_bytes
        self.lww = last_writer_wins
        self.data: dict[str, Versioned] = {}
        self.owned: dict[str, bool] = {}
        self.held: dict[str, Versioned] = {}
        """States held for other nodes (sloppy quorum), by key."""
        self._hints: set[Hint] = set()
        self._changed: set[str] = set()
        self._appends = 0
        """Records appended since the start."""
        self._durable = 0
        """Records appended before the latest sync that finished (all durable)."""
        self._issued_at: dict[str, int] = {}
        """For a key whose latest own write may not be durable yet: `_appends` just after it."""
        self._sorted_keys: list[str] | None = None
        self.key_order: list[str] = []
        """Every key in the order first seen (keys are never forgotten): callers that walk every key
        can keep their work and take only `key_order[n:]` next time."""
        self.owned_log: list[str] = []
        """Keys in the order they became owned (again) since the start; `owned_epoch` is its length."""
        self.segments: list[int] = []
        self.log_bytes = 0
        """Bytes in every segment."""
        self._live: dict[str, int] = {}
        """Size of the latest record of each key ("k:<key>", "x:<key>")."""
        self._live_bytes = 0
        self.compacting = False
        self.cuts: list[dict[str, Any]] = []
        """Torn tails cut at load: {file, offset, why}."""
        self._load()

    # -- the log

    def _load(self) -> None:
        names = self.disk.list(WAL_DIR)
        numbers = sorted(int(name[len(WAL_DIR) :]) for name in names if name[len(WAL_DIR) :].isdigit())
        for n in numbers:
            name = segment_name(n)
            scan = scan_records(self.disk.read(name) or b"", name)  # CorruptData: damage before the tail
            for off, body in scan.records:
                self._replay(body, name, off)
            self.log_bytes += scan.end
            if scan.torn is not None:
                # A torn tail: the crash came mid-append, and nothing it held was acknowledged from this
                # segment (a later segment begins with the whole state, written by compaction).
                self.cuts.append({"file": name, "offset": scan.end, "why": scan.torn})
                self.disk.truncate(name, scan.end)
        self.segments = numbers or [1]

    def _replay(self, body: bytes, name: str, off: int) -> None:
        """Apply one record read back from `name` at `off`."""
        try:
            kind, a, b = msgpack.unpackb(body, raw=False)
            self._apply(kind, a, b)
        except (ValueError, KeyError, TypeError, VersionError, msgpack.UnpackException) as e:
            raise CorruptData(name, off, f"checksum matches but the record does not apply: {e}") from None
        if kind in ("k", "x"):
            live = f"{kind}:{a}"
            size = RECORD_HEADER_BYTES + len(body)
            self._live_bytes += size - self._live.get(live, 0)
            self._live[live] = size

    def _apply(self, kind: str, a: str, b: Any) -> None:
        match kind:
            case "k":
                if a not in self.data:
                    self.key_order.append(a)
                self.data[a] = Versioned.decode(b["v"])
                self.owned[a] = bool(b["o"])
            case "x":
                self.held[a] = Versioned.decode(b)
            case "h":
                self._hints.add(Hint(a, b))
            case "d":
                self._hints.discard(Hint(a, b))
            case _:
                raise ValueError(f"unknown record kind {kind!r}")

    @property
    def current(self) -> str:
        return segment_name(self.segments[-1])

    def _append(self, record: bytes, key: str = "") -> None:
        """Append a record; `key` ("k:<key>" or "x:<key>") tracks the live size it replaces."""
        self.disk.append(self.current, record)
        self._appends += 1
        self.log_bytes += len(record)
        if key:
            self._live_bytes += len(record) - self._live.get(key, 0)
            self._live[key] = len(record)

    async def _sync(self) -> None:
        covered = self._appends
        await self.disk.sync(self.current)
        if covered > self._durable:
            self._durable = covered
            if self._issued_at:
                self._issued_at = {k: n for k, n in self._issued_at.items() if n > covered}

    async def commit(self) -> None:
        """Make every change made so far durable (after changes made with `sync=False`)."""
        await self._sync()

    def wants_compaction(self) -> bool:
        """The log is at least COMPACT_MIN_BYTES and COMPACT_RATIO times what a compacted one would hold."""
        if self.compacting or self.log_bytes < self.compact_min_bytes:
            return False
        return self.log_bytes > COMPACT_RATIO * max(1, self._live_bytes)

    async def compact(self) -> None:
        """Start a new segment with the live state, sync it, then delete the older segments."""
        if self.compacting:
            return
        self.compacting = True
        try:
            old = list(self.segments)
            self.segments.append(old[-1] + 1)
            buf = bytearray()
            for key in sorted(self.data):
                buf += _record("k", key, {"v": self.data[key].encode(), "o": self.owned.get(key, False)})
            for key in sorted(self.held):
                buf += _record("x", key, self.held[key].encode())
            for h in sorted(self._hints):
                buf += _record("h", h.node, h.key)
            self.log_bytes = 0
            self._live_bytes = len(buf)
            self._append(bytes(buf))
            await self._sync()
            for n in old:
                self.disk.delete(segment_name(n))
            self.segments = [n for n in self.segments if n not in old]
        finally:
            self.compacting = False

    # -- keys

    @property
    def owned_epoch(self) -> int:
        """Bumped whenever a key becomes owned: until then, the owned keys are the same set."""
        return len(self.owned_log)

    def key_list(self) -> list[str]:
        """Every key seen, sorted (a copy; the sorted list is cached until a new key arrives)."""
        if self._sorted_keys is None:
            self._sorted_keys = sorted(self.data)
        return list(self._sorted_keys)

    def get(self, key: str) -> Versioned:
        """The key's state as this node has it, durable or not: for this node's own use only."""
        return self.data.get(key, EMPTY)

    def shippable(self, key: str) -> bool:
        """No dot this node issued in the key waits for its fsync (see the module rules)."""
        return key not in self._issued_at

    async def get_durable(self, key: str) -> Versioned:
        """The key's state once every dot this node issued in it is durable: what may leave the node."""
        while key in self._issued_at:
            await self._sync()
        return self.get(key)

    def take_changed(self) -> set[str]:
        """The keys whose record was written since the last call (for anti-entropy's digests)."""
        changed, self._changed = self._changed, set()
        return changed

    def _install(self, key: str, state: Versioned, owned: bool) -> None:
        # the record first: a disk that refuses it (EIO, ENOSPC) leaves the state as it was
        self._append(_record("k", key, {"v": state.encode(), "o": owned}), "k:" + key)
        if key not in self.data:
            self._sorted_keys = None
            self.key_order.append(key)
        if owned and not self.owned.get(key, False):
            self.owned_log.append(key)
        self.data[key] = state
        self.owned[key] = owned
        self._changed.add(key)

    async def update(
        self, key: str, node: str, value: Any, ctx: Mapping[str, int], ts: float, *, owned: bool
    ) -> tuple[Versioned, Sibling]:
        """A client write coordinated here; durable when this returns."""
        state, sib = vclock.update(self.get(key), node, value, ctx, ts, last_writer_wins=self.lww)
        self._install(key, state, owned or self.owned.get(key, False))
        self._issued_at[key] = self._appends
        await self._sync()
        return state, sib

    async def merge(self, key: str, incoming: Versioned, *, owned: bool, sync: bool = True) -> Versioned:
        """Merge a peer's state for the key; durable when this returns (with `sync`, else at `commit`)."""
        old = self.get(key)
        state = vclock.merge(old, incoming, last_writer_wins=self.lww)
        now_owned = owned or self.owned.get(key, False)
        if state != old or now_owned != self.owned.get(key, False) or key not in self.data:
            self._install(key, state, now_owned)
            if sync:
                await self._sync()
        return state

    async def disown(self, key: str) -> None:
        """The key has been handed to its new owners; keep the data, drop the duty."""
        if self.owned.get(key):
            self._install(key, self.get(key), False)
            await self._sync()

    # -- data held for others, and hints

    def get_held(self, key: str) -> Versioned:
        return self.held.get(key, EMPTY)

    async def merge_held(self, key: str, incoming: Versioned, *, sync: bool = True) -> Versioned:
        old = self.get_held(key)
        state = vclock.merge(old, incoming, last_writer_wins=self.lww)
        if state != old or key not in self.held:
            self._append(_record("x", key, state.encode()), "x:" + key)
            self.held[key] = state
            if sync:
                await self._sync()
        return state

    async def add_hint(self, hint: Hint, *, sync: bool = True) -> None:
        if hint not in self._hints:
            self._append(_record("h", hint.node, hint.key))
            self._hints.add(hint)
        if sync:
            await self._sync()

    def hints(self) -> list[Hint]:
        return sorted(self._hints)

    def drop_hint(self, hint: Hint) -> None:
        if hint in self._hints:
            self._hints.discard(hint)
            self._append(_record("d", hint.node, hint.key))
