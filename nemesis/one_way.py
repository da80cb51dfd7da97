"""The one-way partition: one node's inbound or outbound traffic from some others dropped, one way only.

A symmetric partition is what most systems are tested against; a link that
works one way (a bad cable, a misconfigured firewall) is what they meet. The
victim still hears its peers but they no longer hear it (`outbound`), or it
talks to them but hears nothing back (`inbound`): a leader that cannot hear
acks, a follower whose heartbeats are lost.

Rules it keeps:
- `start` picks a node (sometimes the leader), a direction and a non-empty
  set of other nodes with `ctx.rng`, replaces the partition with the
  one-way grudge and records `start-one-way` {node, direction, others,
  grudge}; `stop` heals the network and records `stop-one-way`.
- A grudge lists who drops whose traffic (base.cluster), so `inbound` is
  {node: others} and `outbound` is {other: [node]} for each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.cluster import Capability
from base.faults import Effect, FaultKind, FaultWindow, grudge_links, held, names
from nemesis.package import NemesisContext, NemesisPackage, Requirements, heal_network

START_OP, STOP_OP = "start-one-way", "stop-one-way"
DIRECTIONS = ("inbound", "outbound")


def grudge_of(node: str, direction: str, others: list[str]) -> dict[str, list[str]]:
    if direction == "inbound":
        return {node: sorted(others)}
    return {o: [node] for o in sorted(others)}


def _links(value: Any) -> Any:
    return grudge_links(value.get("grudge")) if isinstance(value, Mapping) else frozenset()


def _describe(w: FaultWindow) -> str:
    v = w.value if isinstance(w.value, Mapping) else {}
    node, others = str(v.get("node")), names(v.get("others") or [])
    if v.get("direction") == "inbound":
        return f"{node} hears nothing from {others} (they still hear it) {held(w)}"
    return f"{others} hear nothing from {node} (it still hears them) {held(w)}"


ONE_WAY = FaultKind(
    name="one-way",
    start=START_OP,
    stop=(STOP_OP,),
    colour="#bf3989",
    effect=Effect.NETWORK,
    describe=_describe,
    links=_links,
    summary="a node's traffic from (or to) some others dropped, one way only",
)


class OneWay:
    """Drop one node's inbound or outbound traffic from some of the others, one way only."""

    name = "one-way"

    async def start(self, ctx: NemesisContext) -> None:
        node = await ctx.pick_target(ctx.nodes)
        if node is None:
            return
        direction = ctx.rng.choice(DIRECTIONS)
        rest = sorted(n for n in ctx.nodes if n != node)
        others = sorted(ctx.rng.sample(rest, ctx.rng.randint(1, len(rest))))
        grudge = grudge_of(node, direction, others)
        await ctx.cluster.partition(grudge)
        ctx.network_fault(STOP_OP)
        ctx.record(START_OP, {"node": node, "direction": direction, "others": others, "grudge": grudge})

    async def stop(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)


PACKAGES = (
    NemesisPackage(
        name="one-way",
        summary="drop one node's inbound or outbound traffic from some others, one way only",
        make=OneWay,
        kinds=(ONE_WAY,),
        needs=frozenset({Capability.PARTITION}),
        requires=Requirements(min_nodes=2),
    ),
)
