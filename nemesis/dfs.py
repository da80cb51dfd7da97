"""Faults aimed at the GFS-like file system's roles: its master, its chunkservers, its disks.

Same shape and rules as nemesis/packages.py (start inflicts then records, stop
cures exactly that and records it; targets from the nodes' own answers and
`ctx.rng`, so a sim run reproduces from its seed). Kills and partitions are
recorded with the core op names, so reports shade them and the final heal
cures them.

- `master-kill`: SIGKILL the master's node (its chunkserver too), restart it
  at stop. The restarted master replays its log and waits out its grace period.
- `master-isolate`: cut the master off from every other node, heal at stop.
  Clients still reach it (the harness's clients are never partitioned), but
  it hears no chunkserver: it declares them dead and leases stop.
- `chunkserver-loss`: SIGKILL one or two chunkservers (never the master's
  node) and keep them down until the master has declared them dead and no
  chunk of a live file is under-replicated any more (bounded by `LOSS_MAX_S`),
  so re-replication really runs; then restart them, holding stale replicas.
- `corrupt`: flip 1-3 bytes inside one replica's chunk file on one node's
  disk, through the cluster's `corrupt_file` (sim disk, or the real file
  under the node's data directory). Recorded as ("corrupt", {node, handle,
  file, offsets}); nothing to cure: the system must find and repair it.

Each names what it needs: `SYSTEMS` (dfs only: a node that does not answer
with a DFS status makes `start` refuse) and `NEEDS` (cluster capabilities;
`corrupt` needs `Capability.CORRUPT`, which ssh clusters do not have yet).
A refusal raises `UnsupportedFault` naming the fault and what is missing,
before anything is done or recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from base.cluster import Capability
from nemesis import grudges
from nemesis.hardware import UnsupportedFault
from nemesis.packages import Fault, NemesisContext, heal_network, restart
from systems.dfs.client import find_master, master_report, replica_files
from systems.runtime.api import RpcError

LOSS_MAX_S = 15.0
POLL_S = 0.25


async def _master(ctx: NemesisContext, fault: str) -> str:
    master = await find_master(ctx.cluster.client, [n for n in ctx.nodes if n not in ctx.killed])
    if master is None:
        raise UnsupportedFault(f"the {fault!r} nemesis applies to the dfs system only: no node named a master")
    return master


class MasterKill:
    """Kill the master's node; restart it at stop."""

    name = "master-kill"
    SYSTEMS = ("dfs",)
    NEEDS = frozenset({Capability.KILL})

    def __init__(self) -> None:
        self.victim: str | None = None

    async def start(self, ctx: NemesisContext) -> None:
        master = await _master(ctx, self.name)
        if master in ctx.killed or master in ctx.paused:
            return
        await ctx.cluster.kill(master)
        ctx.killed.add(master)
        self.victim = master
        ctx.record("kill", [master])

    async def stop(self, ctx: NemesisContext) -> None:
        if self.victim is not None:
            await restart(ctx, [self.victim])
            self.victim = None


class MasterIsolate:
    """Cut the master off from every chunkserver; heal at stop."""

    name = "master-isolate"
    SYSTEMS = ("dfs",)
    NEEDS = frozenset({Capability.PARTITION})

    async def start(self, ctx: NemesisContext) -> None:
        master = await _master(ctx, self.name)
        grudge = grudges.isolate(ctx.nodes, ctx.rng, master)
        await ctx.cluster.partition(grudge)
        ctx.partitioned = True
        ctx.record("start-partition", grudge)

    async def stop(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)


class ChunkserverLoss:
    """Keep one or two chunkservers down until the master has re-replicated around them."""

    name = "chunkserver-loss"
    SYSTEMS = ("dfs",)
    NEEDS = frozenset({Capability.KILL})

    def __init__(self) -> None:
        self.victims: list[str] = []
        self.master: str | None = None

    async def start(self, ctx: NemesisContext) -> None:
        master = await _master(ctx, self.name)
        up = sorted(n for n in ctx.nodes if n != master and n not in ctx.killed and n not in ctx.paused)
        if not up:
            return
        count = 2 if len(up) >= 4 and ctx.rng.random() < 0.5 else 1
        victims = sorted(ctx.rng.sample(up, count))
        for n in victims:
            await ctx.cluster.kill(n)
            ctx.killed.add(n)
        self.victims, self.master = victims, master
        ctx.record("kill", victims)

    async def stop(self, ctx: NemesisContext) -> None:
        if not self.victims:
            return
        rt = ctx.cluster.client
        deadline = rt.now() + LOSS_MAX_S
        while rt.now() < deadline and self.master is not None and self.master not in ctx.killed:
            report = await master_report(rt, self.master)
            if report is not None:
                dead = not set(self.victims) & set(report.get("alive") or [])
                if dead and not (report.get("fsck") or {}).get("under_replicated"):
                    break
            await rt.sleep(POLL_S)
        await restart(ctx, self.victims)
        self.victims = []


class Corrupt:
    """Flip a few bytes of one replica on one node's disk."""

    name = "corrupt"
    SYSTEMS = ("dfs",)
    NEEDS = frozenset({Capability.CORRUPT})

    async def start(self, ctx: NemesisContext) -> None:
        cluster = ctx.cluster
        if Capability.CORRUPT not in cluster.capabilities or not hasattr(cluster, "corrupt_file"):
            raise UnsupportedFault(
                f"the {self.name!r} nemesis needs a cluster that can flip bytes on a node's disk "
                f"({type(cluster).__name__} cannot); use --backend sim, local or netns")
        await _master(ctx, self.name)
        candidates: list[tuple[str, dict[str, Any]]] = []
        for node in sorted(n for n in ctx.nodes if n not in ctx.killed and n not in ctx.paused):
            try:
                held = await replica_files(cluster.client, node)
            except RpcError:
                continue
            candidates += [(node, r) for r in held if isinstance(r.get("length"), int) and r["length"] > 0]
        if not candidates:
            return
        node, replica = ctx.rng.choice(candidates)
        offsets = sorted({ctx.rng.randrange(replica["length"]) for _ in range(ctx.rng.randint(1, 3))})
        try:
            flipped = await cluster.corrupt_file(node, str(replica["file"]), offsets)  # type: ignore[attr-defined]
        except FileNotFoundError:
            return  # deleted meanwhile (garbage collected or replaced): nothing broken, nothing recorded
        if flipped:
            ctx.record("corrupt", {"node": node, "handle": replica["handle"], "file": replica["file"],
                                   "offsets": flipped})

    async def stop(self, ctx: NemesisContext) -> None:
        return None  # a lying disk is not cured by the harness: the system must find and repair it


PACKAGES: dict[str, Callable[[], Fault]] = {
    "master-kill": MasterKill,
    "master-isolate": MasterIsolate,
    "chunkserver-loss": ChunkserverLoss,
    "corrupt": Corrupt,
}
