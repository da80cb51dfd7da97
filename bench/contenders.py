"""The contenders of the fair race (bench/fair.py): the Raft KV, etcd over gRPC, the Dynamo-style KV.

Rules this module keeps:

- Every client worker has a connection of its own: its own `ClientEndpoint`
  for our systems, its own gRPC channel (and TCP connection) for etcd.
- Routing: Raft and etcd requests go to the leader. A Raft client starts at
  the leader and follows redirects; etcd clients are reopened on the new
  leader when it moved between cells. KV clients are spread over all nodes
  (any node coordinates; there is no leader).
- Values are 100 bytes; worker w writes and reads keys k{w}-{i % 100}.
  Raft and etcd gets are linearizable; KV gets are quorum reads (R=2).
- Durability on every contender: a write is acknowledged only after it is
  fsync'd (Raft: on a majority, group commit; etcd: its WAL, on a majority;
  KV: on W=2 replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from etcd_cluster import EtcdCluster, Member, client

from harness.backends.local import LocalCluster
from systems.raft.client import RaftClient
from systems.runtime.api import RpcError
from systems.runtime.real import ClientEndpoint
from workloads.kv import KvClient

VALUE = "v" * 100
OP_TIMEOUT_S = 5.0


def key(w: int, i: int) -> str:
    return f"k{w}-{i % 100}"


class RaftContender:
    name = "raft"

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.endpoints: list[ClientEndpoint] = []
        self.clients: list[RaftClient] = []
        self.poller = RaftClient(cluster.client, cluster.nodes, client_id="failover")
        self._poll_seq = 0

    async def open_clients(self, n: int) -> None:
        leader = await self.leader()
        for w in range(n):
            ep = ClientEndpoint(self.cluster.addrs, node_id=f"bench{w}")
            self.endpoints.append(ep)
            self.clients.append(RaftClient(ep, self.cluster.nodes, home=leader, client_id=f"bench{w}"))

    async def prepare(self) -> None:
        pass  # clients follow the leader's redirects themselves

    async def close_clients(self) -> None:
        for ep in self.endpoints:
            await ep.close()
        self.endpoints, self.clients = [], []

    async def put(self, w: int, i: int) -> None:
        out = await self.clients[w].request("put", key(w, i), VALUE, timeout_s=OP_TIMEOUT_S)
        if out.type != "ok":
            raise RuntimeError(out.error)

    async def get(self, w: int, i: int) -> None:
        out = await self.clients[w].request("get", key(w, i), timeout_s=OP_TIMEOUT_S)
        if out.type != "ok":
            raise RuntimeError(out.error)

    def server_pids(self) -> list[int]:
        return [p for n in self.cluster.nodes if (p := self.cluster.pid(n)) is not None]

    # -- failover
    async def leader(self) -> str:
        for _ in range(200):
            for node in self.live_members():
                try:
                    status = await self.poller.status(node, timeout_s=0.5)
                except RpcError:
                    continue
                if status.get("role") == "leader":
                    return node
            await asyncio.sleep(0.05)
        raise RuntimeError("raft: no leader")

    def live_members(self) -> list[str]:
        return [n for n in self.cluster.nodes if self.cluster.is_up(n)]

    async def kill(self, member: str) -> None:
        await self.cluster.kill(member)

    async def restart(self, member: str) -> None:
        await self.cluster.restart(member)
        await self._serving("restart")

    async def pause(self, member: str) -> None:
        await self.cluster.pause(member)

    async def resume(self, member: str) -> None:
        await self.cluster.resume(member)
        await self._serving("resume")

    async def _serving(self, after: str) -> None:
        for _ in range(600):
            if any([await self.try_put(m, 1.0) for m in self.live_members()]):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"raft: no put succeeded after the {after}")

    async def try_put(self, member: str, timeout_s: float) -> bool:
        self._poll_seq += 1
        msg = {"f": "put", "key": "failover", "value": VALUE, "client": "failover", "seq": self._poll_seq,
               "timeout_s": timeout_s * 0.8}
        try:
            reply = await self.cluster.client.call(member, "client", msg, timeout=timeout_s)
        except RpcError:
            return False
        return isinstance(reply, dict) and reply.get("status") == "ok"


class EtcdContender:
    name = "etcd"

    def __init__(self, cluster: EtcdCluster) -> None:
        self.cluster = cluster
        self.clients: list[Any] = []
        self.routed_to: Member | None = None
        self._n = 0

    async def _leader_member(self) -> Member:
        for _ in range(200):
            m = await self.cluster.leader()
            if m is not None:
                return m
            await asyncio.sleep(0.05)
        raise RuntimeError("etcd: no leader")

    async def open_clients(self, n: int) -> None:
        self._n = n
        self.routed_to = await self._leader_member()
        self.clients = [await client(self.routed_to.client_port) for _ in range(n)]

    async def prepare(self) -> None:
        leader = await self._leader_member()
        if leader is not self.routed_to:
            await self.close_clients()
            await self.open_clients(self._n)

    async def close_clients(self) -> None:
        for c in self.clients:
            with contextlib.suppress(Exception):
                await c.close()
        self.clients = []

    async def put(self, w: int, i: int) -> None:
        await self.clients[w].kv.put(key(w, i), VALUE, timeout=OP_TIMEOUT_S)

    async def get(self, w: int, i: int) -> None:
        await self.clients[w].kv.get(key(w, i), timeout=OP_TIMEOUT_S)

    def server_pids(self) -> list[int]:
        return self.cluster.pids()

    # -- failover
    async def leader(self) -> str:
        return (await self._leader_member()).name

    def live_members(self) -> list[str]:
        return [m.name for m in self.cluster.members if m.proc is not None]

    async def kill(self, member: str) -> None:
        await asyncio.to_thread(self.cluster.stop, self.cluster.member(member), signal.SIGKILL)

    async def restart(self, member: str) -> None:
        self.cluster.start(self.cluster.member(member))
        await self.cluster.wait_healthy()

    async def pause(self, member: str) -> None:
        self._signal(member, signal.SIGSTOP)

    async def resume(self, member: str) -> None:
        self._signal(member, signal.SIGCONT)
        await self.cluster.wait_healthy()

    def _signal(self, member: str, sig: int) -> None:
        proc = self.cluster.member(member).proc
        if proc is None:
            raise RuntimeError(f"etcd: {member} is not running")
        proc.send_signal(sig)  # our own child, by its pid

    async def try_put(self, member: str, timeout_s: float) -> bool:
        c = await self.cluster.admin(self.cluster.member(member))
        try:
            await c.kv.put("failover", VALUE, timeout=timeout_s)
        except Exception:
            return False
        return True


class KvContender:
    name = "kv"

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.endpoints: list[ClientEndpoint] = []
        self.clients: list[KvClient] = []

    async def open_clients(self, n: int) -> None:
        nodes = self.cluster.nodes
        for w in range(n):
            ep = ClientEndpoint(self.cluster.addrs, node_id=f"bench{w}")
            self.endpoints.append(ep)
            self.clients.append(KvClient(ep, nodes[w % len(nodes)], OP_TIMEOUT_S))
        await wait_for(lambda: self.clients[0].put("warm-up", VALUE, overwrite=True), 30.0)

    async def prepare(self) -> None:
        pass

    async def close_clients(self) -> None:
        for ep in self.endpoints:
            await ep.close()
        self.endpoints, self.clients = [], []

    async def put(self, w: int, i: int) -> None:
        await self.clients[w].put(key(w, i), VALUE, overwrite=True)

    async def get(self, w: int, i: int) -> None:
        await self.clients[w].get(key(w, i))

    def server_pids(self) -> list[int]:
        return [p for n in self.cluster.nodes if (p := self.cluster.pid(n)) is not None]


async def wait_for(step: Any, timeout_s: float) -> None:
    """Call `step()` until it does not raise, for at most timeout_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            await step()
            return
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)
