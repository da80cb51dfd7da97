"""The partition fault: cut the network into a random shape, heal it later.

Vocabulary: `start-partition` {grudge} starts it (the grudge maps each node
to the nodes whose traffic it drops; the op's `shape` names the shape drawn),
`stop-partition` cures it; a new partition replaces the one in place. Shapes
come from nemesis/grudges.py: halves, isolate, majorities-ring, bridge, and
isolate-leader when the system reports a leader. Other packages (leaders,
ring_faults) record their own grudges with the same ops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.cluster import Capability
from base.faults import Effect, FaultKind, FaultWindow, grudge_links, held, names
from nemesis import grudges
from nemesis.package import NemesisContext, NemesisPackage, Requirements, heal_network

START_OP, STOP_OP = "start-partition", "stop-partition"


def sides(grudge: Mapping[str, Any]) -> str:
    """A grudge in words: 'n1 n2 | n3 n4 n5', 'n1 n2 | n4 n5, bridged by n3', or what each node drops."""
    links = grudge_links(grudge)
    if not links:
        return "nothing cut"
    if any((dst, src) not in links for src, dst in links):
        dsts = sorted({dst for _, dst in links})
        return "; ".join(f"{d} drops {names(sorted(s for s, dd in links if dd == d))}" for d in dsts)
    nodes = sorted(set(grudge) | {n for link in links for n in link})
    cut = {n: {s for s, d in links if d == n} for n in nodes}
    bridges = [n for n in nodes if not cut[n]]
    rest = [n for n in nodes if cut[n]]
    sees = {n: frozenset(m for m in rest if m not in cut[n]) for n in rest}
    if all(sees[m] == sees[n] for n in rest for m in sees[n]):
        groups = sorted({sees[n] for n in rest}, key=lambda g: (len(g), sorted(g)))
        text = " | ".join(names(sorted(g)) for g in groups)
        return text + (f", bridged by {names(bridges)}" if bridges else "")
    return "; ".join(f"{n} cut from {names(sorted(cut[n]))}" for n in rest)


def _describe(w: FaultWindow) -> str:
    shape = w.detail.get("shape")
    value = w.value if isinstance(w.value, Mapping) else {}
    return f"{sides(value)}{f' ({shape})' if shape else ''} {held(w)}"


PARTITION = FaultKind(
    name="partition",
    start=START_OP,
    stop=(STOP_OP,),
    colour="#54aeff",
    effect=Effect.NETWORK,
    describe=_describe,
    links=grudge_links,
    summary="the network cut between groups of nodes",
)


async def partition(ctx: NemesisContext, grudge: grudges.Grudge, **detail: object) -> None:
    """Replace the partition in place with `grudge`, and record it."""
    await ctx.cluster.partition(grudge)
    ctx.network_fault(STOP_OP)
    ctx.record(START_OP, grudge, **detail)


class Partition:
    """Cut the network into a random shape: halves, isolate, majorities-ring, bridge, isolate-leader."""

    name = "partition"

    async def start(self, ctx: NemesisContext) -> None:
        shapes = list(grudges.SHAPES)
        if ctx.find_leader is not None:
            shapes.append("isolate-leader")
        shape = ctx.rng.choice(shapes)
        target = await ctx.find_leader() if shape == "isolate-leader" and ctx.find_leader else None
        grudge = grudges.make("isolate" if shape == "isolate-leader" else shape, ctx.nodes, ctx.rng, target)
        await partition(ctx, grudge, shape=shape)

    async def stop(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)


PACKAGES = (
    NemesisPackage(
        name="partition",
        summary="cut the network: random halves, isolate one node (or the leader), majorities ring, bridge",
        make=Partition,
        kinds=(PARTITION,),
        needs=frozenset({Capability.PARTITION}),
        requires=Requirements(min_nodes=2),
    ),
)
