"""The pause fault: SIGSTOP one node (sometimes the leader), SIGCONT it later.

Vocabulary: `pause` [node] starts it, `resume` [node] cures it. A paused
node keeps its sockets and its state; it simply does nothing for a while.
"""

from __future__ import annotations

from base.cluster import Capability
from base.faults import Effect, FaultKind, FaultWindow, held, names, node_list
from nemesis.package import NemesisContext, NemesisPackage

PAUSE_OP, RESUME_OP = "pause", "resume"


def _describe(w: FaultWindow) -> str:
    return f"paused {names(w.nodes)} {held(w)}"


PAUSE = FaultKind(
    name="pause",
    start=PAUSE_OP,
    stop=(RESUME_OP,),
    colour="#d4a72c",
    effect=Effect.PAUSED,
    describe=_describe,
    targets=node_list,
    summary="a node frozen (SIGSTOP) until it is continued",
)


async def resume(ctx: NemesisContext, nodes: list[str]) -> None:
    """Continue those of `nodes` that are paused, and record it."""
    done = []
    for n in nodes:
        if n in ctx.paused:
            await ctx.cluster.resume(n)
            ctx.paused.discard(n)
            done.append(n)
    if done:
        ctx.record(RESUME_OP, done)


class Pause:
    """SIGSTOP one running node; SIGCONT it at `stop`."""

    name = "pause"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        target = await ctx.pick_target(ctx.running())
        if target is None:
            return
        await ctx.cluster.pause(target)
        ctx.paused.add(target)
        self.victims = [target]
        ctx.record(PAUSE_OP, [target])

    async def stop(self, ctx: NemesisContext) -> None:
        await resume(ctx, self.victims)
        self.victims = []


PACKAGES = (
    NemesisPackage(
        name="pause",
        summary="SIGSTOP one node (sometimes the leader), SIGCONT it later",
        make=Pause,
        kinds=(PAUSE,),
        needs=frozenset({Capability.PAUSE}),
    ),
)
