"""The KV store's client library: what a program outside the cluster may use.

This is the declared client module of `systems/kv` (workloads, nemeses and
the CLI import it, never the node's internals). A Dynamo client may route by
itself (the paper's partition-aware client library), so the ring is part of
the client's surface.

Rules this module keeps:

- `KvClient` talks to one coordinator node: any node coordinates any key.
- Every call raises the runtime's `RpcError` family unchanged, so the caller
  decides between `fail` (a definite error) and `info`.
- `initial_ring(nodes, options)` is the ring the nodes build at start from
  the same options, and N capped at the member count.
"""

from __future__ import annotations

from typing import Any

from systems.kv.messages import AdminRequest, KeyRequest, PutRequest
from systems.kv.ring import Ring
from systems.runtime.api import Runtime

__all__ = ["KvClient", "Ring", "initial_ring"]


def initial_ring(nodes: list[str], options: dict[str, Any]) -> tuple[Ring, int]:
    """The initial ring the nodes build from these options (defaults filled in), and N."""
    from systems.kv import DEFAULT_OPTIONS

    opts = {**DEFAULT_OPTIONS, **options}
    members = list(opts.get("members") or nodes)
    return Ring.of(members, int(opts["vnodes"])), min(int(opts["n"]), len(members))


class KvClient:
    """Raw requests to one coordinator node."""

    def __init__(self, rt: Runtime, node: str, timeout_s: float) -> None:
        self.rt, self.node, self.timeout_s = rt, node, timeout_s

    async def get(self, key: str) -> dict[str, Any]:
        return await self.rt.call(self.node, "kv.get", KeyRequest(key).to_wire(), timeout=self.timeout_s)

    async def put(
        self, key: str, value: Any, context: dict[str, int] | None = None, *, overwrite: bool = False
    ) -> dict[str, Any]:
        msg = PutRequest(key, value, context or {}, overwrite).to_wire()
        return await self.rt.call(self.node, "kv.put", msg, timeout=self.timeout_s)

    async def join(self, node: str) -> Any:
        """Ask the coordinator to add `node` to the ring."""
        return await self.rt.call(self.node, "kv.join", AdminRequest(node).to_wire(), timeout=self.timeout_s)

    async def leave(self, node: str) -> Any:
        """Ask the coordinator to take `node` out of the ring."""
        return await self.rt.call(self.node, "kv.leave", AdminRequest(node).to_wire(), timeout=self.timeout_s)

    async def dump(self) -> dict[str, Any]:
        """Everything the node stores (keys, siblings, clocks, held hints) and its ring view."""
        return await self.rt.call(self.node, "kv.dump", {}, timeout=self.timeout_s)

    async def ring(self) -> dict[str, Any]:
        """The node's ring view: members, vnodes, n and the keys it stores."""
        return await self.rt.call(self.node, "kv.ring", {}, timeout=self.timeout_s)
