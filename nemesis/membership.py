"""Membership changes as a fault: a KV node leaves the ring under load, then joins again.

Rules this package keeps:

- `membership`: pick a running node with `ctx.rng`, ask it to leave the ring
  (`kv.leave {node}`, sent to the node itself first, then to the other
  running nodes in sorted order until one acknowledges: the change is synced
  and gossiped by the node that took it), and record `leave` [node] once
  it was acknowledged. `stop` asks for `kv.join {node}` the same way and
  records `join` [node]. Nothing acknowledged, nothing recorded.
- It never shrinks the ring below the replication factor the nodes report
  (`kv.ring`), so every key keeps N distinct replicas.
- A node that left still runs and serves clients (systems/kv/membership.py);
  its data moves to the new owners, and back after the join. The nemesis
  schedule always stops a fault before the test ends, so the final reads
  see the whole ring again.
- Targets come only from `ctx.rng` and the nodes' answers, so a sim run
  reproduces from its seed.
"""

from __future__ import annotations

from base.faults import Effect, FaultKind, FaultWindow, held, names, node_list
from nemesis.package import NemesisContext, NemesisPackage, Requirements
from systems.runtime.api import RpcError

ADMIN_TIMEOUT_S = 2.0
LEAVE_OP, JOIN_OP = "leave", "join"


def _describe(w: FaultWindow) -> str:
    return f"{names(w.nodes)} left the ring {held(w)}"


LEAVE = FaultKind(
    name="leave",
    start=LEAVE_OP,
    stop=(JOIN_OP,),
    colour="#8c959f",
    effect=Effect.MEMBERSHIP,
    describe=_describe,
    targets=node_list,
    summary="a node out of the ring (still running) until it joins again",
)


def _running(ctx: NemesisContext) -> list[str]:
    return sorted(n for n in ctx.nodes if n not in ctx.killed and n not in ctx.paused)


async def ask(ctx: NemesisContext, method: str, node: str) -> bool:
    """Send `method {node}` to `node` itself, then to the other running nodes; True once one acknowledged."""
    rt = ctx.cluster.client
    for via in sorted(_running(ctx), key=lambda n: (n != node, n)):
        try:
            await rt.call(via, method, {"node": node}, timeout=ADMIN_TIMEOUT_S)
        except RpcError:
            continue
        return True
    return False


async def ring_size(ctx: NemesisContext) -> tuple[int, int] | None:
    """(members, N) as a running node sees them; None when none answers."""
    rt = ctx.cluster.client
    for via in _running(ctx):
        try:
            view = await rt.call(via, "kv.ring", {}, timeout=ADMIN_TIMEOUT_S)
        except RpcError:
            continue
        if isinstance(view, dict) and isinstance(view.get("members"), list) and isinstance(view.get("n"), int):
            return len(view["members"]), view["n"]
    return None


class LeaveJoin:
    """One node leaves the ring while clients run; it joins again at `stop`."""

    name = "membership"

    def __init__(self) -> None:
        self.gone: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        size = await ring_size(ctx)
        if size is None or size[0] <= size[1]:
            return
        candidates = _running(ctx)
        if not candidates:
            return
        node = ctx.rng.choice(candidates)
        if await ask(ctx, "kv.leave", node):
            self.gone = [node]
            ctx.record(LEAVE_OP, [node])

    async def stop(self, ctx: NemesisContext) -> None:
        back = [n for n in self.gone if await ask(ctx, "kv.join", n)]
        self.gone = [n for n in self.gone if n not in back]
        if back:
            ctx.record(JOIN_OP, back)


PACKAGES = (
    NemesisPackage(
        name="membership",
        summary="a node leaves the ring and joins it again while clients run",
        make=LeaveJoin,
        kinds=(LEAVE,),
        requires=Requirements(systems=frozenset({"kv"}), more_nodes_than_option="n"),
    ),
)
