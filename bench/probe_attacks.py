"""The attacks of issue 18, repeated against live local clusters: does each node survive?

    .venv/bin/python bench/probe_attacks.py [--repo PATH] [--only NAME,...] [--list]

Each probe starts its own nodes (`python -m systems.<name>`, the code of `--repo`, by default this
checkout; point it at an older checkout to see the "before"), attacks them from this process as a
peer on the same LAN would (raw TCP with no key; or, where the checkout has keys, with a stolen
node key, a liar inside the cluster), and prints one line: `survived` or `BROKEN`, with what it saw.
Probes marked (root) need root (a tmpfs) and are skipped without it.

A report, never a test: the tests that hold these properties are tests/test_hardening*.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="the checkout whose nodes to attack")
ap.add_argument("--only", default="", help="comma-separated probe names")
ap.add_argument("--list", action="store_true")
ARGS = ap.parse_args()
REPO = Path(ARGS.repo).resolve()
sys.path.insert(0, str(REPO))

from systems.raft.client import RaftClient  # noqa: E402
from systems.runtime.api import RpcError  # noqa: E402
from systems.runtime.real import ClientEndpoint  # noqa: E402
from systems.runtime.real_log import JsonLog  # noqa: E402

try:
    from systems.runtime import real_auth
    from systems.runtime.real_transport import Endpoint
except ImportError:  # a checkout from before authentication
    real_auth = None  # type: ignore[assignment]
    Endpoint = None  # type: ignore[assignment,misc]

KEYED = real_auth is not None
logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the floods' own write errors are not news
HUGE = 2**64 - 1
REQUEST, ONEWAY, CONTROL = 0, 3, 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame(kind: int, rid: int, src: str, method: str, body: Any) -> bytes:
    p = msgpack.packb([kind, rid, src, method, body], use_bin_type=True)
    return struct.pack(">I", len(p)) + p


async def raw_send(addr: tuple[str, int], data: bytes, *, wait_s: float = 0.3) -> bytes:
    """Connect with no key at all, write, read what comes back within wait_s."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), 2)
    except (OSError, TimeoutError) as e:
        return f"connect failed: {e}".encode()
    try:
        writer.write(data)
        await writer.drain()
        with contextlib.suppress(TimeoutError, OSError):
            return await asyncio.wait_for(reader.read(65536), wait_s)
        return b""
    except OSError as e:
        return f"write failed: {e}".encode()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Cluster:
    """Nodes of one system as local processes of the checkout under test, with keys when it has them."""

    def __init__(self, system: str, n: int = 3, *, options: dict[str, Any] | None = None,
                 data_dirs: dict[str, Path] | None = None, nofile: dict[str, int] | None = None,
                 node_ids: list[str] | None = None) -> None:
        self.system = system
        self.root = Path(tempfile.mkdtemp(prefix=f"probe-{system}-"))
        self.nodes = node_ids or [f"n{i}" for i in range(1, n + 1)]
        self.addrs = {node: ("127.0.0.1", free_port()) for node in self.nodes}
        self.data_dirs = {node: (data_dirs or {}).get(node, self.root / "data" / node) for node in self.nodes}
        self.nofile = nofile or {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.keys = real_auth.ClusterKeys.generate(self.nodes) if KEYED else None
        doc: dict[str, Any] = {"system": system, "seed": 1, "options": options or {},
                               "nodes": {k: {"host": h, "port": p} for k, (h, p) in self.addrs.items()}}
        if self.keys is not None:
            real_auth.write_key_files(self.root / "keys", self.keys.files())
            doc["auth"] = {"keys": "keys"}
        (self.root / "cluster.json").write_text(json.dumps(doc))
        self.client = ClientEndpoint(dict(self.addrs), log=JsonLog("client", open(os.devnull, "w")),  # noqa: SIM115
                                     **({"credentials": self.keys.harness} if self.keys else {}))

    def log(self, node: str) -> Path:
        return self.root / f"{node}.log"

    def start(self, node: str) -> None:
        limit = self.nofile.get(node)

        def pre() -> None:
            if limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.data_dirs[node].mkdir(parents=True, exist_ok=True)
        out = open(self.log(node), "ab")  # noqa: SIM115
        self.procs[node] = subprocess.Popen(
            [sys.executable, "-m", f"systems.{self.system}", "--cluster", str(self.root / "cluster.json"),
             "--id", node, "--data-dir", str(self.data_dirs[node]), "--log", str(self.log(node))],
            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO), stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=pre, start_new_session=True)
        out.close()

    async def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)
        for node in self.nodes:
            await self.wait_ready(node)

    async def wait_ready(self, node: str, within_s: float = 30) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.procs[node].poll() is not None:
                raise RuntimeError(f"{node} exited {self.procs[node].returncode}: {self.log(node).read_text()[-500:]}")
            with contextlib.suppress(RpcError):
                if (await self.client.control(node, "ping", None, timeout=0.5)).get("ready"):
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{node} not ready")

    def kill(self, node: str) -> None:
        p = self.procs.get(node)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()

    async def restart_all(self) -> None:
        for node in self.nodes:
            self.kill(node)
        await self.start_all()

    def alive(self, node: str) -> bool:
        return self.procs[node].poll() is None

    async def close(self, *, remove: bool = True) -> None:
        await self.client.close()
        for node in self.nodes:
            self.kill(node)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def liar(self, as_node: str) -> Any:
        """An endpoint holding `as_node`'s stolen key: a node of the cluster that lies."""
        assert self.keys is not None and Endpoint is not None
        return Endpoint(as_node, dict(self.addrs), JsonLog(as_node, open(os.devnull, "w")),
                        credentials=self.keys.nodes[as_node], nodes=frozenset(self.nodes))


# -- raft helpers --------------------------------------------------------------------------------

async def raft_writes(c: Cluster, keys: list[str], tag: str) -> dict[str, str]:
    client = RaftClient(c.client, c.nodes, client_id=f"probe-{tag}")
    acked = {}
    for k in keys:
        out = await client.request("put", k, f"{tag}-{k}", timeout_s=5)
        if out.type == "ok":
            acked[k] = f"{tag}-{k}"
    return acked


async def raft_lost(c: Cluster, acked: dict[str, str]) -> list[str]:
    client = RaftClient(c.client, c.nodes, client_id="probe-reader")
    lost = []
    for k, v in acked.items():
        out = await client.request("get", k, timeout_s=10)
        if out.type != "ok" or out.value != v:
            lost.append(k)
    return lost


async def raft_status(c: Cluster) -> dict[str, dict[str, Any]]:
    out = {}
    for n in c.nodes:
        with contextlib.suppress(RpcError):
            out[n] = await c.client.call(n, "status", None, timeout=1)
    return out


async def raft_leader(c: Cluster, within_s: float = 20) -> tuple[str, int]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for n, s in (await raft_status(c)).items():
            if s.get("role") == "leader":
                return n, int(s["term"])
        await asyncio.sleep(0.1)
    raise RuntimeError("no leader")


# -- the probes ------------------------------------------------------------------------------------

async def forged_append() -> str:
    """A process outside the cluster, right after a restart, sends one-way AppendEntries as n2 (a newer
    term, a one-entry log) to the other nodes."""
    c = Cluster("raft")
    try:
        await c.start_all()
        _, term = await raft_leader(c)
        acked = await raft_writes(c, [f"k{i}" for i in range(50)], "a")
        await asyncio.sleep(0.5)
        await c.restart_all()  # a restarted node knows no commit index yet
        forged = term + 5
        for _ in range(3):
            for n in c.nodes:
                if n != "n2":
                    msg = {"t": "append", "term": forged, "src": "n2", "dst": n, "prev_index": 0, "prev_term": 0,
                           "entries": [[forged, 1, None]], "commit": 1, "seq": 0}
                    await raw_send(c.addrs[n], frame(ONEWAY, 0, "n2", "raft", msg), wait_s=0.05)
            await asyncio.sleep(0.3)
        await asyncio.sleep(1.0)
        await c.restart_all()
        await raft_leader(c)
        lost = await raft_lost(c, acked)
        verdict = "survived" if not lost and len(acked) == 50 else "BROKEN"
        return f"{verdict}: {len(acked)} acked, {len(lost)} lost after the forged appends and a restart"
    finally:
        await c.close()


async def huge_term() -> str:
    """One frame with term 2**64 - 1 (from outside; and, with keys, from a node that lies)."""
    c = Cluster("raft")
    try:
        await c.start_all()
        await raft_leader(c)
        def heartbeat(n: str) -> dict[str, Any]:
            return {"t": "append", "term": HUGE, "src": "n2", "dst": n, "prev_index": -1, "prev_term": 0,
                    "entries": [], "commit": 0, "seq": 0}

        for n in c.nodes:
            if n != "n2":
                await raw_send(c.addrs[n], frame(ONEWAY, 0, "n2", "raft", heartbeat(n)))
        if KEYED:
            liar = c.liar("n2")
            for n in c.nodes:
                if n != "n2":
                    liar.send(n, "raft", heartbeat(n))
            await asyncio.sleep(0.5)
            await liar.close()
        await asyncio.sleep(3.0)  # an election timeout: a node at term 2**64 - 1 campaigns at 2**64
        before = await raft_writes(c, ["t1"], "b")
        dead = [n for n in c.nodes if not c.alive(n)]
        await c.restart_all()
        await raft_leader(c)
        after = await raft_writes(c, ["t2"], "c")
        terms = {n: s.get("term") for n, s in (await raft_status(c)).items()}
        ok = before and after and not dead and all(t is not None and t < 2**63 for t in terms.values())
        return (f"{'survived' if ok else 'BROKEN'}: write before restart {'ok' if before else 'failed'}, after "
                f"{'ok' if after else 'failed'}; exited {dead or 'none'}; terms {terms}")
    finally:
        await c.close()


async def kv_members() -> str:
    """A kv.members gossip marking every node as left at version 2**64 - 1."""
    from systems.kv.client import KvClient

    c = Cluster("kv")
    try:
        await c.start_all()
        table = {n: [HUGE, "left"] for n in c.nodes}
        for n in c.nodes:
            await raw_send(c.addrs[n], frame(ONEWAY, 0, "n2", "kv.members", table))
        if KEYED:
            liar = c.liar("n2")
            for n in c.nodes:
                if n != "n2":
                    liar.send(n, "kv.members", table)
            await asyncio.sleep(0.5)
            await liar.close()
        await asyncio.sleep(1.5)

        async def put_ok(tag: str) -> str:
            try:
                r = await KvClient(c.client, "n1", 3.0).put(f"key-{tag}", tag)
                return f"ok ({r.get('acks')} acks)"
            except RpcError as e:
                return f"{e.code}: {e.message[:60]}"

        before = await put_ok("before")
        await c.restart_all()
        await asyncio.sleep(1.0)
        after = await put_ok("after")
        ok = before.startswith("ok") and after.startswith("ok")
        return f"{'survived' if ok else 'BROKEN'}: put before restart {before}; after {after}"
    finally:
        await c.close()


async def control_open() -> str:
    """An unauthenticated set-filter with a huge version cutting every node off."""
    c = Cluster("raft")
    try:
        await c.start_all()
        await raft_leader(c)
        replies = []
        for n in c.nodes:
            body = {"grudge": [p for p in c.nodes if p != n], "links": {}, "version": 2**63 - 1}
            replies.append(await raw_send(c.addrs[n], frame(CONTROL, 1, "client", "set-filter", body)))
        if KEYED:  # a client's key is not the harness's
            cl = ClientEndpoint(dict(c.addrs), node_id="sneaky", log=JsonLog("x", open(os.devnull, "w")),  # noqa: SIM115
                                credentials=c.keys.client)
            with contextlib.suppress(RpcError):
                await cl.control("n1", "set-filter", {"grudge": ["n2", "n3"], "version": 2**63 - 1})
            await cl.close()
        filters = {n: (await c.client.control(n, "get-filter", None))["version"] for n in c.nodes}
        mine = {n: (await c.client.control(n, "set-filter", {"grudge": [], "links": {}, "version": 5}))["applied"]
                for n in c.nodes}
        serving = await raft_writes(c, ["f1"], "d")
        ok = all(v < 2**62 for v in filters.values()) and all(mine.values()) and serving
        return (f"{'survived' if ok else 'BROKEN'}: filter versions after the attack {filters}; harness's own "
                f"filter applied {mine}; cluster {'serving' if serving else 'NOT serving'}")
    finally:
        await c.close()


async def slow_body() -> str:
    """20 connections each announce a 16 MiB frame and send most of its body, then stall."""
    c = Cluster("echo", 1)
    writers = []
    try:
        await c.start_all()
        pid = c.procs["n1"].pid
        before = rss_mb(pid)
        body = b"x" * (15 * 1024 * 1024)
        for _ in range(20):
            try:
                _, w = await asyncio.open_connection(*c.addrs["n1"])
                w.write(struct.pack(">I", 16 * 1024 * 1024) + body)
                writers.append(w)
                with contextlib.suppress(OSError, ConnectionError):
                    await asyncio.wait_for(w.drain(), 5)
            except (OSError, TimeoutError):
                pass
        await asyncio.sleep(2.0)
        after = rss_mb(pid)
        alive = c.alive("n1")
        serving = await c.client.call("n1", "echo", "hi", timeout=5) == "hi"
        grown = after - before
        ok = grown < 100 and alive and serving
        return f"{'survived' if ok else 'BROKEN'}: RSS {before:.0f} -> {after:.0f} MB; serving {serving}"
    finally:
        for w in writers:
            w.close()
        await c.close()


async def log_flood() -> str:
    """Malformed frames as fast as one process can send them for 3.7 s: how much log does that make?"""
    c = Cluster("echo", 1)
    try:
        await c.start_all()
        size0 = c.log("n1").stat().st_size
        stop = time.monotonic() + 3.7
        sent = 0
        while time.monotonic() < stop:
            try:
                _, w = await asyncio.open_connection(*c.addrs["n1"])
                for _ in range(50):
                    w.write(b"\xde\xad\xbe\xef" * 16)
                    sent += 1
                with contextlib.suppress(OSError, ConnectionError):
                    await w.drain()
                w.close()
            except OSError:
                await asyncio.sleep(0.01)
        await asyncio.sleep(1.5)
        grown = c.log("n1").stat().st_size - size0
        serving = await c.client.call("n1", "echo", "hi", timeout=5) == "hi"
        ok = grown < 200_000 and serving
        return (f"{'survived' if ok else 'BROKEN'}: {sent} bad writes made {grown / 1e6:.2f} MB of log; "
                f"serving {serving}")
    finally:
        await c.close()


async def fd_flood() -> str:
    """A node at an open-file limit of 256 takes a flood of 400 connections from one address."""
    c = Cluster("raft", nofile={"n1": 256})
    socks: list[socket.socket] = []
    try:
        await c.start_all()
        await raft_leader(c)
        size0 = c.log("n1").stat().st_size
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
        for _ in range(400):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                s.connect(c.addrs["n1"])
            socks.append(s)
        await asyncio.sleep(4.0)
        for s in socks:
            s.close()
        socks = []
        await asyncio.sleep(2.0)
        grown = c.log("n1").stat().st_size - size0
        alive = c.alive("n1")
        status = None
        with contextlib.suppress(RpcError):
            status = await c.client.call("n1", "status", None, timeout=3)
        acked = await raft_writes(c, ["fd1"], "e")
        ok = alive and status is not None and acked and grown < 200_000
        return (f"{'survived' if ok else 'BROKEN'}: alive {alive}, answers status {status is not None}, "
                f"cluster serving {bool(acked)}, log grew {grown / 1e6:.2f} MB")
    finally:
        for s in socks:
            s.close()
        await c.close()


async def disk_full() -> str:
    """(root) n1's data directory on a 2 MiB tmpfs: it fills up under writes."""
    if os.geteuid() != 0:
        return "skipped: needs root"
    c = Cluster("raft", options={"snapshot_every": 0})
    mnt = c.data_dirs["n1"]
    mnt.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        await c.start_all()
        await raft_leader(c)
        client = RaftClient(c.client, c.nodes, client_id="probe-full")
        acked: dict[str, str] = {}
        big = "z" * 20_000
        for i in range(300):
            out = await client.request("put", f"big{i}", big, timeout_s=5)
            if out.type == "ok":
                acked[f"big{i}"] = big
            if not c.alive("n1"):
                break
        await asyncio.sleep(2.0)
        code = c.procs["n1"].poll()
        status = None
        with contextlib.suppress(RpcError):
            status = await c.client.call("n1", "status", None, timeout=1)
        lost = await raft_lost(c, acked)
        failed = "node-failed" in c.log("n1").read_text()
        ok = code not in (None, 0) and status is None and not lost and failed
        return (f"{'survived' if ok else 'BROKEN'}: n1 exit status {code}, answers status {status is not None}, "
                f"node-failed logged {failed}, {len(acked)} acked, {len(lost)} lost")
    finally:
        await c.close(remove=False)
        subprocess.run(["umount", str(mnt)], check=False)
        shutil.rmtree(c.root, ignore_errors=True)


def _segment(c: Cluster, node: str) -> Path:
    return sorted((c.data_dirs[node] / "log").iterdir())[-1]


async def corrupt_tail() -> str:
    """Flip the last bytes of a follower's log, restart it: does it apply them, or say where the damage is?"""
    c = Cluster("raft", options={"snapshot_every": 0})
    try:
        await c.start_all()
        leader, _ = await raft_leader(c)
        acked = await raft_writes(c, [f"c{i}" for i in range(30)], "g")
        victim = next(n for n in c.nodes if n != leader)
        await asyncio.sleep(0.5)
        c.kill(victim)
        seg = _segment(c, victim)
        data = bytearray(seg.read_bytes())
        for i in range(1, 4):
            data[-i] ^= 0x5A
        seg.write_bytes(bytes(data))
        c.start(victim)
        with contextlib.suppress(RuntimeError):  # it may refuse to start: that is an answer
            await c.wait_ready(victim, within_s=10)
        running = [n for n in c.nodes if c.alive(n)]
        await raft_writes(c, ["after"], "g2")  # the leader finds a follower's gap at its next append
        lost = await raft_lost(c, acked)
        digests: dict[str, Any] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until every running node applied the same index
            st = {n: s for n, s in (await raft_status(c)).items() if n in running}
            if len(st) == len(running) and len({s["last_applied"] for s in st.values()}) == 1:
                digests = {n: s["applied_digest"] for n, s in st.items()}
                break
            await asyncio.sleep(0.2)
        diverged = len(set(digests.values())) > 1
        log = c.log(victim).read_text()
        named = seg.name in log and "byte" in log
        ok = bool(digests) and not diverged and named and not lost
        return (f"{'survived' if ok else 'BROKEN'}: {victim} {'runs' if victim in running else 'refused to start'};"
                f" applied digests of the running nodes {'DIVERGED' if diverged else 'agree'} {digests}; the damage "
                f"{'is named (file, byte)' if named else 'is NOT named'}; {len(lost)} acked lost")
    finally:
        await c.close()


async def corrupt_middle() -> str:
    """Flip a byte in the middle of a follower's log, restart it: does it say which file and where?"""
    c = Cluster("raft", options={"snapshot_every": 0})
    try:
        await c.start_all()
        leader, _ = await raft_leader(c)
        await raft_writes(c, [f"m{i}" for i in range(30)], "h")
        victim = next(n for n in c.nodes if n != leader)
        await asyncio.sleep(0.5)
        c.kill(victim)
        seg = _segment(c, victim)
        data = bytearray(seg.read_bytes())
        data[len(data) // 2] ^= 0x5A
        seg.write_bytes(bytes(data))
        c.start(victim)
        deadline = time.monotonic() + 15
        while c.alive(victim) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        text = c.log(victim).read_text()
        last = [line for line in text.splitlines() if "error" in line.lower()][-1:] or ["(no error line)"]
        named = seg.name in text and "byte" in text
        ok = not c.alive(victim) and named
        return f"{'survived' if ok else 'BROKEN'}: node {'refused to start' if not c.alive(victim) else 'started'}; " \
               f"says: {last[0][-160:]}"
    finally:
        await c.close()


async def bad_node_id() -> str:
    """A node id of '../../x': where does its data directory go?"""
    root = Path(tempfile.mkdtemp(prefix="probe-ids-"))
    try:
        inner = root / "a" / "b"
        inner.mkdir(parents=True)
        cluster = inner / "cluster.json"
        nodes = {"../../x": {"host": "127.0.0.1", "port": free_port()}}
        cluster.write_text(json.dumps({"system": "echo", "nodes": nodes}))
        p = subprocess.Popen([sys.executable, "-m", "systems.echo", "--cluster", str(cluster), "--id", "../../x"],
                             env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(5)
        if p.poll() is None:
            p.kill()
            p.wait()
        out = (p.stdout.read() if p.stdout else b"").decode(errors="replace").strip().splitlines()
        if p.stdout:
            p.stdout.close()
        escaped = (root / "a" / "x").exists() or (root / "x").exists()
        ok = not escaped and p.returncode == 2
        return f"{'survived' if ok else 'BROKEN'}: data dir escaped {escaped}; exit {p.returncode}; " \
               f"{(out[-1] if out else '')[:140]}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


PROBES: dict[str, Callable[[], Awaitable[str]]] = {
    "forged-append": forged_append,
    "huge-term": huge_term,
    "kv-members": kv_members,
    "control-open": control_open,
    "slow-body": slow_body,
    "log-flood": log_flood,
    "fd-flood": fd_flood,
    "disk-full": disk_full,
    "corrupt-tail": corrupt_tail,
    "corrupt-middle": corrupt_middle,
    "bad-node-id": bad_node_id,
}


def main() -> None:
    if ARGS.list:
        for name, f in PROBES.items():
            print(f"{name:15} {(f.__doc__ or '').strip()}")
        return
    chosen = [n for n in ARGS.only.split(",") if n] or list(PROBES)
    print(f"probing {REPO} ({'with' if KEYED else 'without'} keys); load average {os.getloadavg()[0]:.1f}")
    for name in chosen:
        started = time.monotonic()
        try:
            line = asyncio.run(PROBES[name]())
        except Exception as e:  # a probe that could not even run says so, and the others go on
            line = f"BROKEN: the probe itself failed: {type(e).__name__}: {e}"[:300]
        print(f"{name:15} {line}  [{time.monotonic() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
