"""Disk faults: a node's disk fails (EIO), fills up (ENOSPC) or fsyncs slowly.

The runtime's disk layer inflicts them on itself when told (systems.runtime.
disk_faults): on sim the world's store for the node, on the real backends a
`disk-fault` control frame to the node (local, netns, ssh alike). Systems
see exactly what a failing disk gives them: `OSError` with errno EIO or
ENOSPC from `rt.disk`, or a `sync` that takes longer.

Vocabulary: `disk-fault` {node: {"fault", "ops", "delay_s"}} starts a fault
on the nodes it names; `disk-ok` [nodes] ends it.

Rules they keep (besides nemesis/package.py's):
- `disk-eio`: one node (sometimes the leader): every write, every sync, or
  both (drawn) fail with EIO. `disk-full`: one node's writes fail with
  ENOSPC (deletes and syncs still work).
  At stop the fault is cleared and the node is rebooted (kill, recorded
  with role "reboot after disk fault", and restart), as an operator would
  after a disk error: the node fail-stopped on the error (api.py's rule, any
  system, any backend) and comes back from what its disk holds, without the
  fault (a fault lives as long as the node's incarnation).
- `slow-fsync`: one or two nodes' syncs take 0.05-0.5 s longer; cleared at stop.
- A fault on a node that is down is not inflicted (there is nobody to tell);
  the stop clears only what was put in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.cluster import Capability
from base.faults import Effect, FaultKind, FaultWindow, held, names, node_list
from nemesis.kill import KILL, kill, restart
from nemesis.package import NemesisContext, NemesisPackage, cluster_method

FAULT_OP, OK_OP = "disk-fault", "disk-ok"
REBOOT = "reboot after disk fault"
SLOW_S = (0.05, 0.5)


def _targets(value: Any) -> tuple[str, ...]:
    if isinstance(value, Mapping):
        return tuple(sorted(str(n) for n in value))
    return node_list(value)


def _describe(w: FaultWindow) -> str:
    v = w.value if isinstance(w.value, Mapping) else {}
    parts = []
    for node in sorted(v):
        f = v[node] if isinstance(v[node], Mapping) else {}
        match f.get("fault"):
            case "eio":
                what = "writes and syncs" if f.get("ops") == "both" else f"{f.get('ops')}s"
                parts.append(f"{node}'s disk failed its {what} (EIO)")
            case "enospc":
                parts.append(f"{node}'s disk full (ENOSPC)")
            case _:
                parts.append(f"{node}'s fsyncs {float(f.get('delay_s', 0)):.2f} s slower")
    return f"{', '.join(parts) or names(w.nodes)} {held(w)}"


DISK_FAULT = FaultKind(
    name="disk-fault",
    start=FAULT_OP,
    stop=(OK_OP,),
    colour="#953800",
    effect=Effect.DISK,
    describe=_describe,
    targets=_targets,
    summary="a node's disk failing (EIO), full (ENOSPC) or slow to fsync",
)


async def inflict(ctx: NemesisContext, faults: dict[str, dict[str, Any]]) -> list[str]:
    """Put each node's disk fault in place (nodes that are up), record it; returns the nodes hit."""
    set_fault = cluster_method(ctx, "disk", "set_disk_fault")
    done: dict[str, dict[str, Any]] = {}
    for node, fault in sorted(faults.items()):
        if ctx.cluster.is_up(node) and node not in ctx.killed:
            reply = await set_fault(node, fault)
            done[node] = {k: reply[k] for k in ("fault", "ops", "delay_s")}
    if done:
        ctx.record(FAULT_OP, done)
    return sorted(done)


async def clear(ctx: NemesisContext, nodes: list[str]) -> None:
    if not nodes:
        return
    set_fault = cluster_method(ctx, "disk", "set_disk_fault")
    for node in nodes:
        if ctx.cluster.is_up(node):
            await set_fault(node, None)
    ctx.record(OK_OP, sorted(nodes))


class FailingDisk:
    """One node's disk fails (EIO, or ENOSPC when `full`); cleared and the node rebooted at stop."""

    def __init__(self, name: str, *, full: bool) -> None:
        self.name = name
        self.full = full
        self.hit: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        target = await ctx.pick_target(ctx.running())
        if target is None:
            return
        fault: dict[str, Any] = {"fault": "enospc"} if self.full else \
            {"fault": "eio", "ops": ctx.rng.choice(("write", "sync", "both"))}
        self.hit = await inflict(ctx, {target: fault})

    async def stop(self, ctx: NemesisContext) -> None:
        hit, self.hit = self.hit, []
        await clear(ctx, hit)
        for node in hit:
            await kill(ctx, node, role=REBOOT)
        await restart(ctx, hit)


class SlowFsync:
    """One or two nodes' fsyncs take longer; cleared at stop."""

    name = "slow-fsync"

    def __init__(self) -> None:
        self.hit: list[str] = []

    async def start(self, ctx: NemesisContext) -> None:
        first = await ctx.pick_target(ctx.running())
        if first is None:
            return
        targets = [first]
        rest = [n for n in ctx.running() if n != first]
        if rest and ctx.rng.random() < 0.5:
            targets.append(ctx.rng.choice(rest))
        self.hit = await inflict(ctx, {n: {"fault": "slow-fsync", "delay_s": round(ctx.rng.uniform(*SLOW_S), 3)}
                                       for n in targets})

    async def stop(self, ctx: NemesisContext) -> None:
        hit, self.hit = self.hit, []
        await clear(ctx, hit)


NEEDS = frozenset({Capability.DISK_FAULT, Capability.KILL})

PACKAGES = (
    NemesisPackage(
        name="disk-eio",
        summary="one node's disk fails its writes, syncs or both (EIO); cleared and the node rebooted at stop",
        make=lambda: FailingDisk("disk-eio", full=False),
        kinds=(DISK_FAULT, KILL),
        needs=NEEDS,
    ),
    NemesisPackage(
        name="disk-full",
        summary="one node's disk is full (ENOSPC on writes); cleared and the node rebooted at stop",
        make=lambda: FailingDisk("disk-full", full=True),
        kinds=(DISK_FAULT, KILL),
        needs=NEEDS,
    ),
    NemesisPackage(
        name="slow-fsync",
        summary="one or two nodes' fsyncs take 0.05-0.5 s longer; cleared at stop",
        make=SlowFsync,
        kinds=(DISK_FAULT,),
        needs=frozenset({Capability.DISK_FAULT}),
    ),
)
