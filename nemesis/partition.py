"""The partition fault: cut the network into a random shape, heal it later.

Vocabulary: `start-partition` {grudge} starts it (the grudge maps each node
to the nodes whose traffic it drops; the op's `shape` names the shape drawn),
`stop-partition` cures it; a new partition replaces the one in place. Shapes
come from nemesis/grudges.py: halves, isolate, majorities-ring, bridge, and
isolate-leader when the system reports a leader. Other packages (leaders,
ring_faults) record their own grudges with the same ops.

Shapes are weighted per system (`SYSTEM_SHAPES`), so the cuts that matter to
a system come up often without naming a special package: a leader cut off
(raft), one key's replicas cut off from everyone else or split apart (kv,
asking the nodes for their ring as nemesis/ring_faults.py does; with no
answer or nothing stored it falls back to halves). A system without an
entry draws the shapes uniformly, as it always did.
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


SYSTEM_SHAPES: dict[str, dict[str, int]] = {
    "raft": {"isolate-leader": 3},
    "kv": {"replicas": 2, "split-replicas": 2},
}
"""Per system: a shape's weight (1 unless listed), and shapes of its own (kv's replica cuts)."""

REPLICA_SHAPES = ("replicas", "split-replicas")


def draw_shape(ctx: NemesisContext) -> str:
    shapes = list(grudges.SHAPES)
    if ctx.find_leader is not None:
        shapes.append("isolate-leader")
    weights = SYSTEM_SHAPES.get(ctx.system)
    if not weights:
        return ctx.rng.choice(shapes)
    shapes += [s for s in weights if s not in shapes]
    return ctx.rng.choices(shapes, [weights.get(s, 1) for s in shapes])[0]


async def replica_cut(ctx: NemesisContext, shape: str) -> tuple[grudges.Grudge, str] | None:
    """One stored key's replicas cut off from the rest ("replicas") or split apart; None when unknown."""
    from nemesis import ring_faults  # it records its cuts with this module's ops, so it imports us

    view = await ring_faults.ring_view(ctx)
    if view is None:
        return None
    key = ctx.rng.choice(view.keys)
    replicas = view.replicas(key)
    if shape == "replicas":
        grudge = ring_faults.cut_off(ctx.nodes, replicas)
    else:
        grudge = ring_faults.split_off(ctx.nodes, replicas, ctx.rng)
    return (grudge, f"{shape} of key {key}") if grudge is not None else None


class Partition:
    """Cut the network into a random shape: halves, isolate, majorities-ring, bridge, isolate-leader,
    and the shapes a system adds (SYSTEM_SHAPES)."""

    name = "partition"

    async def start(self, ctx: NemesisContext) -> None:
        shape = draw_shape(ctx)
        if shape in REPLICA_SHAPES:
            cut = await replica_cut(ctx, shape)
            if cut is not None:
                await partition(ctx, cut[0], shape=cut[1])
                return
            shape = "halves"
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
