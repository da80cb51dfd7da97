"""Faults made by hand against a running cluster, through the same nemesis packages `harness run` uses.

    harness cluster fault kill n2              the kill package, aimed at n2
    harness cluster fault partition --shape halves
    harness cluster fault partition --shape isolate n3
    harness cluster fault power n3             one node's power: the plug package (power alone: every node)
    harness cluster heal                       the runner's final heal: every package stopped, all cured

Rules this module keeps:

- A fault is a package of the catalog (nemesis/catalog.py), refused exactly
  as `harness run` refuses it (nemesis.package.refusal against the running
  cluster's own capabilities, node count and options), with the same line.
- A named node takes the place of the package's own pick: the context
  answers `pick_target` (and a `rng.choice` among nodes) with it, or
  refuses the fault when the node is not a candidate now (a kill of a node
  that is not running, say). Only packages that pick one node take one
  (`AIMED`); the rest pick by other means (the leader, a key's replicas) or
  act on every node, and a named node is refused for them. A partition's `--shape` is drawn by the package's
  own shapes (nemesis/grudges.py) and set by its own `partition` step.
- Each package runs in a task of its own that lives until the heal, so a
  package that keeps working after `start` (leader-churn, figure8) goes on
  after the command returns.
- Every op a package records goes to faults.jsonl in the history's format
  (process "nemesis", type "info", time in ns since the cluster came up),
  so base.faults.FaultTracker reads back the faults in force; a fault the
  cluster refused is a `nemesis-error` op there as in a run.
- `heal()` is nemesis/heal.py's `heal_all` over every package started: each
  package stops (curing what it did), then the network heals, paused nodes
  continue and killed nodes restart.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.faults import NEMESIS_ERROR, FaultTracker, FaultWindow
from nemesis import grudges
from nemesis.catalog import PACKAGES, VOCABULARY
from nemesis.heal import heal_all
from nemesis.package import ACTING, Fault, NemesisContext, NemesisPackage, Target, refusal, system_refusal
from nemesis.partition import Partition
from nemesis.partition import partition as set_partition


class FaultRefused(RuntimeError):
    """The fault cannot be made now; the message is one line."""


class ChoosingRandom(random.Random):
    """A Random whose `choice` picks the named node whenever it is among the options."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.chosen: str | None = None
        self.used = False

    def choice(self, seq: Sequence[Any]) -> Any:
        if self.chosen is not None and self.chosen in seq:
            self.used = True
            return self.chosen
        return super().choice(seq)


@dataclass
class HandContext(NemesisContext):
    """The nemesis context of a person at the keyboard: their node wins every pick it can win."""

    chosen: str | None = None
    chosen_used: bool = False

    async def pick_target(self, candidates: list[str], leader_bias: float = 0.5) -> str | None:
        if self.chosen is None:
            return await super().pick_target(candidates, leader_bias)
        if self.chosen not in candidates:
            raise FaultRefused(f"{self.chosen} cannot be hit now: {_why_not(self, self.chosen)}")
        self.chosen_used = True
        return self.chosen


def _why_not(ctx: NemesisContext, node: str) -> str:
    if node in ctx.killed:
        return "it is down (killed or powered off); `harness cluster heal` or `restart` brings it back"
    if node in ctx.paused:
        return "it is paused"
    return "the package would not choose it"


AIMED = frozenset({"kill", "pause", "plug", "link", "one-way", "membership", "partition"})
"""The packages that pick one node (`ctx.pick_target`, or `ctx.rng.choice` among nodes), so a person may name
it; the others pick by other means (the leader, a key's replicas) or act on every node."""


def takes_node(pkg: NemesisPackage) -> bool:
    return pkg.name in AIMED


class FaultLog:
    """faults.jsonl: nemesis ops as a history records them, times since the cluster came up."""

    def __init__(self, path: Path, t0: float) -> None:
        self.path = path
        self.t0 = t0
        self.index = sum(1 for _ in path.open()) if path.exists() else 0

    def sink(self, f: str, value: Any, extra: dict[str, Any]) -> None:
        op = {"index": self.index, "time": int((time.monotonic() - self.t0) * 1e9), "process": "nemesis",
              "type": "info", "f": f, "value": value, **extra, "wall": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.index += 1
        with self.path.open("a") as out:
            out.write(json.dumps(op, default=str) + "\n")
            out.flush()


def in_force(path: Path) -> list[FaultWindow]:
    """The faults faults.jsonl says are in place now."""
    tracker = FaultTracker(VOCABULARY)
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                tracker.feed(json.loads(line))
            except ValueError:
                continue  # a line torn by a supervisor killed mid-write
    return tracker.in_place()


@dataclass
class Holder:
    """One package started by hand, in a task of its own until the heal."""

    package: Fault
    release: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class HandFaults:
    """The faults a person makes on one running cluster (see the module rules)."""

    def __init__(self, cluster: Any, target: Callable[[], Target], log: FaultLog,
                 find_leader: Callable[[], Any] | None, seed: int) -> None:
        self.cluster = cluster
        self.target = target
        self.log = log
        self.rng = ChoosingRandom(seed)
        self.ctx = HandContext(cluster=cluster, rng=self.rng, sink=log.sink, find_leader=find_leader)
        self.holders: list[Holder] = []
        self.partition_pkg: Partition | None = None

    # -- what the supervisor asks ---------------------------------------------------------------
    @property
    def down(self) -> set[str]:
        """Nodes the faults took down on purpose (the supervisor must not restart them)."""
        return set(self.ctx.killed) | set(getattr(self.cluster, "powered_off", set()))

    async def inflict(self, name: str, node: str | None = None, shape: str | None = None) -> list[str]:
        """Make one fault; the lines say what was done. Raises FaultRefused (one line)."""
        if name == "power" and node is not None:
            name = "plug"  # one node's power: its plug; `power` alone cuts every node's
        pkg = PACKAGES.get(name)
        if pkg is None:
            raise FaultRefused(f"unknown fault {name!r}; known: {', '.join(sorted(PACKAGES))}")
        target = self.target()
        why = refusal(pkg, target)
        if why is not None and target.external and system_refusal(pkg, target.system, target.reports_leader,
                                                                  True) is None:
            why += f": {target.system}'s nodes are an external program, without the runtime's packet filter"
        if why is not None:
            raise FaultRefused(why)
        if node is not None and node not in self.cluster.nodes:
            raise FaultRefused(f"unknown node {node!r} (nodes: {' '.join(self.cluster.nodes)})")
        if shape is not None and name != "partition":
            raise FaultRefused(f"--shape is for the partition fault, not {name}")
        if node is not None and not takes_node(pkg):
            raise FaultRefused(f"the {name} fault picks its own targets; name no node")
        before = self.log.index
        if name == "partition" and (shape is not None or node is not None):
            await self._partition(shape or "isolate", node)
        else:
            await self._start(pkg, node)
        lines = self._said(before)
        if node is not None and not (self.ctx.chosen_used or self.rng.used):
            lines.append(f"note: the {name} fault chose its own targets; {node} was not among its choices")
        return lines or [f"the {name} fault found nothing to do (every candidate is already down or paused?)"]

    async def heal(self) -> list[str]:
        """Stop every package started by hand and cure everything (nemesis/heal.py)."""
        before = self.log.index
        packages: list[Fault] = [h.package for h in self.holders]
        if self.partition_pkg is not None:
            packages.append(self.partition_pkg)
        await heal_all(self.ctx, packages)
        for h in self.holders:
            h.release.set()
        await asyncio.gather(*(h.task for h in self.holders if h.task is not None), return_exceptions=True)
        self.holders.clear()
        self.partition_pkg = None
        return self._said(before) or ["nothing to heal"]

    async def restart_down(self, node: str) -> list[str]:
        """Bring back a node a fault took down, recording the cure as the package would."""
        from nemesis.kill import restart
        from nemesis.pause import resume
        from nemesis.power import ON_OP

        before = self.log.index
        if node in self.ctx.paused:
            await resume(self.ctx, [node])
        if node in getattr(self.cluster, "powered_off", set()):
            await self.cluster.power_on(node)
            for h in self.holders:
                victims = getattr(h.package, "victims", None)
                if isinstance(victims, list) and node in victims:
                    victims.remove(node)
            self._record_as("plug", ON_OP, [node])
        elif node in self.ctx.killed:
            await restart(self.ctx, [node])
        return self._said(before)

    # -- steps ----------------------------------------------------------------------------------
    async def _partition(self, shape: str, node: str | None) -> None:
        leader = self.ctx.find_leader is not None
        shapes = [*grudges.SHAPES, *(["isolate-leader"] if leader else [])]
        if shape not in shapes:
            raise FaultRefused(f"unknown partition shape {shape!r}; known: {', '.join(shapes)}")
        if node is not None and shape != "isolate":
            raise FaultRefused(f"--shape {shape} takes no node; `--shape isolate {node}` cuts {node} off")
        target = node
        if shape == "isolate-leader":
            assert self.ctx.find_leader is not None
            target = await self.ctx.find_leader()
            if target is None:
                raise FaultRefused("no node reports itself leader now; nothing to isolate")
        grudge = grudges.make("isolate" if shape == "isolate-leader" else shape, list(self.cluster.nodes),
                              self.rng, target)
        self.ctx.chosen_used = node is not None
        token = ACTING.set("partition")
        try:
            await set_partition(self.ctx, grudge, shape=shape)
        except Exception as e:
            self._refused("partition", e)
        finally:
            ACTING.reset(token)
        if self.partition_pkg is None:
            self.partition_pkg = Partition()

    async def _start(self, pkg: NemesisPackage, node: str | None) -> None:
        instance = pkg.make()
        holder = Holder(instance)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ctx.chosen, self.ctx.chosen_used = node, False
        self.rng.chosen, self.rng.used = node, False

        async def hold() -> None:
            ACTING.set(pkg.name)
            try:
                await instance.start(self.ctx)
            except Exception as e:  # refused: said to the person, recorded as a run records it
                started.set_exception(e)
                return
            started.set_result(None)
            await holder.release.wait()

        holder.task = asyncio.ensure_future(hold())
        try:
            await started
        except Exception as e:
            self._refused(pkg.name, e)
        finally:
            self.ctx.chosen = None
            self.rng.chosen = None
        self.holders.append(holder)

    def _refused(self, package: str, e: Exception) -> None:
        self.log.sink(NEMESIS_ERROR, {"package": package, "phase": "start", "error": f"{type(e).__name__}: {e}"}, {})
        if isinstance(e, FaultRefused):
            raise e
        raise FaultRefused(f"the cluster refused the {package} fault: {e}") from None

    def _record_as(self, package: str, f: str, value: Any) -> None:
        token = ACTING.set(package)
        try:
            self.ctx.record(f, value)
        finally:
            ACTING.reset(token)

    def _said(self, since: int) -> list[str]:
        """The ops recorded since index `since`, one line each."""
        lines = []
        if not self.log.path.exists():
            return lines
        for raw in self.log.path.read_text().splitlines():
            try:
                op = json.loads(raw)
            except ValueError:
                continue
            if int(op.get("index", -1)) >= since and op.get("f") != NEMESIS_ERROR:
                lines.append(describe_op(op))
        return lines


def describe_op(op: dict[str, Any]) -> str:
    """One recorded nemesis op in words: 'kill n2', 'start-partition n1 n2 | n3 (halves)'."""
    from nemesis.partition import sides

    f, value = str(op.get("f")), op.get("value")
    kind = VOCABULARY.starting(f)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = f"{f} {' '.join(value)}"
    elif isinstance(value, dict) and kind is not None and kind.name == "partition":
        text = f"{f} {sides(value)}"
    elif value is None:
        text = f
    else:
        text = f"{f} {json.dumps(value, default=str)}"
    detail = {k: v for k, v in op.items() if k not in ("index", "time", "process", "type", "f", "value", "package",
                                                         "wall")}
    if detail:
        text += " (" + ", ".join(f"{v}" if k == "shape" else f"{k} {v}" for k, v in detail.items()) + ")"
    return text
