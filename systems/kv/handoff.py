"""Hinted handoff and ownership handoff: data held for someone else goes home.

Rules this module keeps:

- A hint (store.py) is delivered by sending the key's whole local state to the
  node it names; the hint is deleted only after that node acknowledged a
  durable merge. Undeliverable hints stay and are retried every round.
- A key this node owned but no longer does (the ring changed under a join or
  leave) is pushed to every node of its new preference list; the duty is
  dropped only when all of them acknowledged. The data itself is kept.
- Planted bug `no-handoff`: hints are never recorded (coordinator.on_store),
  so writes taken by a stand-in never reach their real owners.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from systems.kv.messages import StoreRequest
from systems.runtime.api import RpcError

if TYPE_CHECKING:
    from systems.kv.node import KvNode


async def deliver_hints(node: KvNode) -> int:
    """One round over every hint; returns how many were delivered."""
    delivered = 0
    for hint in node.store.hints():
        if hint.node == node.rt.node_id:
            node.store.drop_hint(hint)
            continue
        msg = StoreRequest(hint.key, node.store.get_held(hint.key)).to_wire()
        pref = node.preference_list(hint.key)
        # If the ring changed and the named node no longer owns the key, its current owners get it.
        targets = [hint.node] if hint.node in pref else pref
        try:
            for dst in targets:
                await node.call(dst, "kv.store", msg, timeout=node.rpc_timeout_s)
        except RpcError:
            continue
        node.store.drop_hint(hint)
        delivered += 1
        node.rt.log.debug("hint-delivered", to=hint.node, key=hint.key)
    return delivered


async def transfer_ownership(node: KvNode) -> int:
    """Push keys this node no longer owns to their new owners; returns keys handed over."""
    moved = 0
    me = node.rt.node_id
    for key in node.store.key_list():
        if not node.store.owned.get(key):
            continue
        pref = node.preference_list(key)
        if me in pref:
            continue
        msg = StoreRequest(key, await node.store.get_durable(key)).to_wire()
        ok = True
        for dst in pref:
            try:
                await node.call(dst, "kv.store", msg, timeout=node.rpc_timeout_s)
            except RpcError:
                ok = False
        if ok:
            await node.store.disown(key)
            moved += 1
            node.rt.log.info("key-handed-over", key=key, to=pref)
    return moved
