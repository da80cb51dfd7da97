"""MapReduce's own faults: kill the coordinator; kill a worker whose map output is still needed.

- coordinator-kill: SIGKILL the coordinator's node (the node that answers
  `mr.jobs`), restart it at `stop`. The DFS master usually runs on that node
  too. (MapReduce does not report a coordinator as a leader: the leader
  faults read Raft's state and do not apply to it.)
- output-holder-kill: watch the coordinator's report until some worker
  holds completed map output that a running job's reduce tasks still need
  (preferring a job whose map phase is over, so its reducers are fetching),
  then SIGKILL that worker's node (never the coordinator's) and restart it
  at `stop`. This is the fault the paper's re-execution of *completed* map
  tasks exists for (§3.3). A job needs its map outputs only while it runs,
  under a second of a run's tens, so `start` waits for a target up to
  `WAIT_FOR_TARGET_S` or two schedule intervals, whichever is shorter (and
  never past the schedule's end, when the clients stop submitting); waiting
  longer starves the faults dealt after it. The fault is then held the time the schedule drew;
  finding none, it records nothing (the schedule tries it once more at the
  next slot, and the faults checker says so if it never fired).

Both record the kill fault's vocabulary (kill / restart, with `role`), so
the report, the checkers and the final heal treat them as any kill. Plain
worker faults need no package of their own: `kill` and `pause` hit workers
(a paused worker is a straggler that backup executions must overtake),
`partition` cuts them off.
"""

from __future__ import annotations

from base.cluster import Capability
from nemesis.kill import KILL, kill, restart
from nemesis.package import NemesisContext, NemesisPackage, Requirements
from systems.mapreduce.client import find_coordinator, output_holders
from systems.runtime.api import RpcError

WATCH_S = 0.05
REPORT_TIMEOUT_S = 0.5
WAIT_FOR_TARGET_S = 10.0
"""How long output-holder-kill waits for a target when dealt (test-clock seconds; at most two of the schedule's
intervals, so a wait costs about what two more faults would, and never past the schedule's end): a job's map
outputs are needed only while it runs, under a second of a run's tens."""


class CoordinatorKill:
    """SIGKILL the coordinator's node; restart it over its data directory at `stop`."""

    name = "coordinator-kill"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        target = await find_coordinator(ctx.cluster.client, ctx.running())
        if target is None:
            return
        await kill(ctx, target, role="coordinator")
        self.victims = [target]

    async def stop(self, ctx: NemesisContext) -> None:
        await restart(ctx, self.victims)
        self.victims = []


class OutputHolderKill:
    """Kill a worker holding map output a running job still needs (waiting, bounded, for one); restart it
    at `stop`."""

    name = "output-holder-kill"

    def __init__(self) -> None:
        self.victims: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        rt = ctx.cluster.client
        wait_s = WAIT_FOR_TARGET_S if ctx.interval_s is None else min(WAIT_FOR_TARGET_S, 2 * ctx.interval_s)
        deadline = rt.now() + wait_s
        if ctx.stop_at is not None:
            deadline = min(deadline, ctx.stop_at)
        while True:
            target = await self._target(ctx)
            if target is not None:
                await kill(ctx, target, role="map output holder")
                self.victims = [target]
                return
            if rt.now() >= deadline:
                return  # no job needed a worker's map output all this while: nothing recorded, nothing done
            await rt.sleep(WATCH_S)

    async def _target(self, ctx: NemesisContext) -> str | None:
        """A live worker (not the coordinator's node) holding the most needed map output, or None."""
        rt = ctx.cluster.client
        coordinator = await find_coordinator(rt, ctx.running())
        if coordinator is None:
            return None
        try:
            report = await rt.call(coordinator, "mr.report", {}, timeout=REPORT_TIMEOUT_S)
        except RpcError:
            return None
        live = {w: n for w, n in output_holders(report).items() if w != coordinator and w in ctx.running()}
        if not live:
            return None
        best = max(live.values())
        return ctx.rng.choice(sorted(w for w, n in live.items() if n == best))

    async def stop(self, ctx: NemesisContext) -> None:
        await restart(ctx, self.victims)
        self.victims = []


MAPREDUCE_ONLY = Requirements(min_nodes=2, systems=frozenset({"mapreduce"}))

PACKAGES = (
    NemesisPackage(
        name="coordinator-kill",
        summary="SIGKILL the MapReduce coordinator's node (often the DFS master's too), restart it later",
        make=CoordinatorKill,
        kinds=(KILL,),
        needs=frozenset({Capability.KILL}),
        requires=MAPREDUCE_ONLY,
    ),
    NemesisPackage(
        name="output-holder-kill",
        summary="SIGKILL a worker holding map output a running job still needs, restart it later",
        make=OutputHolderKill,
        kinds=(KILL,),
        needs=frozenset({Capability.KILL}),
        requires=MAPREDUCE_ONLY,
    ),
)
