"""Talking to etcd members over their native gRPC API (etcd3aio), with Jepsen's outcome rules.

Rules this module keeps:

- One gRPC channel per member, opened on first use and shared by every
  client process that talks to that member (`Connections`); `aclose`
  closes them all. No retries inside the library (`rpc_max_attempts=1`):
  a retried write could take effect twice. Reconnection backoff is short
  (0.1-1 s), so a member that comes back is reached again soon.
- Outcomes (`outcome`): an operation that changes nothing (a read, a
  read-only transaction, a status) that raised is `fail`; a write that
  raised is `fail` only when the error proves the request never reached
  Raft (the channel could not connect, the proposal was dropped, no
  leader, too many requests), and `info` otherwise (etcd may still apply
  it: a timeout says nothing about the proposal).
- Lock sessions follow Go's clientv3 `concurrency` package (Session + Mutex,
  the API etcd documents for locks): a lease kept alive in the background,
  the lock key `<prefix>/<lease id>` put with it under a create-revision
  guard, and the lock held once no key under the prefix has a lower create
  revision (decided by a linearizable Get; Go watches for the deletes
  between Gets, this polls), then the lock key checked still there (etcd
  3.5's guard against an expired session). The session's deadline is
  Go's: the receipt of the last keepalive answer plus the TTL it granted;
  past it, the session is `lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from etcd3aio import Etcd3Client, EtcdError
from etcd3aio._protobuf import Compare
from etcd3aio.kv import KVService, SortOrder, SortTarget, prefix_range_end

Address = tuple[str, int]

DEFINITE = (
    "failed to connect",
    "connection refused",
    "connections to all backends failing",
    "raft proposal dropped",
    "etcdserver: no leader",
    "etcdserver: too many requests",
)
"""Error texts that prove a request never reached Raft (a write that raised them certainly did not happen)."""

CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def outcome(error: BaseException, *, writes: bool) -> tuple[str, str]:
    """("fail" | "info", error text) for an operation that raised (see the module rules)."""
    text = f"{type(error).__name__}: {error}".strip()
    if isinstance(error, TimeoutError) and not str(error):
        text = "TimeoutError: no answer in time"
    if not writes:
        return "fail", text
    lowered = text.lower()
    return ("fail" if any(marker in lowered for marker in DEFINITE) else "info"), text


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def decode(raw: bytes) -> Any:
    return json.loads(raw)


def mod_revision_is(key: str, revision: int) -> Any:
    """A txn guard: the key's last modification is `revision` (0: the key does not exist)."""
    return Compare(result=Compare.EQUAL, target=Compare.MOD, key=key.encode(), mod_revision=revision)


class Connections:
    """One etcd3aio client per member address, shared, closed together."""

    def __init__(self) -> None:
        self._clients: dict[Address, Etcd3Client] = {}

    async def get(self, addr: Address) -> Etcd3Client:
        client = self._clients.get(addr)
        if client is None:
            client = Etcd3Client([f"{addr[0]}:{addr[1]}"], rpc_max_attempts=1)
            client._manager.grpc_options.extend(CHANNEL_OPTIONS)
            await client.connect()
            self._clients[addr] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()


async def member_status(client: Etcd3Client, addr: Address, timeout_s: float) -> dict[str, Any]:
    """A member's own account: from its status API, its id, the leader it follows, the term of the last entry
    it applied (`applied_term`: what etcd calls raftTerm), its indexes and its store's revision; from its
    Raft node (`raft.status` in /debug/vars), the current `term`, its `state` and the leader of that term."""
    assert client.maintenance is not None
    st = await client.maintenance.status(timeout=timeout_s)
    out: dict[str, Any] = {
        "id": f"{st.header.member_id:x}",
        "leader": f"{st.leader:x}" if st.leader else None,
        "applied_term": int(st.raftTerm),
        "index": int(st.raftIndex),
        "applied": int(st.raftAppliedIndex),
        "revision": int(st.header.revision),
        "version": st.version,
        "errors": list(st.errors),
    }
    raft = await raft_status(addr, timeout_s)
    if raft is not None:
        lead = str(raft.get("lead", "0"))
        out.update(term=int(raft["term"]), raft_leader=None if lead in ("0", "") else lead,
                   state=str(raft.get("raftState", "")))
    return out


async def raft_status(addr: Address, timeout_s: float) -> dict[str, Any] | None:
    """The member's Raft node status (term, lead, raftState, ...) from `GET /debug/vars`, or None."""

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection(*addr)
        try:
            writer.write(f"GET /debug/vars HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\nConnection: close\r\n\r\n"
                         .encode())
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    raw = await asyncio.wait_for(get(), timeout_s)
    head, _, body = raw.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        return None
    if b"chunked" in head.lower():
        body = _unchunk(body)
    try:
        raft = json.loads(body).get("raft.status")
    except (ValueError, AttributeError):
        return None
    return raft if isinstance(raft, dict) and isinstance(raft.get("term"), int) else None


def _unchunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return bytes(out)


async def member_hash(client: Etcd3Client, timeout_s: float) -> dict[str, Any]:
    """The member's hash of its key-value store at its current revision."""
    assert client.maintenance is not None
    h = await client.maintenance.hash_kv(0, timeout=timeout_s)
    return {"revision": int(h.header.revision), "hash": int(h.hash), "compact_revision": int(h.compact_revision)}


@dataclass
class LockSession:
    """One lock acquisition: its lease (kept alive unless `keepalive` is off) and its key."""

    client: Etcd3Client
    prefix: str
    ttl_s: int
    keepalive: bool = True
    lease: int = 0
    granted_ttl_s: int = 0
    key: str = ""
    revision: int = 0
    deadline: float = 0.0
    """Loop time after which the session counts as lost (Go's keepalive deadline)."""
    lost_reason: str = ""
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def kv(self) -> KVService:
        assert self.client.kv is not None
        return self.client.kv

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def lapsed(self) -> bool:
        """The session's deadline passed (or etcd said the lease expired)."""
        return bool(self.lost_reason) or self.now() > self.deadline

    def lost(self) -> bool:
        """What the client believes: lapsed, unless the client never looks (the planted bug)."""
        return self.keepalive and self.lapsed()

    async def acquire(self, wait_s: float, timeout_s: float) -> None:
        """Take the lock within `wait_s` in all; raises TimeoutError, EtcdError or grpc's error, and
        EtcdError when the session was lost meanwhile. On any failure the caller `abandon`s."""
        async with asyncio.timeout(wait_s):
            await self._acquire(timeout_s)
        if self.lost():
            raise EtcdError("the session's lease lapsed while waiting for the lock")

    async def _acquire(self, timeout_s: float) -> None:
        assert self.client.lease is not None
        grant = await self.client.lease.grant(self.ttl_s, timeout=timeout_s)
        self.lease, self.granted_ttl_s = int(grant.ID), int(grant.TTL)
        self.deadline = self.now() + self.granted_ttl_s
        if self.keepalive:
            self._task = asyncio.ensure_future(self._keep_alive(timeout_s))
        self.key = f"{self.prefix}/{self.lease:016x}"
        put = KVService.txn_op_put(self.key, b"", lease=self.lease)
        owner = KVService.txn_op_get(self.key)
        resp = await self.kv.txn([KVService.txn_compare_create_revision(self.key, 0)], [put], [owner],
                                 timeout=timeout_s)
        if resp.succeeded:
            self.revision = int(resp.header.revision)
        else:
            self.revision = int(resp.responses[0].response_range.kvs[0].create_revision)
        await self._wait_for_turn(timeout_s)
        mine = await self.kv.get(self.key, timeout=timeout_s)
        if not mine.kvs:
            raise EtcdError("the lock key is gone: the session expired while waiting")

    async def _wait_for_turn(self, timeout_s: float) -> None:
        """Until no key under the prefix was created before ours (a linearizable Get decides)."""
        end = prefix_range_end(f"{self.prefix}/")
        while True:
            keys = await self.kv.get(f"{self.prefix}/", range_end=end, keys_only=True, sort_order=SortOrder.ASCEND,
                                     sort_target=SortTarget.CREATE, timeout=timeout_s)
            if not any(kv.create_revision < self.revision for kv in keys.kvs):
                return
            await asyncio.sleep(0.05)

    async def _keep_alive(self, timeout_s: float) -> None:
        assert self.client.lease is not None
        while True:
            await asyncio.sleep(max(self.granted_ttl_s / 3.0, 0.2))
            stream = self.client.lease.keep_alive(self.lease)
            try:
                async with asyncio.timeout(timeout_s):
                    async for resp in stream:
                        if resp.TTL <= 0:
                            self.lost_reason = "etcd says the lease expired"
                            return
                        self.deadline = max(self.deadline, self.now() + int(resp.TTL))
                        break
            except Exception:  # a failed renewal only lets the deadline come nearer
                pass
            finally:
                stream.cancel()

    def stop_keepalive(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def release(self, timeout_s: float) -> None:
        """Delete the key and revoke the lease; raises if either may not have happened."""
        self.stop_keepalive()
        assert self.client.lease is not None
        if self.key:
            await self.kv.delete(self.key, timeout=timeout_s)
        if self.lease:
            try:
                await self.client.lease.revoke(self.lease, timeout=timeout_s)
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:  # not found: it expired already, the key with it
                    raise

    async def abandon(self, timeout_s: float) -> bool:
        """Best effort after a failed acquire: True if the key and lease are certainly gone."""
        try:
            await self.release(timeout_s)
        except Exception:
            return False
        return True
