"""A chunk version number names one set of replicas: a bump that may have landed is never reused.

GFS's rule for a successful write (Table 1, "defined"): every replica holds the
same bytes. Versions are how the master tells a replica that missed writes
from one that did not, so a version number must never be handed out twice to
different replica sets. These cases build, in the simulator, the exact
message losses that once made the master hand the same number out twice:
a round of bumps none of whose answers came back (the bump landed on one
replica all the same), then that replica cut off and declared dead, then the
next lease granted on the others. Every wait is on a condition with a bound,
in virtual time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from systems.dfs import DEFAULT_OPTIONS, start_node
from systems.dfs.client import DfsClient, DfsError
from systems.dfs.namespace import Namespace
from systems.runtime.api import NodeConfig
from systems.runtime.sim import SimWorld

NODES = ["n1", "n2", "n3", "n4", "n5"]
MASTER = "n1"
CHUNK = 256 * 1024
OPTIONS = {**DEFAULT_OPTIONS, "chunk_size": CHUNK, "block_size": 64 * 1024, "rereplicate_s": 1000.0}
"""Re-replication off: it would bump the survivors itself and hide what the next lease does."""


async def until(rt: Any, cond: Callable[[], Awaitable[bool]], within_s: float, step_s: float = 0.1) -> bool:
    deadline = rt.now() + within_s
    while rt.now() < deadline:
        if await cond():
            return True
        await rt.sleep(step_s)
    return await cond()


async def master_state(c: DfsClient) -> dict[str, Any]:
    return dict((await c.status(MASTER))["master_state"])


async def alive(c: DfsClient, node: str) -> bool:
    try:
        return node in (await master_state(c))["alive"]
    except DfsError:
        return False


def run_case(seed: int, *, restart_master: bool) -> None:
    world = SimWorld(seed, NODES)
    config = NodeConfig(system="dfs", options=OPTIONS, seed=seed)

    async def main() -> None:
        for n in NODES:
            await world.start(n, start_node, config)
        rt = world.client("client")
        c = DfsClient(rt, NODES, home=MASTER, timeout_s=10.0)
        before = bytes(range(256)) * (6 * CHUNK // 256)  # six chunks: some hold no replica on the master
        await c.put("/f", before)
        st = await c.stat("/f")
        index, chunk = next((i, ch) for i, ch in enumerate(st["chunks"]) if MASTER not in ch["replicas"])
        handle = chunk["handle"]
        loner, *others = sorted(chunk["replicas"])

        async def lease_gone() -> bool:
            return all(le["handle"] != handle or le["expires_in_s"] <= 0 for le in (await master_state(c))["leases"])

        assert await until(rt, lease_gone, 20.0)

        # The next round of bumps: the loner gets it but its answer is lost; the others never hear it.
        world.partition({MASTER: [loner], **{n: [MASTER] for n in others}})
        writer = DfsClient(rt, NODES, home=others[0], timeout_s=1.5)
        try:
            await writer.write("/f", index * CHUNK, b"lost" * 64)
        except DfsError:
            pass  # no lease could be granted: nothing was written
        else:
            raise AssertionError("a write succeeded with no replica answering its bump")
        # The others answer again; the loner stays cut off until the master declares it dead.
        world.partition({MASTER: [loner]})

        async def loner_dead() -> bool:
            return not await alive(c, loner)

        assert await until(rt, loner_dead, 20.0)
        if restart_master:
            world.crash(MASTER)
            await world.restart(MASTER)

            async def master_back() -> bool:
                try:
                    await c.stat("/f", timeout_s=0.5)
                    return True
                except DfsError:
                    return False

            assert await until(rt, master_back, 20.0)
        update = b"new!" * 64
        writer = DfsClient(rt, NODES, home=others[0], timeout_s=30.0)
        await writer.write("/f", index * CHUNK, update)  # a lease on the others alone: a successful write
        world.heal()

        async def loner_back() -> bool:
            return await alive(c, loner)

        assert await until(rt, loner_back, 20.0)
        await rt.sleep(2.0)  # a few heartbeats: the master has judged the loner's replica
        expected = update + before[index * CHUNK + len(update) : (index + 1) * CHUNK]
        for home in [loner, *others]:
            reader = DfsClient(rt, NODES, home=home, timeout_s=10.0)
            got = await reader.read("/f", index * CHUNK, CHUNK)
            assert got == expected, f"reading near {home}: chunk {handle} replicas disagree after a successful write"

    world.run(main())


def test_a_bump_nobody_confirmed_is_never_reused_for_other_replicas() -> None:
    run_case(1, restart_master=False)


def test_a_bump_nobody_confirmed_is_never_reused_after_the_master_restarts() -> None:
    run_case(2, restart_master=True)


def test_an_issued_version_is_never_issued_again_and_survives_a_checkpoint() -> None:
    ns = Namespace()
    ns.apply(["create", "/f", "c"])
    ns.apply(["chunk", "/f", 0, 7])
    assert ns.next_version(7) == 2
    ns.apply(["issue", 7, 2])  # sent, never confirmed: the current version stays 1
    assert ns.versions[7] == 1 and ns.next_version(7) == 3
    assert ns.check(["issue", 7, 2]) is not None, "a version issued once was accepted a second time"
    assert Namespace.from_wire(ns.to_wire()).next_version(7) == 3, "a checkpoint forgot an issued version"
    ns.apply(["version", 7, 2])  # adopted from a replica that did take it
    assert ns.next_version(7) == 3
