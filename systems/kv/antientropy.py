"""Anti-entropy: replicas of a key compare digests and swap what differs.

Rules this module keeps:

- Only preference-list replicas take part: a node offers a peer the keys both
  of them replicate under its current ring (data held as a stand-in goes home
  by hinted handoff, not here).
- A round is push-pull: the initiator sends {key: digest}; the peer answers
  with its full state for every key whose digest differs, plus keys it
  replicates with the initiator that the initiator did not list; the
  initiator merges those (one sync for all of them) and pushes its own state
  for the differing keys.
  After a round both hold the merge of both, so once the network heals and
  every pair has had a round, all replicas of every key hold the same siblings.
- Digests are SHA-256 of the canonical msgpack encoding of the state,
  cached per key until the node's record of the key changes (states are
  immutable, so "changed" is "a different object").
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgpack

from systems.kv.messages import DigestRequest, StoreRequest, decode_versioned
from systems.kv.vclock import Versioned, VersionError
from systems.runtime.api import RpcError

if TYPE_CHECKING:
    from systems.kv.node import KvNode


def digest(state: Versioned) -> str:
    return hashlib.sha256(msgpack.packb(state.encode())).hexdigest()[:16]


def key_digest(node: KvNode, key: str) -> str:
    """`digest` of this node's record of the key, recomputed only when the record changed."""
    state = node.store.get(key)
    cached = node.digests.get(key)
    if cached is not None and cached[0] is state:
        return cached[1]
    d = digest(state)
    node.digests[key] = (state, d)
    return d


def shared_keys(node: KvNode, peer: str) -> list[str]:
    """Keys both this node and `peer` replicate. Kept per peer and extended with the keys seen since
    (store.key_order); worked out afresh only when the ring changed (a round under load would
    otherwise walk every key's preference list, twice a second, on both sides)."""
    ring, keys = node.ring, node.store.key_order
    cached = node.shared.get(peer)
    if cached is None or cached[0] is not ring:
        cached = (ring, 0, [])
    _, done, out = cached
    me = node.rt.node_id
    for key in keys[done:]:
        pref = node.preference_list(key)
        if me in pref and peer in pref:
            out.append(key)
    node.shared[peer] = (ring, len(keys), out)
    return out


def answer(node: KvNode, src: str, offered: dict[str, str]) -> dict[str, Any]:
    """The peer's side: states for keys that differ or that the initiator lacks."""
    states: dict[str, Any] = {}
    for key, d in offered.items():
        if key_digest(node, key) != d:
            states[key] = node.store.get(key).encode()
    for key in shared_keys(node, src):
        if key not in offered:
            states[key] = node.store.get(key).encode()
    return {"states": states}


async def exchange(node: KvNode, peer: str) -> int:
    """One push-pull round with `peer`; returns how many keys differed."""
    offered = {k: key_digest(node, k) for k in shared_keys(node, peer)}
    try:
        reply = await node.call(peer, "kv.digest", DigestRequest(offered).to_wire(), timeout=node.rpc_timeout_s)
    except RpcError:
        return 0
    states = reply.get("states", {}) if isinstance(reply, dict) else {}
    me = node.rt.node_id
    push: list[tuple[str, Versioned]] = []
    for key, raw in states.items():
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
