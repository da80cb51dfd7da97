"""The flaky-links fault: lossy, slow, duplicating links between every pair of nodes.

Vocabulary: `start-links` [{src, dst, drop, delay_s, jitter_s, duplicate}]
starts it (the links as set, base.links.LinkFault's fields), `stop-links`
cures it; new link faults replace those in place. The runtime's packet
filter (or the sim network) applies them, with one seeded decision per frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.cluster import Capability
from base.faults import Effect, FaultKind, FaultWindow, Link, held
from base.links import LinkFault
from nemesis.package import NemesisContext, NemesisPackage, Requirements, heal_network

START_OP, STOP_OP = "start-links", "stop-links"


def links_of(value: Any) -> frozenset[Link]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(
        (str(x["src"]), str(x["dst"])) for x in value if isinstance(x, Mapping) and "src" in x and "dst" in x
    )


def _describe(w: FaultWindow) -> str:
    rows = [x for x in w.value if isinstance(x, Mapping)] if isinstance(w.value, list) else []
    settings = {tuple(sorted((k, v) for k, v in x.items() if k not in ("src", "dst"))) for x in rows}
    what = "faulty"
    if len(settings) == 1:
        s = dict(next(iter(settings)))
        parts = []
        if s.get("drop"):
            parts.append(f"drop {float(s['drop']):.0%}")
        if s.get("delay_s") or s.get("jitter_s"):
            delay_ms, jitter_ms = float(s.get("delay_s", 0)) * 1e3, float(s.get("jitter_s", 0)) * 1e3
            parts.append(f"delay {delay_ms:.0f} ms ± {jitter_ms:.0f} ms")
        if s.get("duplicate"):
            parts.append(f"duplicate {float(s['duplicate']):.0%}")
        what = ", ".join(parts) or "no-op"
    return f"{len(rows)} links between {len(w.nodes)} nodes: {what} {held(w)}"


LINKS = FaultKind(
    name="links",
    start=START_OP,
    stop=(STOP_OP,),
    colour="#c297ff",
    effect=Effect.NETWORK,
    describe=_describe,
    links=links_of,
    summary="links that drop, delay or duplicate frames",
)


async def set_links(ctx: NemesisContext, fault: LinkFault) -> None:
    """Put `fault` on every link between two nodes (replacing link faults in place), and record it."""
    faults = {(a, b): fault for a in ctx.nodes for b in ctx.nodes if a != b}
    await ctx.cluster.set_links(faults)
    ctx.network_fault(STOP_OP)
    ctx.record(START_OP, [{"src": a, "dst": b, **f.to_wire()} for (a, b), f in sorted(faults.items())])


class Flaky:
    """Lossy, slow, duplicating links between every pair of nodes (the runtime's packet filter)."""

    name = "flaky"

    async def start(self, ctx: NemesisContext) -> None:
        await set_links(
            ctx,
            LinkFault(
                drop=round(ctx.rng.uniform(0.05, 0.3), 3),
                delay_s=round(ctx.rng.uniform(0.0, 0.05), 4),
                jitter_s=round(ctx.rng.uniform(0.0, 0.1), 4),
                duplicate=round(ctx.rng.uniform(0.0, 0.1), 3),
            ),
        )

    async def stop(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)


PACKAGES = (
    NemesisPackage(
        name="flaky",
        summary="lossy, slow, duplicating, reordering links between every pair of nodes",
        make=Flaky,
        kinds=(LINKS,),
        needs=frozenset({Capability.LINKS}),
        requires=Requirements(min_nodes=2),
    ),
)
