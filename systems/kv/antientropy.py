"""Anti-entropy: replicas of a key compare digests and swap what differs.

Rules this module keeps:

- Only preference-list replicas take part: a node offers a peer the keys both
  of them replicate under its current ring (data held as a stand-in goes home
  by hinted handoff, not here).
- Keys fall in BUCKETS buckets (CRC-32 of the key). A node keeps, per peer,
  each bucket's digest: the XOR of the digests of the keys in it that both
  replicate (`DigestIndex`). It is kept up to date from the keys the store
  changed (store.take_changed), so a round costs work for what changed since
  the last one, not for every key.
- A round is two calls, push-pull. (1) The initiator sends its bucket digests
  for the peer; the peer answers with the buckets whose digest differs from its
  own for the initiator. Nothing differs: the round ends. (2) The initiator
  sends {key: digest} for its shared keys in those buckets; the peer answers
  with its full state for every listed key whose digest differs, plus keys in
  those buckets it replicates with the initiator that the initiator did not
  list; the initiator merges those (one sync for all of them) and pushes its
  own state for the keys that differed.
  After a round both hold the merge of both for every key of a differing
  bucket, so once the network heals and every pair has had a round, all
  replicas of every key hold the same siblings (a bucket whose keys differ
  but whose XORs agree would be missed: 64-bit digests make that a 2**-64
  chance per bucket and round).
- Key digests are SHA-256 of the canonical msgpack encoding of the state
  (first 8 bytes as an int), cached per key until the node's record of the
  key changes; a key the node has no record of contributes nothing.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import TYPE_CHECKING, Any

import msgpack

from systems.kv.messages import DIGEST_BUCKETS, DigestRequest, StoreRequest, decode_versioned
from systems.kv.ring import Ring
from systems.kv.vclock import Versioned, VersionError
from systems.runtime.api import RpcError

if TYPE_CHECKING:
    from systems.kv.node import KvNode

BUCKETS = DIGEST_BUCKETS


def digest(state: Versioned) -> int:
    return int.from_bytes(hashlib.sha256(msgpack.packb(state.encode())).digest()[:8], "big")


def bucket_of(key: str) -> int:
    return zlib.crc32(key.encode()) % BUCKETS


class DigestIndex:
    """Per peer, the bucket digests of the keys both replicate; per key, its digest (see the module rules).

    Rebuilt from every key when the ring changes; otherwise brought up to date from the keys the store
    changed since the last `refresh`.
    """

    def __init__(self, node: KvNode) -> None:
        self.node = node
        self.ring: Ring | None = None
        self.key_digest: dict[str, int] = {}
        self.buckets: dict[str, list[int]] = {}
        """peer -> the XOR of the digests of the keys this node shares with it, per bucket."""
        self.keys: dict[str, list[set[str]]] = {}
        """peer -> the keys this node shares with it, per bucket."""

    def _peers_of(self, key: str) -> list[str]:
        pref = self.node.preference_list(key)
        me = self.node.rt.node_id
        return [p for p in pref if p != me] if me in pref else []

    def _add(self, key: str, d: int) -> None:
        b = bucket_of(key)
        for peer in self._peers_of(key):
            buckets = self.buckets.get(peer)
            if buckets is None:
                buckets = self.buckets[peer] = [0] * BUCKETS
                self.keys[peer] = [set() for _ in range(BUCKETS)]
            buckets[b] ^= d
            self.keys[peer][b].add(key)

    def refresh(self) -> None:
        store, ring = self.node.store, self.node.ring
        changed = store.take_changed()
        if ring is not self.ring:
            self.ring = ring
            self.buckets, self.keys = {}, {}
            for key in store.key_order:
                d = self.key_digest.get(key) if key not in changed else None
                if d is None:
                    d = self.key_digest[key] = digest(store.get(key))
                self._add(key, d)
            return
        for key in changed:
            new = digest(store.get(key))
            old = self.key_digest.get(key)
            if old == new:
                continue
            self.key_digest[key] = new
            b = bucket_of(key)
            if old is None:
                self._add(key, new)
                continue
            for peer in self._peers_of(key):
                self.buckets[peer][b] ^= old ^ new

    def digest_of(self, key: str) -> int:
        """The key's digest (0 for a key this node has no record of); call after `refresh`."""
        return self.key_digest.get(key, 0)

    def bucket_digests(self, peer: str) -> list[int]:
        return self.buckets.get(peer) or [0] * BUCKETS

    def shared(self, peer: str, bucket: int) -> set[str]:
        keys = self.keys.get(peer)
        return keys[bucket] if keys is not None else set()


def answer_buckets(node: KvNode, src: str, theirs: list[int]) -> dict[str, Any]:
    """Phase 1, the peer's side: the buckets whose digests differ."""
    index = node.digest_index
    index.refresh()
    mine = index.bucket_digests(src)
    return {"differ": [b for b in range(BUCKETS) if mine[b] != theirs[b]]}


def answer(node: KvNode, src: str, offered: dict[str, int], within: list[int]) -> dict[str, Any]:
    """Phase 2, the peer's side: states for offered keys that differ, and for keys of those buckets
    the initiator did not offer."""
    index = node.digest_index
    index.refresh()
    states: dict[str, Any] = {}
    store = node.store
    for key, d in offered.items():
        if index.digest_of(key) != d and store.shippable(key):  # a dot not yet durable waits for a round
            states[key] = store.get(key).encode()
    for b in within:
        for key in index.shared(src, b):
            if key not in offered and store.shippable(key):
                states[key] = store.get(key).encode()
    return {"states": states}


async def exchange(node: KvNode, peer: str) -> int:
    """One push-pull round with `peer`; returns how many keys differed."""
    index = node.digest_index
    index.refresh()
    try:
        reply = await node.call(peer, "kv.digest", DigestRequest(buckets=index.bucket_digests(peer)).to_wire(),
                                timeout=node.rpc_timeout_s)
        differ = reply.get("differ") if isinstance(reply, dict) else None
        if not isinstance(differ, list) or not differ:
            return 0
        within = sorted({b for b in differ if isinstance(b, int) and 0 <= b < BUCKETS})
        index.refresh()
        offered = {k: index.digest_of(k) for b in within for k in index.shared(peer, b)}
        reply = await node.call(peer, "kv.digest", DigestRequest(keys=offered, within=within).to_wire(),
                                timeout=node.rpc_timeout_s)
    except RpcError:
        return 0
    states = reply.get("states", {}) if isinstance(reply, dict) else {}
    if not isinstance(states, dict):
        return 0
    me = node.rt.node_id
    push: list[tuple[str, Versioned]] = []
    for key, raw in states.items():
        if not isinstance(key, str):
            continue
        try:
            theirs = decode_versioned(raw)  # the schema's checks too (messages.py)
        except VersionError:
            continue
        merged = await node.store.merge(key, theirs, owned=me in node.preference_list(key), sync=False)
        if merged != theirs:
            push.append((key, merged))
    if states:
        await node.store.commit()  # one sync for every key the round merged (group commit)
    for key, merged in push:
        node.rt.send(peer, "kv.store", StoreRequest(key, merged).to_wire())
    return len(states)
