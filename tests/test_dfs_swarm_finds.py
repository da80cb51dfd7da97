"""Two DFS bugs found by no-bug swarm seeds, each built again here in the simulator.

- `harness run mapreduce --backend sim --swarm --seed 2006` lost a chunk: a lease round in which one
  replica's answer was lost moved the other replica alone to a new version; the master then deleted the
  replica it had left behind as stale, although no lease had been granted since and its bytes were every
  acknowledged write; the one current copy was then found corrupt, and nothing was left.
- `harness run dfs --backend sim --swarm --seed 1092` lost an acknowledged append: a primary whose
  replica the master had moved to a newer version went on ordering writes under its old lease.

Every wait is on a condition with a bound, in virtual time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from systems.dfs import DEFAULT_OPTIONS, start_node
from systems.dfs.client import DfsClient, DfsError
from systems.dfs.namespace import Namespace
from systems.dfs.replicas import Held, ReplicaMap
from systems.runtime.api import NodeConfig
from systems.runtime.sim import SimWorld

NODES = ["n1", "n2", "n3", "n4", "n5"]
MASTER = "n1"
CHUNK = 256 * 1024
OPTIONS = {**DEFAULT_OPTIONS, "chunk_size": CHUNK, "block_size": 64 * 1024, "scrub_interval_s": 1e6}
"""The scrubber off: the corrupt replica is found by the clone that reads it, at a known step."""


async def until(rt: Any, cond: Callable[[], Awaitable[bool]], within_s: float, step_s: float = 0.1) -> bool:
    deadline = rt.now() + within_s
    while rt.now() < deadline:
        if await cond():
            return True
        await rt.sleep(step_s)
    return await cond()


def test_the_replicas_a_failed_lease_round_left_behind_survive_the_loss_of_the_one_it_moved() -> None:
    world = SimWorld(3, NODES)
    config = NodeConfig(system="dfs", options=OPTIONS, seed=3)

    async def main() -> None:
        for n in NODES:
            await world.start(n, start_node, config)
        rt = world.client("client")
        c = DfsClient(rt, NODES, home=MASTER, timeout_s=10.0)
        data = bytes(range(256)) * (6 * CHUNK // 256)  # six chunks: some hold no replica on the master
        await c.put("/f", data)
        st = await c.stat("/f")
        index, chunk = next((i, ch) for i, ch in enumerate(st["chunks"]) if MASTER not in ch["replicas"])
        handle, written = chunk["handle"], chunk["version"]
        moved, *left = sorted(chunk["replicas"])

        async def lease_gone() -> bool:
            state = (await c.status(MASTER))["master_state"]
            return all(le["handle"] != handle or le["expires_in_s"] <= 0 for le in state["leases"])

        assert await until(rt, lease_gone, 20.0)
        # One replica's disk goes bad where nothing reads it yet; the master loses touch with the others.
        store = world.stores[moved]
        name = f"chunks/{handle}.dat"
        store.current[name][100] ^= 0xFF
        store.durable[name] = bytes(store.current[name])
        world.partition({MASTER: left, **{n: [MASTER] for n in left}})
        writer = DfsClient(rt, NODES, home=moved, timeout_s=3.0)
        try:
            await writer.write("/f", index * CHUNK, b"never" * 10)
        except DfsError:
            pass  # one replica took the new version: too few for a lease, nothing written
        else:
            raise AssertionError("a write succeeded with one replica answering its bump")
        st = await c.stat("/f")
        now = st["chunks"][index]
        assert now["version"] > written and not set(now["replicas"]) & set(left), f"the setup did not happen: {now}"
        world.heal()

        async def whole_again() -> bool:
            ch = (await c.stat("/f"))["chunks"][index]
            return len(ch["replicas"]) >= OPTIONS["goal"] and moved not in ch["replicas"]

        assert await until(rt, whole_again, 30.0), "the chunk never got its replicas back"
        for home in NODES:
            got = await DfsClient(rt, NODES, home=home, timeout_s=10.0).read("/f", index * CHUNK, CHUNK)
            assert got == data[index * CHUNK : (index + 1) * CHUNK], f"reading near {home}: chunk {handle} lost"

    world.run(main())


def test_only_a_replica_at_or_above_the_last_leased_version_is_readmissible() -> None:
    ns = Namespace()
    ns.apply(["create", "/f", "c"])
    ns.apply(["chunk", "/f", 0, 7])
    ns.apply(["version", 7, 2])  # a lease round
    ns.apply(["version", 7, 4, "no-lease"])  # a clone's bump, or a lease round too few answered
    assert (ns.versions[7], ns.leased[7]) == (4, 2)
    assert Namespace.from_wire(ns.to_wire()).leased[7] == 2
    old = ns.to_wire()
    del old["leased"]
    assert Namespace.from_wire(old).leased[7] == 4, "a checkpoint without it must count every version as leased"
    replicas = ReplicaMap()
    for node, version in [("a", 4), ("b", 2), ("c", 1), ("d", 3), ("e", 2)]:
        replicas.add(7, node, Held(version, 10))
    replicas.mark_bad(7, "d")
    alive = {"a", "b", "c", "d"}
    assert replicas.readmissible(7, ns.versions[7], ns.leased[7], alive) == ["b"]  # c missed a lease; d bad; e dead
    assert ReplicaMap(ignore_versions=True).readmissible(7, 4, 2, alive) == []


def test_a_primary_whose_replica_moved_past_its_lease_orders_no_more_writes() -> None:
    """Found by `harness sweep dfs --swarm` seed 1092: a master whose clock ran ahead moved a chunk on (and took
    a replica back in) while the old primary's slow clock kept its lease; the primary went on ordering appends
    at the replica's new version, its old members (moved on too) accepted them, and the new member never saw
    an acknowledged append. Here the master's bump is sent by hand, as the master, while the lease still runs."""
    world = SimWorld(4, NODES)
    config = NodeConfig(system="dfs", options=OPTIONS, seed=4)

    async def main() -> None:
        for n in NODES:
            await world.start(n, start_node, config)
        rt = world.client("client")
        c = DfsClient(rt, NODES, home=MASTER, timeout_s=10.0)
        await c.put("/g", b"a" * 1000)
        await c.write("/g", 0, b"b" * 10)  # a lease, running for lease_s
        state = (await c.status(MASTER))["master_state"]
        lease = next(le for le in state["leases"] if le["expires_in_s"] > 1.0)
        moved_to = lease["version"] + 5
        for n in lease["members"]:
            await world.runtimes[MASTER].call(n, "cs.bump", {"handle": lease["handle"], "version": moved_to})
        writer = DfsClient(rt, NODES, home=lease["primary"], timeout_s=2.0)
        try:
            await writer.write("/g", 0, b"c" * 10)
        except DfsError as e:
            assert "not-primary" in str(e) or "version" in str(e), e
        else:
            raise AssertionError(f"a write was acknowledged at version {moved_to}, which no lease was granted for")

    world.run(main())
