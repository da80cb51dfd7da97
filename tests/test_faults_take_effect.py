"""Drawn faults take effect: the schedule, and the packages that wait for something to hit.

A run whose requested fault never took effect is at best unknown (harness/checking.py's `faults`
checker; tests/test_honest_runs.py proves it still says so). These tests prove the causes of such runs
in the swarm sweeps are gone at their root, each by a case that failed before:
- a package that found nothing to do at its slot is tried again at the next one (once in a row: a package
  that can never fire does not take every slot), the deck waiting meanwhile;
- a weighted round deals every package once before it deals any twice, so an overrun late in a round
  drops a second dealing, not some package's only one;
- output-holder-kill waits (bounded, never past the schedule's end) for a job that needs a worker's map
  output instead of giving up at once;
- chunkserver-loss stops holding its victims down once the master has nowhere left to copy a chunk
  (3 nodes, one down, goal 3), instead of the full `LOSS_MAX_S` that starved the faults after it;
- and, through the harness, swarm seeds that ended unknown for those reasons now have every drawn fault
  take effect.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from nemesis.dfs import LOSS_MAX_S, _rereplicated
from nemesis.mapreduce import WAIT_FOR_TARGET_S, OutputHolderKill
from nemesis.package import NemesisContext
from nemesis.schedule import Pace, deal, run_schedule
from systems.runtime.api import RemoteError

# -- a virtual clock to run the schedule and packages on ---------------------------------------------------


class Clock:
    """Just what run_schedule and the packages use of a runtime: now(), sleep() (virtual) and call()."""

    def __init__(self, answer: Any = None) -> None:
        self.t = 0.0
        self.answer = answer

    def now(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s

    async def call(self, node: str, method: str, msg: Any, timeout: float = 1.0) -> Any:
        return self.answer(self.t, node, method)


class Cluster:
    def __init__(self, clock: Clock, nodes: tuple[str, ...] = ("n1", "n2", "n3")) -> None:
        self.client = clock
        self.nodes = list(nodes)
        self.killed: list[tuple[float, str]] = []
        self.restarted: list[str] = []

    async def kill(self, node: str) -> None:
        self.killed.append((self.client.t, node))

    async def restart(self, node: str) -> None:
        self.restarted.append(node)


def context(cluster: Cluster, ops: list[tuple[str, Any, dict[str, Any]]]) -> NemesisContext:
    return NemesisContext(cluster=cluster, rng=random.Random(7), sink=lambda f, v, e: ops.append((f, v, e)))  # type: ignore[arg-type]


class Scripted:
    """A package that fires (records an op) only at the dealings listed in `fires` (1-based)."""

    def __init__(self, name: str, fires: set[int] | None = None) -> None:
        self.name = name
        self.fires = fires
        self.dealt = 0

    async def start(self, ctx: NemesisContext) -> None:
        self.dealt += 1
        if self.fires is None or self.dealt in self.fires:
            ctx.record("kill", [f"{self.name}-{self.dealt}"])

    async def stop(self, ctx: NemesisContext) -> None:
        return None


def dealt_order(ops: list[tuple[str, Any, dict[str, Any]]], starts: list[str]) -> list[str]:
    return [e["package"] for f, _, e in ops if f == "kill"] + starts


def run_slots(packages: list[Scripted], slots: int, weights: dict[str, int] | None = None) -> list[str]:
    """The packages dealt, slot by slot, over `slots` slots of an interval of 1 s."""
    order: list[str] = []
    for p in packages:
        original = p.start

        async def start(ctx: NemesisContext, p: Scripted = p, original: Any = original) -> None:
            order.append(p.name)
            await original(ctx)

        p.start = start  # type: ignore[method-assign]
    clock = Clock()
    ctx = context(Cluster(clock), [])
    pace = Pace(healthy=(0.5, 0.5), hold=(0.5, 0.5), weights=weights or {})
    asyncio.run(run_schedule(ctx, packages, 1.0, slots + 0.5, pace))  # type: ignore[arg-type]
    return order


def test_a_package_that_found_nothing_to_do_is_tried_again_at_the_next_slot() -> None:
    idle = Scripted("idle", fires={2})  # nothing to do when first dealt, something at its second try
    busy = Scripted("busy")
    order = run_slots([idle, busy], 6)
    first = order.index("idle")
    assert order[first + 1] == "idle", order  # the retry comes at once, the deck waits
    assert idle.dealt >= 2 and Counter(order)["busy"] >= 2
    # Before: each round dealt once each, so an idle first dealing waited a whole round (or never came back).


def test_a_package_that_never_fired_is_owed_a_slot_after_every_deck_card_until_it_fires() -> None:
    late = Scripted("late", fires={5})  # nothing to hit at its first four dealings (no leader elected yet)
    busy = Scripted("busy")
    order = run_slots([late, busy], 12)
    assert late.dealt == Counter(order)["late"] >= 5, order  # before: tried twice, then not again that round
    never = Scripted("never", fires=set())
    busy2 = Scripted("busy")
    order = run_slots([never, busy2], 24)
    # the one that can never fire gets its deck dealings and one owed slot after each other deck card, no more:
    # between two deck cards come at most two extra slots, so the deck goes on
    assert Counter(order)["busy"] >= 7 and "never,never,never,never" not in ",".join(order), order


def test_a_package_that_fired_before_is_retried_once_not_owed() -> None:
    flaky_target = Scripted("sometimes", fires={1})  # fired at its first dealing, nothing to do afterwards
    busy = Scripted("busy")
    order = run_slots([flaky_target, busy], 12)
    tail = ",".join(order[order.index("sometimes") + 1:])
    assert "sometimes,sometimes,sometimes" not in tail and Counter(order)["busy"] >= 4, order


def test_a_weighted_round_deals_every_package_once_before_any_twice() -> None:
    names = ["a", "b", "c", "d", "e"]
    weights = {"a": 2, "b": 2, "c": 1, "d": 2, "e": 1}

    class P:
        def __init__(self, name: str) -> None:
            self.name = name

    for seed in range(30):
        dealt = deal([P(n) for n in names], random.Random(seed), weights)  # type: ignore[arg-type]
        round_ = [next(dealt).name for _ in range(sum(weights.values()))]
        assert sorted(round_[: len(names)]) == names, round_
        assert Counter(round_) == Counter(weights)


# -- output-holder-kill -----------------------------------------------------------------------------------


def mr_report(t: float, busy_from: float | None) -> dict[str, Any]:
    """A coordinator's report: from `busy_from` on, job j1 is in its reduce phase and n2 holds a map output."""
    if busy_from is None or t < busy_from:
        return {"jobs": [], "attempts": []}
    return {
        "jobs": [{"job": "j1", "state": "running", "map_tasks": {"idle": 0, "completed": 2},
                  "reduce_tasks": {"completed": 0, "in_progress": 1}}],
        "attempts": [{"kind": "map", "outcome": "completed", "job": "j1", "worker": "n2", "note": ""}],
    }


def mr_cluster(busy_from: float | None) -> Cluster:
    def answer(t: float, node: str, method: str) -> Any:
        if node != "n1":
            raise RemoteError("not the coordinator", code="not-coordinator")
        return mr_report(t, busy_from) if method == "mr.report" else {"jobs": []}

    return Cluster(Clock(answer))


def test_output_holder_kill_waits_for_a_job_that_needs_a_workers_map_output() -> None:
    cluster = mr_cluster(busy_from=4.0)
    ops: list[tuple[str, Any, dict[str, Any]]] = []
    ctx = context(cluster, ops)
    fault = OutputHolderKill()
    asyncio.run(fault.start(ctx))
    assert [(f, v) for f, v, _ in ops] == [("kill", ["n2"])]  # before: it gave up at once and killed nobody
    assert cluster.killed and 4.0 <= cluster.killed[0][0] < 4.5 and cluster.killed[0][1] == "n2"
    asyncio.run(fault.stop(ctx))
    assert cluster.restarted == ["n2"] and [f for f, _, _ in ops] == ["kill", "restart"]


def test_output_holder_kill_waits_no_longer_than_its_bound_two_intervals_nor_past_the_schedules_end() -> None:
    cases = [(None, None, None, WAIT_FOR_TARGET_S), (None, 3.0, 5.0, 3.0), (1.5, None, 4.0, 3.0),
             (30.0, None, None, WAIT_FOR_TARGET_S)]
    for interval_s, stop_at, busy_from, bound in cases:
        cluster = mr_cluster(busy_from)
        ops: list[tuple[str, Any, dict[str, Any]]] = []
        ctx = context(cluster, ops)
        ctx.stop_at, ctx.interval_s = stop_at, interval_s
        asyncio.run(OutputHolderKill().start(ctx))
        assert ops == [] and cluster.killed == []  # found nothing: recorded nothing (the checker will say so)
        assert bound <= cluster.client.t < bound + 0.5


# -- chunkserver-loss -------------------------------------------------------------------------------------


def test_chunkserver_loss_stops_waiting_once_the_master_has_nowhere_to_copy_a_chunk() -> None:
    def report(alive: list[str], *under: list[str]) -> dict[str, Any]:
        rows = [{"handle": i, "current": c} for i, c in enumerate(under)]
        return {"alive": alive, "fsck": {"under_replicated": rows}}

    # 3 nodes, goal 3, n3 down: every chunk is on both live nodes, fsck still says under-replicated (goal 3)
    assert _rereplicated(report(["n1", "n2"], ["n1", "n2"], ["n2", "n1"]), ["n3"])  # before: waited LOSS_MAX_S
    assert not _rereplicated(report(["n1", "n2"], ["n1"]), ["n3"])  # a copy n2 could still take
    assert not _rereplicated(report(["n1", "n2", "n3"], ["n1", "n2"]), ["n3"])  # not yet declared dead
    assert _rereplicated(report(["n1", "n2", "n4"]), ["n3"])  # 5 nodes: nothing under-replicated any more
    assert not _rereplicated(report(["n1", "n2", "n4"], ["n1", "n2"]), ["n3"])  # n4 can take a copy
    assert LOSS_MAX_S > 10  # the bound it no longer needs to reach on 3 nodes


# -- through the harness ----------------------------------------------------------------------------------


def swarm_run(tmp_path: Path, system: str, seed: int) -> dict[str, Any]:
    from harness.session import check, execute, prepare
    from harness.sweep_swarm import draw

    spec = draw(TestSpec(system=system, workload="", nemesis=(), backend="sim", seed=seed))
    spec = prepare(spec, tmp_path / f"{system}-{seed}")
    execute(spec)
    return check(spec.path)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize(("system", "seed", "drawn"), [
    ("mapreduce", 2016, "output-holder-kill"),  # dealt while no job ran: found nothing to do
    ("dfs", 2003, "slow-fsync"),  # never dealt: two chunkserver-losses held 15 s each on 3 nodes
])
def test_swarm_seeds_that_ended_unknown_now_have_every_drawn_fault_take_effect(
    tmp_path: Path, system: str, seed: int, drawn: str
) -> None:
    results = swarm_run(tmp_path, system, seed)
    faults = results["checkers"]["faults"]
    assert faults["valid"] is True and faults["took_effect"][drawn] >= 1, faults["summary"]
    assert not faults["missing"], faults["summary"]
