"""Clock faults: a node's clock jumps, or runs fast or slow (`clock`); a deposed leader's clock runs slow
(`clock-isolate`).

The runtime reads every `now()` and `sleep()` through the node's clock
(systems.runtime.clock), so these faults reach every place a system reads
time: on sim the world moves the node's virtual clock at the instant the
nemesis acts (deterministic for a seed); on the real backends the harness
sends the node a `clock` control frame (local, netns, ssh alike).

Vocabulary: `clock-skew` {node: {"jump_s" | "rate", "offset_s", "rate"}}
starts a fault on the nodes it names; `clock-reset` [nodes] ends it (a
`restart` of a node ends it too: a new process starts on true time).

Rules they keep (besides nemesis/package.py's):
- `clock`: one node (sometimes the leader), or two, each either jumped by
  1-10 s forwards or backwards, or set to run at a rate drawn from
  `RATES` (a slow crystal slows its timers too; a jump moves `now()` only).
- `clock-isolate`: the leader's clock slowed to a rate in [0.05, 0.15],
  then (`SETTLE_S` later, so whatever the leader times runs on the slow
  clock) the leader cut off from every other node: a node that trusts its
  own clock for a lease believes it still leads while the others elect
  another.
- `stop` resets every clock the package moved (offset 0, rate 1) and, for
  `clock-isolate`, heals the network. A node that is down is not reset
  (it restarts on true time); the reset is recorded for every node moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.cluster import Capability
from base.faults import Effect, FaultKind, FaultWindow, held, names, node_list
from nemesis import grudges
from nemesis.kill import RESTART_OP
from nemesis.package import NemesisContext, NemesisPackage, Requirements, cluster_method, heal_network
from nemesis.partition import PARTITION, partition

SKEW_OP, RESET_OP = "clock-skew", "clock-reset"
RATES = (0.1, 0.25, 0.5, 2.0, 4.0)
JUMP_S = (1.0, 10.0)
ISOLATE_RATES = (0.05, 0.15)
SETTLE_S = 0.5


def _skewed(value: Any) -> tuple[str, ...]:
    if isinstance(value, Mapping):
        return tuple(sorted(str(n) for n in value))
    return node_list(value)


def _describe(w: FaultWindow) -> str:
    v = w.value if isinstance(w.value, Mapping) else {}
    parts = []
    for node in sorted(v):
        c = v[node] if isinstance(v[node], Mapping) else {}
        if "jump_s" in c:
            parts.append(f"{node}'s clock jumped {float(c['jump_s']):+.1f} s")
        else:
            parts.append(f"{node}'s clock ran at {float(c.get('rate', 1.0)):g}x")
    return f"{', '.join(parts) or names(w.nodes)} {held(w)}"


CLOCK = FaultKind(
    name="clock",
    start=SKEW_OP,
    stop=(RESET_OP, RESTART_OP),
    colour="#8250df",
    effect=Effect.CLOCK,
    describe=_describe,
    targets=_skewed,
    summary="a node's clock jumped, or running fast or slow",
)


async def skew(ctx: NemesisContext, changes: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Apply each node's clock change and record what the nodes' clocks then read."""
    set_clock = cluster_method(ctx, "clock", "set_clock")
    done: dict[str, dict[str, float]] = {}
    for node, change in sorted(changes.items()):
        reply = await set_clock(node, change)
        done[node] = {**change, "offset_s": round(float(reply["offset_s"]), 6), "rate": float(reply["rate"])}
    if done:
        ctx.record(SKEW_OP, done)
    return done


async def reset(ctx: NemesisContext, nodes: list[str]) -> None:
    """Put the nodes' clocks back on true time (those that are up) and record it."""
    if not nodes:
        return
    set_clock = cluster_method(ctx, "clock", "set_clock")
    for node in nodes:
        if ctx.cluster.is_up(node):
            await set_clock(node, {"reset": True})
    ctx.record(RESET_OP, sorted(nodes))


def draw_change(ctx: NemesisContext) -> dict[str, float]:
    if ctx.rng.random() < 0.5:
        size = ctx.rng.uniform(*JUMP_S)
        return {"jump_s": round(size if ctx.rng.random() < 0.5 else -size, 3)}
    return {"rate": ctx.rng.choice(RATES)}


class Clock:
    """Jump one or two nodes' clocks, or make them run fast or slow; reset them at stop."""

    name = "clock"

    def __init__(self) -> None:
        self.moved: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        first = await ctx.pick_target(ctx.running())
        if first is None:
            return
        targets = [first]
        rest = [n for n in ctx.running() if n != first]
        if rest and ctx.rng.random() < 0.5:
            targets.append(ctx.rng.choice(rest))
        done = await skew(ctx, {n: draw_change(ctx) for n in targets})
        self.moved = sorted(done)

    async def stop(self, ctx: NemesisContext) -> None:
        moved, self.moved = self.moved, []
        await reset(ctx, moved)


class ClockIsolate:
    """Slow the leader's clock and cut it off from the others; heal and reset at stop."""

    name = "clock-isolate"

    def __init__(self) -> None:
        self.moved: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        leader = await ctx.find_leader() if ctx.find_leader is not None else None
        if leader is None or leader not in ctx.running():
            return
        rate = round(ctx.rng.uniform(*ISOLATE_RATES), 3)
        done = await skew(ctx, {leader: {"rate": rate}})
        self.moved = sorted(done)
        await ctx.cluster.client.sleep(SETTLE_S)
        await partition(ctx, grudges.isolate(ctx.nodes, ctx.rng, leader), shape="isolate-leader")

    async def stop(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)
        moved, self.moved = self.moved, []
        await reset(ctx, moved)


PACKAGES = (
    NemesisPackage(
        name="clock",
        summary="jump one or two nodes' clocks by 1-10 s either way, or make them run 0.1-4x; reset at stop",
        make=Clock,
        kinds=(CLOCK,),
        needs=frozenset({Capability.CLOCK}),
    ),
    NemesisPackage(
        name="clock-isolate",
        summary="slow the leader's clock to 0.05-0.15x and cut it off from the others; heal and reset at stop",
        make=ClockIsolate,
        kinds=(CLOCK, PARTITION),
        needs=frozenset({Capability.CLOCK, Capability.PARTITION}),
        requires=Requirements(leader=True, min_nodes=3),
    ),
)
