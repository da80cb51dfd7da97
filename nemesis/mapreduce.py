"""MapReduce's own faults: kill the coordinator; kill a worker whose map output is still needed.

- coordinator-kill: SIGKILL the coordinator's node (whoever `ctx.find_leader`
  names: workloads/mapreduce.py's find_leader asks for `mr.jobs`), restart it
  at `stop`. The DFS master usually runs on that node too.
- output-holder-kill: watch the coordinator's report until some worker
  holds completed map output that a running job's reduce tasks still need
  (preferring a job whose map phase is over, so its reducers are fetching),
  then SIGKILL that worker's node (never the coordinator's) and restart it
  at `stop`. This is the fault the paper's re-execution of *completed* map
  tasks exists for (§3.3).

Both record the core op names (kill / restart), so the report, the checkers
and the final heal treat them as any kill. Plain worker faults need no
package of their own: `kill` and `pause` hit workers (a paused worker is a
straggler that backup executions must overtake), `partition` cuts them off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from nemesis.packages import Fault, NemesisContext, restart
from systems.mapreduce.client import output_holders
from systems.runtime.api import RpcError

WATCH_S = 0.05
REPORT_TIMEOUT_S = 0.5


async def _kill(ctx: NemesisContext, target: str) -> None:
    await ctx.cluster.kill(target)
    ctx.killed.add(target)
    ctx.record("kill", [target])


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
        await _kill(ctx, target)
        self.victims = [target]

    async def stop(self, ctx: NemesisContext) -> None:
        await restart(ctx, self.victims)
        self.victims = []


class OutputHolderKill:
    """Kill a worker holding map output a running job still needs; restart it at `stop`."""

    name = "output-holder-kill"

    def __init__(self) -> None:
        self.victims: list[str] = []
        self._watch: asyncio.Future[None] | None = None

    async def start(self, ctx: NemesisContext) -> None:
        self._watch = asyncio.ensure_future(self._hunt(ctx))

    async def _hunt(self, ctx: NemesisContext) -> None:
        if ctx.find_leader is None:
            return
        rt = ctx.cluster.client
        while not self.victims:
            coordinator = await ctx.find_leader()
            if coordinator is not None:
                try:
                    report = await rt.call(coordinator, "mr.report", {}, timeout=REPORT_TIMEOUT_S)
                except RpcError:
                    report = None
                if report is not None:
                    holders = output_holders(report)
                    live = {w: n for w, n in holders.items()
                            if w != coordinator and w not in ctx.killed and w not in ctx.paused}
                    if live:
                        best = max(live.values())
                        target = ctx.rng.choice(sorted(w for w, n in live.items() if n == best))
                        await _kill(ctx, target)
                        self.victims = [target]
                        return
            await rt.sleep(WATCH_S)

    async def stop(self, ctx: NemesisContext) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await restart(ctx, self.victims)
        self.victims = []


PACKAGES: dict[str, Callable[[], Fault]] = {
    "coordinator-kill": CoordinatorKill,
    "output-holder-kill": OutputHolderKill,
}
