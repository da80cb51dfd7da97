"""Fault packages: each knows how to inflict one kind of fault and how to cure it.

Rules every package keeps:
- `start` inflicts the fault through the backend-neutral `Cluster` API and
  records exactly what it did as a nemesis op (`ctx.record(f, value)`), after
  the fault is in place; `stop` cures exactly that and records it too.
- A package never leaves the cluster worse than it found it after `stop`;
  `ctx` tracks killed and paused nodes so the final heal can finish any cure.
- Targets come from `ctx.rng` (seeded), or from `ctx.find_leader` for the
  leader-targeting variants, so a sim run reproduces from its seed.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from base.cluster import Cluster, LinkFault
from nemesis import grudges

Recorder = Callable[[str, Any], None]
LeaderFinder = Callable[[], Awaitable[str | None]]


@dataclass
class NemesisContext:
    cluster: Cluster
    rng: random.Random
    record: Recorder
    find_leader: LeaderFinder | None = None
    killed: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    partitioned: bool = False
    links_faulty: bool = False

    @property
    def nodes(self) -> list[str]:
        return list(self.cluster.nodes)

    async def pick_target(self, candidates: list[str], leader_bias: float = 0.5) -> str | None:
        """A node to hit: the leader with probability `leader_bias` when one is known, else random."""
        if not candidates:
            return None
        if self.find_leader is not None and self.rng.random() < leader_bias:
            leader = await self.find_leader()
            if leader in candidates:
                return leader
        return self.rng.choice(sorted(candidates))


class Fault(Protocol):
    name: str

    async def start(self, ctx: NemesisContext) -> None: ...

    async def stop(self, ctx: NemesisContext) -> None: ...


class _OneNode:
    """Hit one running node (sometimes the leader), cure it later; subclasses say how."""

    name = ""

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        target = await ctx.pick_target([n for n in ctx.nodes if n not in ctx.killed and n not in ctx.paused])
        if target is None:
            return
        await self.inflict(ctx, target)
        self.victims = [target]
        ctx.record(self.name, [target])

    async def stop(self, ctx: NemesisContext) -> None:
        await self.cure(ctx, self.victims)
        self.victims = []

    async def inflict(self, ctx: NemesisContext, node: str) -> None:
        raise NotImplementedError

    async def cure(self, ctx: NemesisContext, nodes: list[str]) -> None:
        raise NotImplementedError


class Kill(_OneNode):
    """SIGKILL one node; restart it over its data directory."""

    name = "kill"

    async def inflict(self, ctx: NemesisContext, node: str) -> None:
        await ctx.cluster.kill(node)
        ctx.killed.add(node)

    async def cure(self, ctx: NemesisContext, nodes: list[str]) -> None:
        await restart(ctx, nodes)


class Pause(_OneNode):
    """SIGSTOP one node; SIGCONT it later."""

    name = "pause"

    async def inflict(self, ctx: NemesisContext, node: str) -> None:
        await ctx.cluster.pause(node)
        ctx.paused.add(node)

    async def cure(self, ctx: NemesisContext, nodes: list[str]) -> None:
        await resume(ctx, nodes)


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
        await ctx.cluster.partition(grudge)
        ctx.partitioned = True
        ctx.record("start-partition", grudge)

    async def stop(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)


class Power:
    """Pull every node's power at once (all killed), then power them all back on."""

    name = "power"

    async def start(self, ctx: NemesisContext) -> None:
        victims = [n for n in ctx.nodes if n not in ctx.killed]
        await resume(ctx, [n for n in victims if n in ctx.paused])
        for n in victims:
            await ctx.cluster.kill(n)
            ctx.killed.add(n)
        ctx.record("power-off", victims)

    async def stop(self, ctx: NemesisContext) -> None:
        victims = sorted(ctx.killed)
        for n in victims:
            await ctx.cluster.restart(n)
            ctx.killed.discard(n)
        if victims:
            ctx.record("power-on", victims)


class Flaky:
    """Lossy, slow, duplicating links between every pair of nodes (the runtime's packet filter)."""

    name = "flaky"

    async def start(self, ctx: NemesisContext) -> None:
        fault = LinkFault(
            drop=round(ctx.rng.uniform(0.05, 0.3), 3),
            delay_s=round(ctx.rng.uniform(0.0, 0.05), 4),
            jitter_s=round(ctx.rng.uniform(0.0, 0.1), 4),
            duplicate=round(ctx.rng.uniform(0.0, 0.1), 3),
        )
        faults = {(a, b): fault for a in ctx.nodes for b in ctx.nodes if a != b}
        await ctx.cluster.set_links(faults)
        ctx.links_faulty = True
        links = [{"src": a, "dst": b, **f.to_wire()} for (a, b), f in sorted(faults.items())]
        ctx.record("start-links", links)

    async def stop(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)


async def restart(ctx: NemesisContext, nodes: list[str]) -> None:
    done = []
    for n in nodes:
        if n in ctx.killed:
            await ctx.cluster.restart(n)
            ctx.killed.discard(n)
            done.append(n)
    if done:
        ctx.record("restart", done)


async def resume(ctx: NemesisContext, nodes: list[str]) -> None:
    done = []
    for n in nodes:
        if n in ctx.paused:
            await ctx.cluster.resume(n)
            ctx.paused.discard(n)
            done.append(n)
    if done:
        ctx.record("resume", done)


async def heal_network(ctx: NemesisContext) -> None:
    if not (ctx.partitioned or ctx.links_faulty):
        return
    await ctx.cluster.heal()
    if ctx.partitioned:
        ctx.record("stop-partition", None)
    if ctx.links_faulty:
        ctx.record("stop-links", None)
    ctx.partitioned = ctx.links_faulty = False


async def heal_all(ctx: NemesisContext) -> None:
    """The final heal: network first, then every paused node continued, then every killed node restarted."""
    await heal_network(ctx)
    await resume(ctx, sorted(ctx.paused))
    await restart(ctx, sorted(ctx.killed))


CORE_PACKAGES: dict[str, Callable[[], Fault]] = {
    "kill": Kill,
    "pause": Pause,
    "partition": Partition,
    "power": Power,
    "flaky": Flaky,
}
"""The packages every backend can carry out (see nemesis/catalog.py for all of them)."""
