"""The DFS end to end: a whole cluster in the simulator (crashes, corruption, restarts, garbage), and
real node processes on loopback driven through the client library and the command line.

Every wait is on a condition with a bound (`until`), in virtual time in sim.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import pytest

from systems.dfs import DEFAULT_OPTIONS, start_node
from systems.dfs.chunkstore import decode_meta
from systems.dfs.client import DfsClient, DfsError
from systems.runtime.api import NodeConfig, RemoteError, unframe_file
from systems.runtime.sim import SimWorld

NODES = ["n1", "n2", "n3", "n4"]
SMALL = {**DEFAULT_OPTIONS, "chunk_size": 256 * 1024, "block_size": 64 * 1024}


def sim_cluster(seed: int = 1, nodes: list[str] = NODES, **options: Any) -> tuple[SimWorld, NodeConfig]:
    return SimWorld(seed, nodes), NodeConfig(system="dfs", options={**SMALL, **options}, seed=seed)


async def until(rt: Any, cond: Callable[[], Awaitable[bool]], within_s: float, step_s: float = 0.1) -> bool:
    deadline = rt.now() + within_s
    while rt.now() < deadline:
        if await cond():
            return True
        await rt.sleep(step_s)
    return await cond()


async def healthy(c: DfsClient) -> bool:
    try:
        return bool((await c.fsck(timeout_s=1.0))["healthy"])
    except DfsError:
        return False


def run_sim(world: SimWorld, config: NodeConfig, body: Callable[[Any, DfsClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        for n in world.nodes:
            await world.start(n, start_node, config)
        rt = world.client("client")
        return await body(rt, DfsClient(rt, world.nodes, home="n2", timeout_s=10.0))

    return world.run(main())


def test_namespace_records_and_files_round_trip() -> None:
    world, config = sim_cluster()

    async def body(rt: Any, c: DfsClient) -> None:
        await c.create("/logs/a")
        with pytest.raises(DfsError) as e:
            await c.create("/logs/a")
        assert e.value.code == "exists" and e.value.definite
        offsets = [await c.append("/logs/a", b"r%03d|" % i * 2000) for i in range(40)]
        assert offsets == sorted(offsets) and len(set(offsets)) == 40
        assert (await c.stat("/logs/a"))["chunks"][1]  # 40 records of 10000 bytes spill into a second chunk
        blob = bytes(range(256)) * 2500  # 640000 bytes: 3 chunks, the last partial
        await c.put("/data/b", blob)
        assert await c.get("/data/b") == blob
        assert await c.read("/data/b", 262_000, 1000) == blob[262_000:263_000]
        await c.write("/data/b", 300_000, b"X" * 10)
        assert (await c.get("/data/b"))[299_998:300_012] == blob[299_998:300_000] + b"X" * 10 + blob[300_010:300_012]
        await c.rename("/data/b", "/data/c")
        assert await c.ls("/data") == ["/data/c"]
        await c.delete("/logs/a")
        assert await c.ls() == ["/data/c"]
        with pytest.raises(DfsError) as e:
            await c.stat("/logs/a")
        assert e.value.code == "not-found"
        # lazy deletion: the hidden file's chunks are purged and their replicas deleted later
        st = await c.status("n1")
        hidden = [h for t in st["master_state"]["hidden"].values() for h in t["chunks"]]
        assert hidden

        async def reclaimed() -> bool:
            held = set()
            for n in NODES:
                held |= {int(h) for h in (await c.status(n))["chunkserver"]["replicas"]}
            return not held & set(hidden)

        assert await until(rt, reclaimed, 15.0)

    run_sim(world, config, body)


def test_a_lost_chunkserver_is_replaced_most_endangered_first() -> None:
    world, config = sim_cluster(seed=3)

    async def body(rt: Any, c: DfsClient) -> None:
        await c.put("/f", bytes(700_000))
        st = await c.stat("/f")
        victim = next(n for n in st["chunks"][0]["replicas"] if n != "n1")  # a chunkserver, not the master
        world.crash(victim)

        async def replaced() -> bool:
            chunks = (await c.stat("/f"))["chunks"]
            return all(len(ch["replicas"]) == 3 and victim not in ch["replicas"] for ch in chunks)

        assert await until(rt, replaced, 20.0), await c.fsck()
        assert await healthy(c)
        events = (await c.status("n1"))["master_state"]["events"]
        assert any(e["kind"] == "chunkserver-dead" and e["node"] == victim for e in events)
        assert any(e["kind"] == "re-replicated" for e in events)
        assert await c.get("/f") == bytes(700_000)

    run_sim(world, config, body)


def test_a_restarted_chunkservers_stale_replica_is_never_served_and_is_deleted() -> None:
    world, config = sim_cluster(seed=4)

    async def body(rt: Any, c: DfsClient) -> None:
        await c.create("/log")
        await c.append("/log", b"first")
        st = await c.stat("/log")
        handle = st["chunks"][0]["handle"]
        victim = next(n for n in st["chunks"][0]["replicas"] if n not in ("n1", "n2"))
        world.crash(victim)
        for i in range(20):  # appends go on without it once its lease runs out
            await c.append("/log", b"later%d" % i)
        await world.restart(victim)

        async def stale_gone() -> bool:
            reps = (await c.status(victim))["chunkserver"]["replicas"]
            current = (await c.stat("/log"))["chunks"][0]["version"]
            return str(handle) not in reps or reps[str(handle)]["version"] == current

        assert await until(rt, stale_gone, 10.0)
        reader = DfsClient(rt, NODES, home=victim)
        data = await reader.read_all("/log")
        assert data.count(b"later") == 20

    run_sim(world, config, body)


def test_a_corrupt_replica_is_found_reported_and_replaced() -> None:
    world, config = sim_cluster(seed=5)

    async def body(rt: Any, c: DfsClient) -> None:
        blob = bytes(range(256)) * 800
        await c.put("/f", blob)
        st = await c.stat("/f")
        handle, victim = st["chunks"][0]["handle"], st["chunks"][0]["replicas"][0]
        name = f"chunks/{handle}.dat"
        world.stores[victim].current[name][100] ^= 0xFF
        world.stores[victim].durable[name] = bytes(world.stores[victim].current[name])
        reader = DfsClient(rt, NODES, home=victim)
        assert await reader.get("/f") == blob  # the bad replica answers "corrupt"; another serves

        async def repaired() -> bool:
            chunk = (await c.stat("/f"))["chunks"][0]
            reps = (await c.status(victim, verify=True))["chunkserver"]["replicas"]
            return victim not in chunk["replicas"] and len(chunk["replicas"]) == 3 and (
                str(handle) not in reps or reps[str(handle)]["ok"] is True)

        assert await until(rt, repaired, 15.0)
        log = "\n".join(world.logs[victim])
        assert "dfs-corrupt-replica" in log

    run_sim(world, config, body)


def test_a_corrupt_replica_is_repaired_in_place_when_every_chunkserver_already_holds_the_chunk() -> None:
    """3 chunkservers, goal 3: no node is free to take a copy, so the bad replica is deleted where it lies
    and a good one cloned onto the same node (GFS §5.2); then every chunk has 3 verified replicas at the
    master's version (the dfs-state checker's rule)."""
    nodes = ["n1", "n2", "n3"]
    world, config = sim_cluster(seed=5, nodes=nodes)

    async def body(rt: Any, c: DfsClient) -> None:
        await c.create("/log")
        for i in range(30):
            await c.append("/log", b"rec%03d|" % i * 2000)
        st = await c.stat("/log")
        assert len(st["chunks"]) >= 2 and all(len(ch["replicas"]) == 3 for ch in st["chunks"])
        handle, victim = st["chunks"][0]["handle"], "n2"
        name = f"chunks/{handle}.dat"
        world.stores[victim].current[name][100] ^= 0xFF
        world.stores[victim].durable[name] = bytes(world.stores[victim].current[name])
        before = await DfsClient(rt, nodes, home=victim).read_all("/log")  # the bad replica answers "corrupt"
        assert before.count(b"rec") == 30 * 2000
        assert await until(rt, lambda: _fsck_has(c, "corrupt", handle), 5.0)

        async def every_chunk_whole() -> bool:
            master = (await c.status("n1"))["master_state"]
            reports = [(await c.status(n, verify=True))["chunkserver"]["replicas"] for n in nodes]
            for h in (h for chunks in master["files"].values() for h in chunks):
                version = master["chunks"][str(h)]["version"]
                good = [r for r in reports if str(h) in r and r[str(h)]["ok"] and r[str(h)]["version"] == version]
                if len(good) != 3:
                    return False
            return True

        assert await until(rt, every_chunk_whole, 20.0), unwell(await c.fsck())
        assert await until(rt, lambda: healthy(c), 5.0), unwell(await c.fsck())
        events = (await c.status("n1"))["master_state"]["events"]
        assert any(e["kind"] == "re-replicated" and e["handle"] == handle and e["target"] == victim for e in events)
        assert (await c.read_all("/log")) == before
        await c.append("/log", b"after")  # and the chunk takes writes again

    run_sim(world, config, body)


def test_the_scrubber_finds_corruption_nobody_reads() -> None:
    world, config = sim_cluster(seed=6)

    async def body(rt: Any, c: DfsClient) -> None:
        await c.put("/f", b"y" * 100_000)
        st = await c.stat("/f")
        handle, victim = st["chunks"][0]["handle"], st["chunks"][0]["replicas"][1]
        buf = world.stores[victim].current[f"chunks/{handle}.dat"]
        buf[5] ^= 0x01
        assert await until(rt, lambda: _fsck_has(c, "corrupt", handle), 5.0) or await until(
            rt, lambda: healthy(c), 10.0)
        assert await until(rt, lambda: healthy(c), 15.0)
        assert victim not in (await c.stat("/f"))["chunks"][0]["replicas"] or (
            (await c.status(victim, verify=True))["chunkserver"]["replicas"][str(handle)]["ok"])

    run_sim(world, config, body)


def unwell(fsck: dict[str, Any]) -> dict[str, Any]:
    """What fsck found wrong (for a failing assertion's message)."""
    return {k: fsck[k] for k in ("under_replicated", "corrupt", "stale", "lost")}


async def _fsck_has(c: DfsClient, kind: str, handle: int) -> bool:
    return any(x["handle"] == handle for x in (await c.fsck())[kind])


def test_the_namespace_survives_master_crashes_and_checkpoints() -> None:
    world, config = sim_cluster(seed=7, checkpoint_every=5)

    async def body(rt: Any, c: DfsClient) -> None:
        for i in range(12):
            await c.create(f"/d/f{i}")
        await c.rename("/d/f0", "/d/g0")
        await c.delete("/d/f1")
        await c.append("/d/f2", b"hello")
        assert (await c.status("n1"))["master_state"]["log"]["checkpoints"] >= 2  # every 5 records
        world.crash("n1")
        await world.restart("n1")
        assert await c.ls("/d") == sorted([*(f"/d/f{i}" for i in range(2, 12)), "/d/g0"])
        st = await c.status("n1")
        assert st["master_state"]["log"]["checkpoints"] == 0  # a fresh incarnation; it loaded one
        assert st["master_state"]["grace"]
        assert await c.read_all("/d/f2") == b"hello"
        await c.append("/d/f2", b" world")  # leases resume after the grace period
        assert await c.read_all("/d/f2") == b"hello world"
        cp = msgpack.unpackb(unframe_file(world.stores["n1"].durable["master/checkpoint"], "checkpoint"),
                             strict_map_key=False)
        assert cp["seq"] >= 10 and "/d/g0" in cp["ns"]["files"]

    run_sim(world, config, body)


def test_malformed_requests_are_logged_and_dropped_and_the_node_keeps_serving() -> None:
    world, config = sim_cluster(seed=8)
    garbage: list[Any] = [None, 7, "x", [], {"handle": "one"}, {"path": 5}, {"node": "n9"},
                          {"handle": 1, "version": 1, "serial": 1, "ops": [["zap"]]}]
    methods = ["master.create", "master.delete", "master.rename", "master.stat", "master.chunk", "master.lease",
               "master.heartbeat", "master.report_corrupt", "cs.push", "cs.append", "cs.write", "cs.apply",
               "cs.read", "cs.create", "cs.bump", "cs.grant", "cs.clone", "cs.delete", "status"]

    async def body(rt: Any, c: DfsClient) -> None:
        await c.create("/ok")
        for method in methods:
            for msg in garbage:
                if method == "status" and msg is None:
                    continue  # `status` with no body is the harness's plain status request
                with pytest.raises(RemoteError) as e:
                    await rt.call("n1", method, msg, timeout=2.0)
                assert e.value.code == "bad-request" and e.value.definite, (method, msg, e.value)
        await c.append("/ok", b"still serving")
        assert await c.read_all("/ok") == b"still serving"
        status = await rt.call("n1", "status", None, timeout=2.0)
        return status["chunkserver"]["dropped"]

    dropped = run_sim(world, config, body)
    assert dropped["dfs-bad-request"] == len(methods) * len(garbage) - 1, dropped
    lines = [json.loads(x) for x in world.logs["n1"]]
    logged = [x for x in lines if x["event"] in ("dfs-bad-request", "dfs-bad-request-summary")]
    assert 0 < len(logged) < dropped["dfs-bad-request"]  # every one counted, the log kept to a trickle
    assert not any(x["event"] in ("handler-failed", "task-failed") for x in lines)


def test_same_seed_same_run() -> None:
    def once() -> str:
        world, config = sim_cluster(seed=9)

        async def body(rt: Any, c: DfsClient) -> None:
            await c.put("/a", bytes(300_000))
            for i in range(5):
                await c.append("/a", b"rec%d" % i)
            world.crash("n3")
            await c.append("/a", b"after")

        run_sim(world, config, body)
        return world.digest()

    assert once() == once()


# ---------------------------------------------------------------- real processes on loopback


@contextmanager
def real_nodes(tmp_path: Path, nodes: list[str], cluster: Path) -> Iterator[None]:
    """Node processes on loopback (chunks of 256 KiB) with their cluster file at `cluster` and their data
    under tmp_path/data/NODE; stopped on the way out."""
    from harness.backends.local import free_ports

    ports = free_ports(len(nodes))
    cluster.write_text(json.dumps({
        "system": "dfs", "seed": 1, "options": {"chunk_size": 262144},
        "nodes": {n: {"host": "127.0.0.1", "port": p} for n, p in zip(nodes, ports, strict=True)},
    }))
    procs = [subprocess.Popen([sys.executable, "-m", "systems.dfs", "--cluster", str(cluster), "--id", n,
                               "--data-dir", str(tmp_path / "data" / n), "--log", str(tmp_path / f"{n}.log")])
             for n in nodes]
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


@pytest.mark.real
@pytest.mark.slow
def test_real_nodes_and_the_command_line(tmp_path: Path) -> None:
    nodes = ["n1", "n2", "n3"]
    cluster = tmp_path / "cluster.json"

    def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "systems.dfs.cli", "--cluster", str(cluster),
                               "--timeout", "20", *args], input=stdin, capture_output=True, timeout=60)

    with real_nodes(tmp_path, nodes, cluster):
        local = tmp_path / "in.bin"
        blob = bytes(range(256)) * 3000
        local.write_bytes(blob)
        r = cli("put", str(local), "/data/blob")
        assert r.returncode == 0, r.stderr
        r = cli("get", "/data/blob", str(tmp_path / "out.bin"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "out.bin").read_bytes() == blob
        assert cli("get", "/data/blob").stdout == blob
        for word in ("one", "two"):
            r = cli("append", "/log", word)
            assert r.returncode == 0 and "offset" in r.stdout.decode(), r.stderr
        assert cli("get", "/log").stdout == b"onetwo"
        assert cli("mv", "/log", "/log2").returncode == 0
        assert cli("ls").stdout.decode().split() == ["/data/blob", "/log2"]
        # a mutation that failed on one replica (a slow push on a busy machine) leaves that replica stale
        # and the master re-replicates it (§4.3): wait, bounded, for every chunk to reach its goal
        deadline = time.monotonic() + 60
        while True:
            stat = json.loads(cli("stat", "/data/blob").stdout)
            if len(stat["chunks"]) == 3 and all(len(ch["replicas"]) == 3 for ch in stat["chunks"]):
                break
            assert time.monotonic() < deadline, f"chunks short of their goal after 60 s: {stat}"
            time.sleep(0.5)
        assert cli("rm", "/log2").returncode == 0
        r = cli("stat", "/log2")
        assert r.returncode == 1 and r.stderr.decode().startswith("dfs: error: not-found")
        assert json.loads(cli("fsck").stdout)["files"] == 1
        statuses = [json.loads(x) for x in cli("status").stdout.decode().splitlines()]
        assert [s["node"] for s in statuses] == nodes
        # a file written by the system on disk, with its checksums in msgpack beside it
        meta_file = tmp_path / "data" / "n2" / "chunks" / f"{stat['chunks'][0]['handle']}.meta"
        meta = decode_meta(meta_file.read_bytes())
        assert meta is not None and meta.length == 262144 and len(meta.crcs) == 4
        bad = cli("--cluster", "x", "ls")
        assert bad.returncode == 2
        r = subprocess.run([sys.executable, "-m", "systems.dfs.cli", "--cluster", str(tmp_path / "nope.json"), "ls"],
                           capture_output=True, timeout=30)
        assert r.returncode == 2 and r.stderr.decode().count("\n") == 1


@pytest.mark.real
@pytest.mark.slow
def test_real_nodes_repair_a_corrupt_replica_when_every_chunkserver_holds_the_chunk(tmp_path: Path) -> None:
    """The sim case above on real processes and real files: 3 chunkservers, goal 3, bytes flipped in one
    replica's file on disk; the bad replica is replaced on its own node within a bound."""
    from harness.backends.processes import flip_bytes
    from systems.runtime.node_main import load_cluster_file
    from systems.runtime.real import ClientEndpoint

    nodes = ["n1", "n2", "n3"]
    cluster = tmp_path / "cluster.json"

    async def body() -> None:
        ep = ClientEndpoint(load_cluster_file(cluster).nodes)
        c = DfsClient(ep, nodes, master="n1", timeout_s=10.0)
        try:
            assert await until(ep, lambda: healthy(c), 30.0)  # every node up and heard from
            blob = bytes(range(256)) * 1500
            await c.put("/f", blob)  # closed: never written again, so no new version makes the bad one stale
            handle = (await c.stat("/f"))["chunks"][0]["handle"]
            assert flip_bytes(tmp_path / "data" / "n2" / "chunks" / f"{handle}.dat", [100, 70_000]) == [100, 70_000]

            async def whole() -> bool:
                chunk = (await c.stat("/f"))["chunks"][0]
                rep = (await c.status("n2", verify=True))["chunkserver"]["replicas"].get(str(handle))
                return (len(chunk["replicas"]) == 3 and rep is not None and rep["ok"] is True
                        and rep["version"] == chunk["version"] and await healthy(c))

            assert await until(ep, whole, 30.0), unwell(await c.fsck())  # the scrubber finds it; no read needed
            events = (await c.status("n1"))["master_state"]["events"]
            assert any(e["kind"] == "corrupt-replica" and e["node"] == "n2" for e in events)
            assert any(e["kind"] == "re-replicated" and e["target"] == "n2" for e in events)
            assert await c.get("/f") == blob
        finally:
            await ep.close()

    with real_nodes(tmp_path, nodes, cluster):
        asyncio.run(body())
