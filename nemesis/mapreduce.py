"""MapReduce's own fault: kill the coordinator (the paper's master), restart it later.

The coordinator is whoever `ctx.find_leader` names (workloads/mapreduce.py's
find_leader: the node that answers `mr.jobs`). On its node the DFS master
usually runs too, so this is also a DFS master crash unless the options
place them apart. It is recorded with the core op names (kill / restart),
so the report, the checkers and the final heal treat it as any kill.
Worker faults need no package of their own: `kill` and `pause` hit workers
(a paused worker is a straggler, which backup executions must overtake),
and `partition` cuts them off.
"""

from __future__ import annotations

from collections.abc import Callable

from nemesis.packages import Fault, NemesisContext, restart


class CoordinatorKill:
    """SIGKILL the coordinator's node; restart it over its data directory at `stop`."""

    name = "coordinator-kill"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        if ctx.find_leader is None:
            return
        target = await ctx.find_leader()
        if target is None or target in ctx.killed or target in ctx.paused:
            return
        await ctx.cluster.kill(target)
        ctx.killed.add(target)
        self.victims = [target]
        ctx.record("kill", [target])

    async def stop(self, ctx: NemesisContext) -> None:
        await restart(ctx, self.victims)
        self.victims = []


PACKAGES: dict[str, Callable[[], Fault]] = {"coordinator-kill": CoordinatorKill}
