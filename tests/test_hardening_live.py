"""Hardened nodes, live: forged and random frames at running clusters, fail-stop, a full disk, damaged logs.

Real node processes on loopback (the local backend: keys made for the run, the harness's own
identity), so these are `real` and `slow`; the disk-full test needs root for its tmpfs.

- Attacks (hypothesis draws them): frames with no key at all (anything: forged appends claiming a
  node, huge terms, control frames), frames from a client's key (peer messages, control frames,
  poison requests) and frames from a node's stolen key that lie about who sends them or carry
  terms and versions out of range. Meanwhile a writer keeps writing. Afterwards every node is
  killed and restarted: every acknowledged write must be readable, the cluster must take new
  writes, and no node may have died of it. (A node's key in hostile hands that sends well-formed
  lies is beyond any crash-fault protocol: Raft and Dynamo trust their members.)
- The DFS the same way, with attacks aimed at its master/chunkserver split: the master's orders
  (delete, bump to a huge version, grant, clone) and forged heartbeats and corrupt reports, with no
  key, a client's key and node n2's stolen key; every acknowledged record append stays readable, and
  the command line works with the clients' key.
- Fail-stop: a node whose protocol loop dies (a disk write fails) exits non-zero, saying why.
- A full disk (tmpfs, root): the node stops; nothing acknowledged is lost.
- A damaged record: the node refuses to start, naming the file and the byte offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from base.spec import TestSpec
from harness.backends.local import LocalBackend
from harness.backends.node_program import KEY_DIR
from harness.backends.process_cluster import ProcessCluster
from systems.dfs.client import DfsClient, DfsError
from systems.kv.client import KvClient
from systems.raft.client import RaftClient
from systems.runtime.api import RpcError
from systems.runtime.node_main import EXIT_NODE_FAILED
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_auth import CLIENT_KEY_FILE, load_key_file, node_key_file
from systems.runtime.real_log import JsonLog
from systems.runtime.real_transport import Endpoint

pytestmark = [pytest.mark.real, pytest.mark.slow]

HUGE = 2**64 - 1
BIG = 2**63
REQUEST, ONEWAY, CONTROL = 0, 3, 4


def frame(kind: int, rid: int, src: str, method: str, body: Any) -> bytes:
    p = msgpack.packb([kind, rid, src, method, body], use_bin_type=True)
    return struct.pack(">I", len(p)) + p


# -- what an attacker sends ------------------------------------------------------------------------------

terms = st.one_of(st.sampled_from([0, 1, 2, 5, BIG - 1, BIG, HUGE, -1]), st.integers(0, HUGE))
nodes = st.sampled_from(["n1", "n2", "n3", "n9", "../x", ""])
entry = st.lists(st.one_of(terms, st.none(), st.binary(max_size=8)), min_size=0, max_size=4)
raft_msg = st.fixed_dictionaries({
    "t": st.sampled_from(["append", "vote", "vote-resp", "append-resp", "snapshot", "nope"]),
    "term": terms, "src": nodes, "dst": nodes, "prev_index": terms, "prev_term": terms,
    "entries": st.one_of(st.lists(entry, max_size=3), st.just([[1, 1, None]])), "commit": terms,
    "last_index": terms, "last_term": terms, "granted": st.booleans(), "success": st.booleans(),
    "index": terms, "snap_term": terms, "data": st.binary(max_size=16), "seq": terms, "pre": st.booleans(),
})
members = st.dictionaries(nodes, st.tuples(terms, st.sampled_from(["member", "left", "zombie"])), max_size=4)
control = st.fixed_dictionaries({"grudge": st.lists(nodes, max_size=3), "links": st.just({}), "version": terms})
poison = st.fixed_dictionaries({"f": st.sampled_from(["put", "get", "txn", "cas"]),
                                "key": st.one_of(st.just([1]), st.just({"a": 1}), st.text(max_size=4), terms),
                                "value": st.one_of(st.none(), st.just([["w", [1], 1]]), terms),
                                "seq": terms, "client": st.one_of(st.text(max_size=3), terms)})

attack = st.one_of(
    st.tuples(st.just("raw"), st.sampled_from([ONEWAY, REQUEST, CONTROL]),
              st.sampled_from(["raft", "kv.members", "set-filter", "client", "kv.put"]),
              st.one_of(raft_msg, members, control, poison)),
    st.tuples(st.just("client"), st.sampled_from([ONEWAY, REQUEST, CONTROL]),
              st.sampled_from(["raft", "kv.members", "kv.store", "set-filter", "client", "kv.put"]),
              st.one_of(raft_msg, members, control, poison)),
    st.tuples(st.just("liar"), st.just(ONEWAY), st.sampled_from(["raft", "kv.members"]),
              st.one_of(raft_msg.map(lambda m: {**m, "src": "n1", "term": BIG}),  # claims to be n1, or a term
                        raft_msg.map(lambda m: {**m, "src": "n3"}),             # that does not fit
                        members.map(lambda t: {**t, "n1": [HUGE, "left"]}))),
)


class Attacker:
    """Sends attacks three ways: with no key, with the clients' key, with a node's stolen key (n2)."""

    def __init__(self, cluster: ProcessCluster) -> None:
        self.addrs = dict(cluster.addrs)
        keys = cluster.run_dir / KEY_DIR
        self.client = ClientEndpoint(self.addrs, node_id="mallory", log=JsonLog("m", io.StringIO()),
                                     credentials=load_key_file(keys / CLIENT_KEY_FILE))
        self.liar = Endpoint("n2", self.addrs, JsonLog("n2", io.StringIO()),
                             credentials=load_key_file(keys / node_key_file("n2")), nodes=frozenset(self.addrs))

    async def send(self, a: tuple[str, int, str, Any], dst: str) -> None:
        how, kind, method, body = a
        with contextlib.suppress(RpcError, OSError, TypeError, ValueError, OverflowError):
            if how == "raw":
                _, w = await asyncio.open_connection(*self.addrs[dst])
                w.write(frame(kind, 1, "n2", method, body))
                with contextlib.suppress(OSError, ConnectionError):
                    await w.drain()
                w.close()
            elif how == "client":
                if kind == CONTROL:
                    await self.client.control(dst, method, body, timeout=0.5)
                elif kind == REQUEST:
                    await self.client.call(dst, method, body, timeout=0.5)
                else:
                    self.client.send(dst, method, body)
            elif dst != "n2":
                self.liar.send(dst, method, body)

    async def close(self) -> None:
        await self.client.close()
        await self.liar.close()


def spec_for(system: str, tmp: Path, **options: Any) -> TestSpec:
    shutil.rmtree(tmp, ignore_errors=True)
    return TestSpec(system=system, workload="none", nemesis=(), backend="local", node_count=3, run_dir=str(tmp),
                    options=options)


async def restart_all(c: ProcessCluster) -> None:
    for n in c.nodes:
        await c.kill(n)
    for n in c.nodes:
        await c.restart(n)


async def raft_attacked(c: ProcessCluster, attacks: list[tuple[str, int, str, Any]]) -> None:
    rt = c.client
    writer = RaftClient(rt, c.nodes, client_id="w")
    acked: dict[str, int] = {}
    attacker = Attacker(c)
    stop = asyncio.Event()

    async def write() -> None:
        i = 0
        while not stop.is_set():
            out = await writer.request("put", f"k{i}", i, timeout_s=3)
            if out.type == "ok":
                acked[f"k{i}"] = i
            i += 1

    task = asyncio.ensure_future(write())
    try:
        for i, a in enumerate(attacks):
            await attacker.send(a, c.nodes[i % len(c.nodes)])
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await task
        await attacker.close()
    assert acked, "the cluster took no write during the attack"
    died = [n for n in c.nodes if not c.is_up(n)]
    assert not died, f"nodes died of the attack: {died}"
    await restart_all(c)
    reader = RaftClient(rt, c.nodes, client_id="r")
    lost = []
    for k, v in acked.items():
        out = await reader.request("get", k, timeout_s=10)
        if out.type != "ok" or out.value != v:
            lost.append((k, out.type, out.value))
    assert not lost, f"acknowledged writes lost: {lost[:5]}"
    assert (await writer.request("put", "after", 1, timeout_s=10)).type == "ok"


async def kv_attacked(c: ProcessCluster, attacks: list[tuple[str, int, str, Any]]) -> None:
    rt = c.client
    acked: dict[str, int] = {}
    attacker = Attacker(c)
    stop = asyncio.Event()

    async def write() -> None:
        i = 0
        while not stop.is_set():
            with contextlib.suppress(RpcError):
                await KvClient(rt, c.nodes[i % 3], 2.0).put(f"k{i}", i)
                acked[f"k{i}"] = i
            i += 1

    task = asyncio.ensure_future(write())
    try:
        for i, a in enumerate(attacks):
            await attacker.send(a, c.nodes[i % len(c.nodes)])
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await task
        await attacker.close()
    assert acked, "the cluster took no write during the attack"
    died = [n for n in c.nodes if not c.is_up(n)]
    assert not died, f"nodes died of the attack: {died}"
    await restart_all(c)
    lost = []
    for k, v in acked.items():
        got = await KvClient(rt, "n1", 5.0).get(k)
        if v not in got.get("values", []):
            lost.append((k, got.get("values")))
    assert not lost, f"acknowledged writes lost: {lost[:5]}"
    await KvClient(rt, "n3", 5.0).put("after", 1)


SETTINGS = settings(max_examples=2, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(st.lists(attack, min_size=30, max_size=60))
def test_raft_keeps_every_acknowledged_write_under_forged_and_random_frames(
        tmp_path_factory: pytest.TempPathFactory, attacks: list[tuple[str, int, str, Any]]) -> None:
    LocalBackend().run(spec_for("raft", tmp_path_factory.mktemp("raft")),
                       lambda c: raft_attacked(c, attacks))


@SETTINGS
@given(st.lists(attack, min_size=30, max_size=60))
def test_kv_keeps_every_acknowledged_write_under_forged_and_random_frames(
        tmp_path_factory: pytest.TempPathFactory, attacks: list[tuple[str, int, str, Any]]) -> None:
    LocalBackend().run(spec_for("kv", tmp_path_factory.mktemp("kv"), antientropy_interval_s=0.2),
                       lambda c: kv_attacked(c, attacks))


# -- the DFS ---------------------------------------------------------------------------------------------------

def dfs_attacks(handle: int, version: int) -> list[tuple[str, int, str, Any]]:
    hb = {"node": "n3", "incarnation": "ffffffff", "chunks": [], "damaged": [], "extend": [], "changes": HUGE}
    orders = [
        ("cs.delete", {"handle": handle}),
        ("cs.bump", {"handle": handle, "version": HUGE}),
        ("cs.bump", {"handle": handle, "version": BIG - 1}),
        ("cs.grant", {"handle": handle, "version": version, "members": ["n2"], "lease_s": 1e6, "start_offset": 0}),
        ("cs.clone", {"handle": handle, "version": version, "source": "n2", "length": BIG}),
        ("cs.create", {"handle": handle, "version": 1}),
        ("cs.apply", {"handle": handle, "version": version, "serial": HUGE, "ops": [["p", BIG]]}),
        ("master.heartbeat", hb),
        ("master.heartbeat", {**hb, "node": "n2", "chunks": [[handle, BIG - 1, 0]]}),
        ("master.report_corrupt", {"handle": handle, "node": "n3"}),
        ("master.delete", {"path": "/log"}),
    ]
    out: list[tuple[str, int, str, Any]] = []
    for how in ("raw", "client", "liar"):
        for method, body in orders:
            if how != "raw" and method == "master.delete":
                continue  # a client (and a node) may delete files: that is what clients do
            out.append((how, REQUEST, method, body))
    return out


async def dfs_attacked(c: ProcessCluster) -> None:
    rt = c.client
    dfs = DfsClient(rt, c.nodes, home="n1", timeout_s=10.0)
    await dfs.create("/log")
    first = await dfs.append("/log", b"first;")
    chunk = (await dfs.stat("/log"))["chunks"][0]
    acked = {first: b"first;"}
    attacker = Attacker(c)
    stop = asyncio.Event()

    async def write() -> None:
        i = 0
        while not stop.is_set():
            rec = b"rec%d;" % i
            with contextlib.suppress(DfsError):
                acked[await dfs.append("/log", rec, timeout_s=5.0)] = rec
            i += 1

    task = asyncio.ensure_future(write())
    liar_bodies = [a for a in dfs_attacks(chunk["handle"], chunk["version"]) if a[0] == "liar"]
    try:
        for i, a in enumerate(dfs_attacks(chunk["handle"], chunk["version"])):
            await attacker.send(a, c.nodes[i % len(c.nodes)] if a[0] != "liar" else "n3" if i % 2 else "n1")
            await asyncio.sleep(0.02)
        for _, _, method, body in liar_bodies:  # n2's stolen key, answered: refused as forbidden
            with pytest.raises(RpcError) as e:
                await attacker.liar.call("n1", method, body, timeout=2.0)
            assert e.value.code in ("forbidden", "bad-request"), (method, e.value)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await task
        await attacker.close()
    assert len(acked) > 1, "the file system took no append during the attack"
    died = [n for n in c.nodes if not c.is_up(n)]
    assert not died, f"nodes died of the attack: {died}"
    data = await dfs.read_all("/log")
    lost = [(off, rec) for off, rec in acked.items() if data[off : off + len(rec)] != rec]
    assert not lost, f"acknowledged appends lost: {lost[:5]}"
    statuses = [await rt.call(n, "status", None, timeout=2.0) for n in c.nodes]
    assert sum(s["chunkserver"]["dropped"].get("dfs-forbidden", 0) for s in statuses) >= len(liar_bodies)
    cli = subprocess.run([sys.executable, "-m", "systems.dfs.cli", "--cluster", str(c.run_dir / "cluster.json"),
                          "--timeout", "20", "get", "/log"], capture_output=True, timeout=60)
    assert cli.returncode == 0 and cli.stdout.startswith(b"first;"), cli.stderr


def test_dfs_keeps_every_acknowledged_append_under_forged_orders(tmp_path: Path) -> None:
    LocalBackend().run(spec_for("dfs", tmp_path / "run", chunk_size=262144, block_size=65536), dfs_attacked)


# -- fail-stop ------------------------------------------------------------------------------------------------

async def leader_of(c: ProcessCluster) -> str:
    for _ in range(200):
        for n in c.nodes:
            with contextlib.suppress(RpcError):
                if c.is_up(n) and (await c.client.call(n, "status", None, timeout=0.5)).get("role") == "leader":
                    return n
        await asyncio.sleep(0.1)
    raise AssertionError("no leader")


async def wait_exit(c: ProcessCluster, node: str, within_s: float = 20.0) -> int | None:
    for _ in range(int(within_s / 0.1)):
        if not c.is_up(node):
            return c.procs.exit_status(node)
        await asyncio.sleep(0.1)
    return None


def test_a_node_whose_loop_dies_exits_non_zero_saying_why(tmp_path: Path) -> None:
    """The next hard-state write of a follower fails (its temp file's name is taken by a directory): the
    Raft loop dies, and the process with it, instead of answering status as a zombie."""

    async def body(c: ProcessCluster) -> None:
        leader = await leader_of(c)
        victim = next(n for n in c.nodes if n != leader)
        (c.run_dir / "data" / victim / ".meta.tmp").mkdir()
        await c.kill(leader)  # a new election: every live node writes its new term and vote
        code = await wait_exit(c, victim)
        assert code == EXIT_NODE_FAILED
        log = (c.run_dir / "nodes" / f"{victim}.log").read_text()
        assert "node-failed" in log and "Is a directory" in log and "stopped itself" in log
        with pytest.raises(RpcError):
            await c.client.call(victim, "status", None, timeout=1)

    LocalBackend().run(spec_for("raft", tmp_path / "run"), body)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a tmpfs")
def test_a_full_disk_stops_the_node_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    mnt = run_dir / "data" / "n1"
    mnt.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        async def body(c: ProcessCluster) -> None:
            client = RaftClient(c.client, c.nodes, client_id="full")
            acked = {}
            for i in range(200):
                out = await client.request("put", f"big{i}", "z" * 20_000, timeout_s=5)
                if out.type == "ok":
                    acked[f"big{i}"] = "z" * 20_000
                if not c.is_up("n1"):
                    break
            assert await wait_exit(c, "n1") == EXIT_NODE_FAILED
            assert "No space left on device" in (c.run_dir / "nodes" / "n1.log").read_text()
            lost = [k for k, v in acked.items() if (await client.request("get", k, timeout_s=10)).value != v]
            assert acked and not lost

        spec = TestSpec(system="raft", workload="none", nemesis=(), backend="local", node_count=3,
                        run_dir=str(run_dir), options={"snapshot_every": 0})
        LocalBackend().run(spec, body)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_damaged_record_stops_the_node_naming_file_and_offset(tmp_path: Path) -> None:
    async def body(c: ProcessCluster) -> None:
        client = RaftClient(c.client, c.nodes, client_id="d")
        for i in range(20):
            assert (await client.request("put", f"d{i}", i, timeout_s=5)).type == "ok"
        leader = await leader_of(c)
        victim = next(n for n in c.nodes if n != leader)
        await c.kill(victim)
        seg = sorted((c.run_dir / "data" / victim / "log").iterdir())[0]
        data = bytearray(seg.read_bytes())
        data[len(data) // 3] ^= 0x20
        seg.write_bytes(bytes(data))
        with pytest.raises(Exception, match="exited"):
            await c.restart(victim)
        out = (c.run_dir / "nodes" / f"{victim}.log").read_text()
        assert f"{seg}: damaged at byte" in out and "will not start" in out
        assert (await client.request("put", "still", 1, timeout_s=10)).type == "ok"  # two of three serve on

    LocalBackend().run(spec_for("raft", tmp_path / "run"), body)
