"""The link fault: pull one node's network cable (its switch port goes dark), plug it back later.

Vocabulary: `link-down` [node] starts it, `link-up` [node] cures it. The
node is cut from every other node both ways, and from the clients too. Needs
a cluster with cables (`cluster.link_down` / `link_up`): netns (the veth goes
down) and ssh with link commands in the cluster file.
"""

from __future__ import annotations

from typing import Any

from base.cluster import Capability
from base.faults import ANY, Effect, FaultKind, FaultWindow, held, names, node_list
from base.faults import Link as Wire
from nemesis.package import NemesisContext, NemesisPackage, cluster_method

DOWN_OP, UP_OP = "link-down", "link-up"


def _links(value: Any) -> frozenset[Wire]:
    return frozenset(link for n in node_list(value) for link in ((n, ANY), (ANY, n)))


def _describe(w: FaultWindow) -> str:
    return f"pulled the cable of {names(w.nodes)} {held(w)}"


LINK_DOWN = FaultKind(
    name="link-down",
    start=DOWN_OP,
    stop=(UP_OP,),
    colour="#fb8f44",
    effect=Effect.NETWORK,
    describe=_describe,
    targets=node_list,
    links=_links,
    summary="a node's cable pulled: cut from everyone",
)


class PullCable:
    """Pull one node's network cable, plug it back at `stop`."""

    name = "link"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        down = cluster_method(ctx, self.name, "link_down")
        cluster_method(ctx, self.name, "link_up")
        target = await ctx.pick_target([n for n in ctx.nodes if n not in self.victims])
        if target is None:
            return
        await down(target)
        self.victims.append(target)
        ctx.record(DOWN_OP, [target])

    async def stop(self, ctx: NemesisContext) -> None:
        if not self.victims:
            return
        up = cluster_method(ctx, self.name, "link_up")
        for node in list(self.victims):
            await up(node)
            self.victims.remove(node)
            ctx.record(UP_OP, [node])


PACKAGES = (
    NemesisPackage(
        name="link",
        summary="pull one node's cable (its veth down / your link_down command), plug it back later",
        make=PullCable,
        kinds=(LINK_DOWN,),
        needs=frozenset({Capability.CABLE}),
    ),
)
