"""The test runner: clients and nemesis run together; every op goes to the history as it happens.

Rules it keeps (DESIGN.md, Jepsen's shape):
- One coroutine per client slot. Slot s talks to node `nodes[s % n]` and starts
  as process s. When an op ends `info` the process is retired and the slot
  carries on as process `p + concurrency` (a fresh number, same node).
- Ops are invoked at `spec.rate` per second over all slots (exponential gaps,
  from the slot's own seeded RNG stream, so sim runs reproduce).
- A client's op that raises, or takes longer than the safety deadline, is
  recorded as `info`: the runner never guesses `fail`. An op that waits on
  purpose (a final `settle`) carries its own `bound_s`, added to the deadline.
- After `time_limit_s`: the nemesis stops, the final heal cures every fault
  (each package stopped, network healed, paused nodes continued, killed
  nodes restarted), the quiet
  period passes, then the workload's final ops run, each as its own process.
- The nemesis plays the random schedule, paced by `spec.pace`, or the
  explicit script `spec.schedule` when there is one (nemesis/schedule.py).
- A workload that holds connections of its own (an external system's
  client library) may define `async aclose()`; it is awaited once the run
  is over, on every exit path.
- The test clock is `cluster.client.now()`; history times are integer ns
  since the runner started.
- The faults in place (for the progress display) are read from the
  recorded nemesis ops with the catalog's vocabulary, as the report reads
  them afterwards: one interpreter of nemesis ops (base.faults).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from base.faults import FaultTracker
from base.history import HistoryWriter, Op
from base.spec import TestSpec
from harness.backends.base import Cluster
from nemesis.catalog import VOCABULARY, make_packages
from nemesis.heal import heal_all
from nemesis.package import NemesisContext
from nemesis.schedule import Pace, Script, run_schedule, run_script
from systems.runtime.api import derive_rng
from workloads.base import Workload

SAFETY_FACTOR = 5.0
"""An op is abandoned as `info` after op_timeout_s * SAFETY_FACTOR."""


@dataclass
class Stats:
    """Live counters for the progress display."""

    ok: int = 0
    fail: int = 0
    info: int = 0
    faults: list[str] = field(default_factory=list)
    """The faults in place, in words ("kill: killed n3 since 4.1 s")."""
    phase: str = "starting"

    def count(self, op: Op) -> None:
        t = op["type"]
        if t in ("ok", "fail", "info") and op["process"] != "nemesis":
            setattr(self, t, getattr(self, t) + 1)


class Runner:
    def __init__(
        self,
        spec: TestSpec,
        cluster: Cluster,
        workload: Workload,
        history: HistoryWriter,
        *,
        find_leader: Callable[..., Any] | None = None,
        on_op: Callable[[Op], None] | None = None,
    ) -> None:
        self.spec = spec
        self.cluster = cluster
        self.workload = workload
        self.history = history
        self.rt = cluster.client
        self.t0 = self.rt.now()
        self.stats = Stats()
        self._on_op = on_op
        self._find_leader = find_leader
        self._faults = FaultTracker(VOCABULARY)

    # -- history -------------------------------------------------------------------------------

    def now_ns(self) -> int:
        return max(0, round((self.rt.now() - self.t0) * 1e9))

    def record(self, op: Op) -> Op:
        op = self.history.append({"time": self.now_ns(), **op})
        self.stats.count(op)
        if self._on_op is not None:
            self._on_op(op)
        return op

    def record_nemesis(self, f: str, value: Any, extra: dict[str, Any] | None = None) -> None:
        op = self.record({"process": "nemesis", "type": "info", "f": f, "value": value, **(extra or {})})
        self._faults.feed(op)
        self.stats.faults = [f"{w.kind}: {w.description}" for w in self._faults.in_place()]

    # -- clients -------------------------------------------------------------------------------

    async def invoke(self, client: Any, process: int, node: str, op: Op) -> Op:
        """Record the invocation, perform it, record and return the completion."""
        inv = self.record({**op, "process": process, "type": "invoke", "node": node})
        deadline = self.spec.op_timeout_s * SAFETY_FACTOR
        if isinstance(op.get("bound_s"), int | float):  # an op that waits on purpose (a final settle) says how long
            deadline = max(deadline, float(op["bound_s"]) + deadline)
        try:
            done = await asyncio.wait_for(client.invoke(dict(op)), deadline)
        except asyncio.CancelledError:
            self.record({**_strip(inv), "type": "info", "error": "interrupted"})
            raise
        except TimeoutError:
            done = {**op, "type": "info", "error": f"no answer in {deadline:g}s"}
        except Exception as e:  # a client bug must not stop the test; the op's fate is unknown
            done = {**op, "type": "info", "error": f"client raised {type(e).__name__}: {e}"}
        if done.get("type") not in ("ok", "fail", "info"):
            done = {**op, "type": "info", "error": f"client returned bad type {done.get('type')!r}"}
        return self.record({**_strip(done), "process": process, "node": node})

    async def client_slot(self, slot: int, stop_at: float) -> None:
        spec = self.spec
        nodes = self.cluster.nodes
        node = nodes[slot % len(nodes)]
        rng = derive_rng(spec.seed, "client", slot)
        process = slot
        client = self.workload.client(self.rt, node)
        mean_gap_s = spec.concurrency / spec.rate if spec.rate > 0 else 0.0
        while True:
            if mean_gap_s > 0:
                await self.rt.sleep(rng.expovariate(1.0 / mean_gap_s))
            if self.rt.now() >= stop_at:
                return
            op = self.workload.next_op(process, rng)
            if op is None:
                return
            done = await self.invoke(client, process, node, op)
            if done["type"] == "info":
                process += spec.concurrency
                client = self.workload.client(self.rt, node)

    # -- the whole test ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            aclose = getattr(self.workload, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(aclose(), 10.0)

    async def _run(self) -> None:
        spec = self.spec
        ctx = NemesisContext(
            cluster=self.cluster,
            rng=derive_rng(spec.seed, "nemesis"),
            sink=self.record_nemesis,
            find_leader=self._leader_finder(),
            system=spec.system,
        )
        packages = make_packages(spec.nemesis)
        stop_at = self.t0 + spec.time_limit_s
        self.stats.phase = "running"
        tasks = [asyncio.ensure_future(self.client_slot(s, stop_at)) for s in range(spec.concurrency)]
        if spec.schedule:  # an explicit script (harness run --schedule, harness shrink)
            plan = run_script(ctx, packages, Script.from_json(spec.schedule), VOCABULARY, self.t0, stop_at)
        else:
            plan = run_schedule(ctx, packages, spec.nemesis_interval_s, stop_at, Pace.from_json(spec.pace))
        nemesis_task = asyncio.ensure_future(plan)
        try:
            await asyncio.gather(nemesis_task, *tasks)
        finally:
            for t in [nemesis_task, *tasks]:
                t.cancel()
            for t in [nemesis_task, *tasks]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.stats.phase = "healing"
            await heal_all(ctx, packages)
        self.stats.phase = "quiet"
        await self.rt.sleep(spec.quiet_s)
        self.stats.phase = "final reads"
        await self.final_ops()
        self.stats.phase = "done"

    async def final_ops(self) -> None:
        process = _next_process(self.history.ops, self.spec.concurrency)
        for node, op in self.workload.final_ops(self.cluster.nodes):
            client = self.workload.client(self.rt, node)
            await self.invoke(client, process, node, op)
            process += 1

    def _leader_finder(self) -> Callable[[], Any] | None:
        if self._find_leader is None:
            return None
        find = self._find_leader

        async def leader() -> str | None:
            try:
                return await find(self.rt, self.cluster.nodes)
            except Exception:
                return None

        return leader


def _strip(op: Op) -> Op:
    return {k: v for k, v in op.items() if k not in ("index", "time")}


def _next_process(ops: list[Op], concurrency: int) -> int:
    used = [op["process"] for op in ops if isinstance(op.get("process"), int)]
    return max([concurrency - 1, *used]) + 1

