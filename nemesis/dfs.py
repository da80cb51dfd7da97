"""Faults aimed at the GFS-like file system's roles: its master, its chunkservers, its disks.

Same rules as every package (nemesis/package.py): start inflicts then
records, stop cures exactly that and records it; targets come from the
nodes' own answers and `ctx.rng`, so a sim run reproduces from its seed.
Kills and partitions are recorded with the kill and partition kinds (the
op's `role` says whom they hit), so reports shade them and the final heal
cures them.

- `master-kill`: SIGKILL the master's node (its chunkserver too), restart it
  at stop. The restarted master replays its log and waits out its grace period.
- `master-isolate`: cut the master off from every other node, heal at stop.
  Clients still reach it (the harness's clients are never partitioned), but
  it hears no chunkserver: it declares them dead and leases stop.
- `chunkserver-loss`: SIGKILL one or two chunkservers (never the master's
  node) and keep them down until the master has declared them dead and has
  re-replicated every chunk of a live file it can (bounded by `LOSS_MAX_S`):
  none is under-replicated, or, with fewer live chunkservers than the goal
  (3 nodes, one down), every live one already holds a current replica of it,
  so there is nowhere left to copy it; then restart them, holding stale
  replicas. (Waiting for a goal the master cannot reach would hold every
  such loss the full bound and starve the faults dealt after it.)
- `corrupt`: flip 1-3 bytes inside one replica's chunk file on one node's
  disk, through the cluster's `corrupt_file` (sim disk, or the real file
  under the node's data directory). Its own kind, `corrupt` {node, handle,
  file, offsets}, is a one-off: nothing to cure, the system must find and
  repair it. On a cluster that holds no data yet it waits up to
  `WAIT_FOR_DATA_S` for some. It needs `Capability.CORRUPT` (sim, local, netns; not ssh yet).

All four apply to dfs and to mapreduce, whose every node runs its DFS roles
in the same process (`Requirements.systems`); the catalog refuses them
elsewhere before a run starts.
"""

from __future__ import annotations

from typing import Any

from base.cluster import Capability
from base.faults import Effect, FaultKind, FaultWindow
from nemesis import grudges
from nemesis.kill import KILL, KILL_OP, kill, restart
from nemesis.package import NemesisContext, NemesisPackage, Requirements, UnsupportedFault, heal_network
from nemesis.partition import PARTITION, partition
from systems.dfs.client import find_master, master_report, replica_files
from systems.runtime.api import RpcError

LOSS_MAX_S = 15.0
WAIT_FOR_DATA_S = 5.0
POLL_S = 0.25
CORRUPT_OP = "corrupt"
DFS = frozenset({"dfs", "mapreduce"})
"""Systems whose nodes run the DFS roles and answer its status RPCs."""


def _corrupted_node(value: Any) -> tuple[str, ...]:
    node = value.get("node") if isinstance(value, dict) else None
    return (node,) if isinstance(node, str) else ()


def _describe_corrupt(w: FaultWindow) -> str:
    v = w.value if isinstance(w.value, dict) else {}
    where = ", ".join(str(o) for o in v.get("offsets") or [])
    return f"flipped byte(s) {where} of {v.get('file')} (chunk {v.get('handle')}) on {v.get('node')}"


CORRUPT = FaultKind(
    name="corrupt",
    start=CORRUPT_OP,
    stop=(),
    colour="#cf222e",
    effect=Effect.DISK,
    describe=_describe_corrupt,
    targets=_corrupted_node,
    summary="bytes of one file on a node's disk flipped",
)


async def _master(ctx: NemesisContext, fault: str) -> str:
    master = await find_master(ctx.cluster.client, ctx.running())
    if master is None:
        raise UnsupportedFault(f"the {fault!r} nemesis found no node naming a dfs master")
    return master


class MasterKill:
    """Kill the master's node; restart it at stop."""

    name = "master-kill"

    def __init__(self) -> None:
        self.victim: str | None = None

    async def start(self, ctx: NemesisContext) -> None:
        master = await _master(ctx, self.name)
        if master in ctx.killed or master in ctx.paused:
            return
        await kill(ctx, master, role="master")
        self.victim = master

    async def stop(self, ctx: NemesisContext) -> None:
        if self.victim is not None:
            await restart(ctx, [self.victim])
            self.victim = None


class MasterIsolate:
    """Cut the master off from every chunkserver; heal at stop."""

    name = "master-isolate"

    async def start(self, ctx: NemesisContext) -> None:
        master = await _master(ctx, self.name)
        await partition(ctx, grudges.isolate(ctx.nodes, ctx.rng, master), shape="isolate the master")

    async def stop(self, ctx: NemesisContext) -> None:
        await heal_network(ctx)


class ChunkserverLoss:
    """Keep one or two chunkservers down until the master has re-replicated around them."""

    name = "chunkserver-loss"

    def __init__(self) -> None:
        self.victims: list[str] = []
        self.master: str | None = None

    async def start(self, ctx: NemesisContext) -> None:
        master = await _master(ctx, self.name)
        up = [n for n in ctx.running() if n != master]
        if not up:
            return
        count = 2 if len(up) >= 4 and ctx.rng.random() < 0.5 else 1
        victims = sorted(ctx.rng.sample(up, count))
        for n in victims:
            await ctx.cluster.kill(n)
            ctx.killed.add(n)
        self.victims, self.master = victims, master
        ctx.record(KILL_OP, victims, role="chunkserver")

    async def stop(self, ctx: NemesisContext) -> None:
        if not self.victims:
            return
        rt = ctx.cluster.client
        deadline = rt.now() + LOSS_MAX_S
        while rt.now() < deadline and self.master is not None and self.master not in ctx.killed:
            report = await master_report(rt, self.master)
            if report is not None and _rereplicated(report, self.victims):
                break
            await rt.sleep(POLL_S)
        await restart(ctx, self.victims)
        self.victims = []


def _rereplicated(report: dict[str, Any], victims: list[str]) -> bool:
    """The master has declared every victim dead and has no chunk left to copy: each chunk of a live file
    fsck still counts under-replicated already has a current replica on every chunkserver it believes
    alive (fewer live chunkservers than the goal, as 3 nodes with one down: nowhere to put another copy,
    so the master's own re-replication target, min(goal, alive), is met)."""
    alive = set(report.get("alive") or [])
    if set(victims) & alive:
        return False
    under = (report.get("fsck") or {}).get("under_replicated") or []
    return all(len(set(u.get("current") or []) & alive) >= len(alive) for u in under)


class Corrupt:
    """Flip a few bytes of one replica on one node's disk."""

    name = "corrupt"

    async def start(self, ctx: NemesisContext) -> None:
        cluster = ctx.cluster
        flip = getattr(cluster, "corrupt_file", None)
        if Capability.CORRUPT not in cluster.capabilities or flip is None:
            raise UnsupportedFault(
                f"the {self.name!r} nemesis needs a cluster that can flip bytes on a node's disk "
                f"({type(cluster).__name__} cannot); use --backend sim, local or netns")
        await _master(ctx, self.name)
        candidates = await self._candidates(ctx)
        for _ in range(int(WAIT_FOR_DATA_S / POLL_S)):
            if candidates:
                break
            await cluster.client.sleep(POLL_S)  # nothing written yet (a fresh cluster): wait a little for data
            candidates = await self._candidates(ctx)
        if not candidates:
            return
        node, replica = ctx.rng.choice(candidates)
        offsets = sorted({ctx.rng.randrange(replica["length"]) for _ in range(ctx.rng.randint(1, 3))})
        try:
            flipped = await flip(node, str(replica["file"]), offsets)
        except FileNotFoundError:
            return  # deleted meanwhile (garbage collected or replaced): nothing broken, nothing recorded
        if flipped:
            ctx.record(CORRUPT_OP, {"node": node, "handle": replica["handle"], "file": replica["file"],
                                    "offsets": flipped})

    async def _candidates(self, ctx: NemesisContext) -> list[tuple[str, dict[str, Any]]]:
        """(node, replica) for every non-empty replica on a running node."""
        out: list[tuple[str, dict[str, Any]]] = []
        for node in ctx.running():
            try:
                held = await replica_files(ctx.cluster.client, node)
            except RpcError:
                continue
            out += [(node, r) for r in held if isinstance(r.get("length"), int) and r["length"] > 0]
        return out

    async def stop(self, ctx: NemesisContext) -> None:
        return None  # a lying disk is not cured by the harness: the system must find and repair it


PACKAGES = (
    NemesisPackage(
        name="master-kill",
        summary="kill the dfs master's node, restart it later (it replays its log and waits out a lease)",
        make=MasterKill,
        kinds=(KILL,),
        needs=frozenset({Capability.KILL}),
        requires=Requirements(systems=DFS),
    ),
    NemesisPackage(
        name="master-isolate",
        summary="cut the dfs master off from every chunkserver, heal later",
        make=MasterIsolate,
        kinds=(PARTITION,),
        needs=frozenset({Capability.PARTITION}),
        requires=Requirements(systems=DFS, min_nodes=2),
    ),
    NemesisPackage(
        name="chunkserver-loss",
        summary="kill one or two dfs chunkservers and keep them down until the master re-replicated around them",
        make=ChunkserverLoss,
        kinds=(KILL,),
        needs=frozenset({Capability.KILL}),
        requires=Requirements(systems=DFS, min_nodes=2),
    ),
    NemesisPackage(
        name="corrupt",
        summary="flip 1-3 bytes of one replica's chunk file on a node's disk (the system must find and repair it)",
        make=Corrupt,
        kinds=(CORRUPT,),
        needs=frozenset({Capability.CORRUPT}),
        requires=Requirements(systems=DFS),
    ),
)
