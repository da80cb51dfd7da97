"""Power faults: pull every node's power at once (`power`), or one node's plug (`plug`).

Vocabulary: `power-off` [nodes] starts it, `power-on` [nodes] cures it (a
`restart` of a node also ends its power fault: the node is back either way).

- `power`: every running node loses its power at once (`cluster.lose_power`:
  only synced data survives, on sim and, through the runtime's unsynced
  journal, on the real backends too; an external program's nodes are
  killed, keeping what their kernel cached), then all are started again.
- `plug`: one node's power cut through its power controller
  (`cluster.power_off(node)` / `power_on(node)`, the node is restarted once
  it is back): netns (SIGKILL of everything in the namespace) and ssh with
  power commands in the cluster file.
"""

from __future__ import annotations

from base.cluster import Capability
from base.faults import Effect, FaultKind, FaultWindow, held, names, node_list
from nemesis.kill import RESTART_OP
from nemesis.package import NemesisContext, NemesisPackage, cluster_method
from nemesis.pause import resume

OFF_OP, ON_OP = "power-off", "power-on"


def _describe(w: FaultWindow) -> str:
    return f"powered off {names(w.nodes)} {held(w)}"


POWER_OFF = FaultKind(
    name="power-off",
    start=OFF_OP,
    stop=(ON_OP, RESTART_OP),
    colour="#6e7781",
    effect=Effect.DOWN,
    describe=_describe,
    targets=node_list,
    summary="nodes without power until it is back",
)


class Power:
    """Pull every node's power at once (all killed), then power them all back on."""

    name = "power"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        victims = [n for n in ctx.nodes if n not in ctx.killed]
        await resume(ctx, [n for n in victims if n in ctx.paused])
        cut = getattr(ctx.cluster, "lose_power", None) or ctx.cluster.kill
        for n in victims:
            await cut(n)
            ctx.killed.add(n)
        self.victims = victims
        ctx.record(OFF_OP, victims)

    async def stop(self, ctx: NemesisContext) -> None:
        back = []
        for n in self.victims:
            if n in ctx.killed:
                await ctx.cluster.restart(n)
                ctx.killed.discard(n)
                back.append(n)
        self.victims = []
        if back:
            ctx.record(ON_OP, back)


class Plug:
    """Pull one node's power plug through its power controller; plug it back in and restart the node."""

    name = "plug"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        off = cluster_method(ctx, self.name, "power_off")
        cluster_method(ctx, self.name, "power_on")
        target = await ctx.pick_target(ctx.running())
        if target is None:
            return
        await off(target)
        self.victims.append(target)
        ctx.record(OFF_OP, [target])

    async def stop(self, ctx: NemesisContext) -> None:
        if not self.victims:
            return
        on = cluster_method(ctx, self.name, "power_on")
        for node in list(self.victims):
            await on(node)
            self.victims.remove(node)
            ctx.record(ON_OP, [node])


PACKAGES = (
    NemesisPackage(
        name="power",
        summary="kill every node at once, then start them all again (only synced data survives)",
        make=Power,
        kinds=(POWER_OFF,),
        needs=frozenset({Capability.KILL}),
    ),
    NemesisPackage(
        name="plug",
        summary="cut one node's power (its power controller), then power it on",
        make=Plug,
        kinds=(POWER_OFF,),
        needs=frozenset({Capability.PLUG}),
    ),
)
