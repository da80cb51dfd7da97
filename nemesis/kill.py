"""The kill fault: SIGKILL one node (sometimes the leader), restart it later over its data directory.

Vocabulary: `kill` [node] starts it, `restart` [node] cures it (a `restart`
also brings back a node that was powered off). On sim a kill is a crash of
the simulated process and loses what the node had not synced; on the real
backends it is SIGKILL, and the kernel keeps what the process wrote (a
power fault, nemesis/power.py, is what loses unsynced writes there).
"""

from __future__ import annotations

from base.cluster import Capability
from base.faults import Effect, FaultKind, FaultWindow, held, names, node_list
from nemesis.package import NemesisContext, NemesisPackage

KILL_OP, RESTART_OP = "kill", "restart"


def _describe(w: FaultWindow) -> str:
    role = w.detail.get("role")
    return f"killed {names(w.nodes)}{f' ({role})' if role else ''} {held(w)}"


KILL = FaultKind(
    name="kill",
    start=KILL_OP,
    stop=(RESTART_OP,),
    colour="#ff8182",
    effect=Effect.DOWN,
    describe=_describe,
    targets=node_list,
    summary="a node killed (SIGKILL) until it is restarted",
)


async def kill(ctx: NemesisContext, node: str, **detail: object) -> None:
    """Kill one node (if it runs) and record it."""
    if node in ctx.killed:
        return
    await ctx.cluster.kill(node)
    ctx.killed.add(node)
    ctx.record(KILL_OP, [node], **detail)


async def restart(ctx: NemesisContext, nodes: list[str]) -> None:
    """Restart those of `nodes` that are killed, and record it."""
    done = []
    for n in nodes:
        if n in ctx.killed:
            await ctx.cluster.restart(n)
            ctx.killed.discard(n)
            done.append(n)
    if done:
        ctx.record(RESTART_OP, done)


class Kill:
    """SIGKILL one running node (sometimes the leader); restart it at `stop`."""

    name = "kill"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        target = await ctx.pick_target(ctx.running())
        if target is None:
            return
        await kill(ctx, target)
        self.victims = [target]

    async def stop(self, ctx: NemesisContext) -> None:
        await restart(ctx, self.victims)
        self.victims = []


PACKAGES = (
    NemesisPackage(
        name="kill",
        summary="SIGKILL one node (sometimes the leader), restart it later over the same data directory",
        make=Kill,
        kinds=(KILL,),
        needs=frozenset({Capability.KILL}),
    ),
)
