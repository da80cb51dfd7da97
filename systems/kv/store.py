"""One node's durable copy of the keys it has seen, and its hints.

Rules this module keeps:

- A key's record is one file "k/<hex of the key>" holding its `Versioned`
  state and an `owned` flag (the node replicated the key as a member of its
  preference list and has not yet handed it to new owners). A record is
  rewritten whole and synced before any change is acknowledged.
- Records are never deleted: a node keeps the clock of every key it has seen,
  so it never issues the same dot twice (see vclock.py), and a stale copy is
  harmless because merging is idempotent.
- State changes are computed and installed in memory with no await in
  between, so concurrent writes to one key serialise; the sync comes after.
- Writes taken as a stand-in for another node (sloppy quorum) go to a
  separate record "x/<hex of the key>", never into the key's own record: the
  node does not replicate that key, and the data must reach its owners by
  hinted handoff, not by riding along on this node's own writes.
- A hint "h/<node>.<hex of the key>" says: this node holds a write meant for
  <node>, which must be delivered to it. Hints are synced before the write
  they belong to is acknowledged; a delivered hint is deleted (a hint brought
  back by a crash is delivered again, harmlessly).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from systems.kv import vclock
from systems.kv.vclock import Sibling, Versioned, VersionError
from systems.runtime.api import Disk


def key_file(key: str) -> str:
    return "k/" + key.encode().hex()


def held_file(key: str) -> str:
    return "x/" + key.encode().hex()


def hint_file(node: str, key: str) -> str:
    return f"h/{node.encode().hex()}.{key.encode().hex()}"


@dataclass(frozen=True, slots=True)
class Hint:
    node: str
    key: str


class Store:
    """Key records and hints over a `Disk` (see the module rules)."""

    def __init__(self, disk: Disk, *, last_writer_wins: bool = False) -> None:
        self.disk = disk
        self.lww = last_writer_wins
        self.data: dict[str, Versioned] = {}
        self.owned: dict[str, bool] = {}
        self.held: dict[str, Versioned] = {}
        """States held for other nodes (sloppy quorum), by key."""
        self._load()

    def _load(self) -> None:
        for name in self.disk.list("k/"):
            raw = self.disk.read(name)
            if raw is None:
                continue
            try:
                key = bytes.fromhex(name[2:]).decode()
                rec = msgpack.unpackb(raw)
                self.data[key] = Versioned.decode(rec["v"])
                self.owned[key] = bool(rec["o"])
            except (ValueError, KeyError, TypeError, VersionError, msgpack.UnpackException):
                continue  # a torn record is impossible (atomic write); skip anything foreign
        for name in self.disk.list("x/"):
            raw = self.disk.read(name)
            if raw is None:
                continue
            try:
                self.held[bytes.fromhex(name[2:]).decode()] = Versioned.decode(msgpack.unpackb(raw))
            except (ValueError, TypeError, VersionError, msgpack.UnpackException):
                continue

    def key_list(self) -> list[str]:
        return sorted(self.data)

    def get(self, key: str) -> Versioned:
        return self.data.get(key, Versioned())

    def _install(self, key: str, state: Versioned, owned: bool) -> None:
        self.data[key] = state
        self.owned[key] = owned
        rec = {"v": state.encode(), "o": owned}
        self.disk.write(key_file(key), msgpack.packb(rec))

    async def update(
        self, key: str, node: str, value: Any, ctx: Mapping[str, int], ts: float, *, owned: bool
    ) -> tuple[Versioned, Sibling]:
        """A client write coordinated here; durable when this returns."""
        state, sib = vclock.update(self.get(key), node, value, ctx, ts, last_writer_wins=self.lww)
        self._install(key, state, owned or self.owned.get(key, False))
        await self.disk.sync(key_file(key))
        return state, sib

    async def merge(self, key: str, incoming: Versioned, *, owned: bool) -> Versioned:
        """Merge a peer's state for the key; durable when this returns."""
        old = self.get(key)
        state = vclock.merge(old, incoming, last_writer_wins=self.lww)
        now_owned = owned or self.owned.get(key, False)
        if state != old or now_owned != self.owned.get(key, False) or key not in self.data:
            self._install(key, state, now_owned)
            await self.disk.sync(key_file(key))
        return state

    async def disown(self, key: str) -> None:
        """The key has been handed to its new owners; keep the data, drop the duty."""
        if self.owned.get(key):
            self._install(key, self.get(key), False)
            await self.disk.sync(key_file(key))

    # -- data held for others, and hints

    def get_held(self, key: str) -> Versioned:
        return self.held.get(key, Versioned())

    async def merge_held(self, key: str, incoming: Versioned) -> Versioned:
        old = self.get_held(key)
        state = vclock.merge(old, incoming, last_writer_wins=self.lww)
        if state != old or key not in self.held:
            self.held[key] = state
            self.disk.write(held_file(key), msgpack.packb(state.encode()))
            await self.disk.sync(held_file(key))
        return state

    async def add_hint(self, hint: Hint) -> None:
        name = hint_file(hint.node, hint.key)
        self.disk.write(name, b"")
        await self.disk.sync(name)

    def hints(self) -> list[Hint]:
        out = []
        for name in self.disk.list("h/"):
            try:
                node_hex, key_hex = name[2:].split(".", 1)
                out.append(Hint(bytes.fromhex(node_hex).decode(), bytes.fromhex(key_hex).decode()))
            except ValueError:
                continue
        return out

    def drop_hint(self, hint: Hint) -> None:
        self.disk.delete(hint_file(hint.node, hint.key))
