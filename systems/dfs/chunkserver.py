"""The chunkserver: replicas on disk, data flow, mutations in the primary's order (GFS §3, §5.2).

RPCs it serves (requests in messages.py, checked at the edge, edge.py: a
malformed one is counted, logged (throttled) as `dfs-bad-request` and
answered with a definite "bad-request" error; the master's orders from
anyone but the master, and cs.apply from anyone but a node of the cluster,
likewise as `dfs-forbidden`, "forbidden"):

- cs.push {data_id, data, chain, part, parts}: keep the data in the push
  buffer, then pass it to chain[0] with the rest of the chain; answers once
  the whole chain holds it (data flow is separate from control flow, §3.2).
  A client pushes big data as several parts at once, each forwarded as soon
  as it arrives, so the hops overlap (GFS's pipelining); the data becomes
  usable under its id once every part is in.
- cs.append {handle, data_id} / cs.write {handle, data_id, offset}: only on
  the primary. Mutations queue per chunk; one worker drains the queue in
  batches: it picks every offset (an append goes at the end; one that does
  not fit pads the chunk to its full size and answers "full": try the next
  chunk, §3.3), sends the batch to every secondary in the lease (cs.apply,
  one serial number per batch) while applying it locally, and answers only
  once all of them and itself applied it. A failure after the local apply answers an
  indefinite error: the data may be on some replicas (an inconsistent region).
- cs.apply {handle, version, serial, ops}: on a secondary: refused unless the
  replica's version equals the batch's; a serial already applied at this
  version is acknowledged without applying it again (a duplicate).
- cs.read {handle, version, offset, length}: refused on a version mismatch;
  every touched block verified; a checksum mismatch answers "corrupt" and
  reports the replica to the master (§5.2).
- cs.create / cs.bump {handle, version}, cs.grant {handle, version, members,
  lease_s, start_offset}, cs.clone {handle, version, source, length},
  cs.delete {handle, below}: the master's orders.
- The primary's lease runs from when the grant arrived; it refuses to start
  a batch within `lease_margin_s` of its expiry. It asks for extensions in
  its heartbeats while mutations flow (§3.1).
- Every `heartbeat_s` the chunkserver sends the master its full replica list
  (versions, lengths, corrupt ones) and obeys the deletions in the answer.
  Heartbeats and the answers to create, bump and clone carry (incarnation,
  changes): a count of changes to the replica list and versions, so the
  master ignores a heartbeat older than what it learned from an answer.
- A scrubber verifies idle replicas in the background (§5.2), within
  `scrub_bytes_per_s` on average (a chunk bigger than a tick's share is
  paid back over the next ticks).

A disk error (EIO, ENOSPC) while a replica is written or synced is never
acknowledged: the request that met it fails (indefinitely where data may
have landed somewhere), the replica is marked failed (chunkstore.py: it
serves no read and takes no mutation, bump or lease) and reported to the
master like a corrupt one, which replaces it (§5.2). A primary whose own
apply failed also gives up its lease: its secondaries may hold the batch
while it does not, so it could no longer choose offsets past every
replica's data; the next lease leaves it out.

Per-chunk operations that touch the replica (apply, bump, grant, clone,
delete) hold that chunk's lock, so a bump's reported length includes every
batch applied before it and no batch lands after it at the old version.
A lease orders batches at the version it was granted for and no other: a
bump ends the lease, and a primary whose replica is at another version
gives it up. (A master whose clock ran ahead may move the chunk on, and take
a new member in, while the primary's clock says the lease still runs; its
old members, moved on too, would accept a batch the new one never sees.)

Planted bugs: `no-checksum` (reads, overwrites, clones and the scrubber
never verify), `no-version` (reads ignore the version), `early-ack` (the
primary answers once applied locally and sends the batch to its secondaries
in the background, never checking that they applied it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TypeVar

from systems.dfs import messages as m
from systems.dfs.chunkstore import ChunkCorrupt, ChunkMissing, ChunkStore, Op, ReplicaFailed, data_name
from systems.dfs.edge import MASTER, NODE, Edge
from systems.dfs.leases import PrimaryLease
from systems.dfs.loops import every
from systems.dfs.pushbuffer import PushBuffer
from systems.runtime.api import Message, RemoteError, RpcError, Runtime

T = TypeVar("T")
LEASE_LOG = 128


def refuse(code: str, why: str, *, definite: bool = True) -> RemoteError:
    return RemoteError(why, code=code, definite=definite)


@dataclass
class Pending:
    kind: str
    """"append" or "write"."""
    data_id: str
    data: bytes
    offset: int
    done: asyncio.Future[dict[str, Any]]


@dataclass
class Options:
    chunk_size: int
    block_size: int
    heartbeat_s: float
    rpc_timeout_s: float
    lease_margin_s: float
    scrub_interval_s: float
    scrub_bytes_per_s: int
    push_buffer_bytes: int
    push_ttl_s: float
    max_batch_bytes: int
    bugs: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, opts: dict[str, Any], bugs: frozenset[str]) -> Options:
        lease_s = float(opts["lease_s"])
        return cls(
            chunk_size=int(opts["chunk_size"]), block_size=int(opts["block_size"]),
            heartbeat_s=float(opts["heartbeat_s"]), rpc_timeout_s=float(opts["rpc_timeout_s"]),
            lease_margin_s=lease_s * 0.1, scrub_interval_s=float(opts["scrub_interval_s"]),
            scrub_bytes_per_s=int(opts["scrub_bytes_per_s"]), push_buffer_bytes=int(opts["push_buffer_bytes"]),
            push_ttl_s=float(opts["push_ttl_s"]), max_batch_bytes=int(opts["max_batch_bytes"]), bugs=bugs,
        )


class ChunkServer:
    def __init__(self, rt: Runtime, opts: Options, master: str, edge: Edge | None = None) -> None:
        self.rt = rt
        self.edge = edge or Edge(rt, sorted([rt.node_id, *rt.peers]), master)
        self.o = opts
        self.master = master
        self.node = rt.node_id
        self.store = ChunkStore(rt.disk, block_size=opts.block_size, verify="no-checksum" not in opts.bugs)
        self.buffer = PushBuffer(opts.push_buffer_bytes, opts.push_ttl_s)
        self.leases: dict[int, PrimaryLease] = {}
        self.lease_log: deque[PrimaryLease] = deque(maxlen=LEASE_LOG)
        self.queues: dict[int, list[Pending]] = {}
        self.workers: set[int] = set()
        self.locks: dict[int, asyncio.Lock] = {}
        self.applied: dict[int, tuple[int, int]] = {}
        """handle -> (version, last serial applied) on a secondary."""
        self.damaged: set[int] = set()
        self.incarnation = f"{rt.rng.getrandbits(32):08x}"
        self._scrub_cursor = 0
        self._scrub_budget = 0.0
        self.changes = 0
        """Counts changes to the replica list or a version, so the master can tell an old heartbeat
        (sent before a change it already learned from a direct answer) from a new one."""
        self.counters = {"appends": 0, "writes": 0, "batches": 0, "applies": 0, "reads": 0, "corrupt_reads": 0}

    # ------------------------------------------------------------ start
    def start(self) -> None:
        for note in self.store.load():
            self.rt.log.warning("dfs-replica-repaired", note=note)
        self.damaged = {h for h, r in self.store.replicas.items() if r.damaged}
        self.rt.log.info("dfs-chunkserver-start", incarnation=self.incarnation, replicas=len(self.store.replicas),
                         master=self.master, bugs=sorted(self.o.bugs))
        handlers = {
            "cs.push": self._on_push, "cs.append": self._on_append, "cs.write": self._on_write,
            "cs.apply": self._on_apply, "cs.read": self._on_read, "cs.create": self._on_create,
            "cs.bump": self._on_bump, "cs.grant": self._on_grant, "cs.clone": self._on_clone,
            "cs.delete": self._on_delete,
        }
        for method, handler in handlers.items():
            self.rt.serve(method, handler)
        self.rt.spawn(every(self.rt, self.o.heartbeat_s, "heartbeat", self.heartbeat), name="dfs-heartbeat")
        if "no-checksum" not in self.o.bugs:
            self.rt.spawn(every(self.rt, self.o.scrub_interval_s, "scrub", self.scrub), name="dfs-scrubber")

    def parse(self, kind: type[T], src: str, msg: Message, *, sender: str = "anyone") -> T:
        return self.edge.parse(kind, src, msg, sender=sender)

    def stamp(self) -> dict[str, Any]:
        """What a direct answer tells the master about how current it is (see `changes`)."""
        return {"incarnation": self.incarnation, "changes": self.changes}

    def _lock(self, handle: int) -> asyncio.Lock:
        lock = self.locks.get(handle)
        if lock is None:
            lock = self.locks[handle] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------ data flow
    async def _on_push(self, src: str, msg: Message) -> Message:
        req = self.parse(m.PushReq, src, msg)
        if len(req.data) > self.o.chunk_size:
            raise refuse("too-big", f"{len(req.data)} bytes is more than a chunk")
        if not self.buffer.put_part(req.data_id, req.part, req.parts, req.data, self.rt.now()):
            raise refuse("no-room", "push buffer too small for this data")
        if req.chain:
            nxt, rest = req.chain[0], req.chain[1:]
            try:
                await self.rt.call(nxt, "cs.push", {"data_id": req.data_id, "data": req.data, "chain": rest,
                                                    "part": req.part, "parts": req.parts},
                                   timeout=self.o.rpc_timeout_s)
            except RpcError as e:
                raise refuse("push-failed", f"{nxt}: {e.code} {e.message}") from None
        return {"ok": True}

    # ------------------------------------------------------------ the primary
    async def _on_append(self, src: str, msg: Message) -> Message:
        req = self.parse(m.AppendReq, src, msg)
        data = self._pushed(req.data_id)
        if len(data) > self.o.chunk_size // 4:
            raise refuse("too-big", f"a record is at most a quarter chunk ({self.o.chunk_size // 4} bytes)")
        self.counters["appends"] += 1
        return await self._enqueue(req.handle, Pending("append", req.data_id, data, -1, self._future()))

    async def _on_write(self, src: str, msg: Message) -> Message:
        req = self.parse(m.WriteReq, src, msg)
        data = self._pushed(req.data_id)
        if req.offset + len(data) > self.o.chunk_size:
            raise refuse("out-of-chunk", f"write of {len(data)} bytes at {req.offset} leaves the chunk")
        self.counters["writes"] += 1
        return await self._enqueue(req.handle, Pending("write", req.data_id, data, req.offset, self._future()))

    def _pushed(self, data_id: str) -> bytes:
        data = self.buffer.get(data_id)
        if data is None:
            raise refuse("no-data", f"no data pushed under {data_id}")
        return data

    def _future(self) -> asyncio.Future[dict[str, Any]]:
        return asyncio.get_running_loop().create_future()

    async def _enqueue(self, handle: int, p: Pending) -> Message:
        lease = self.leases.get(handle)
        if lease is None or not lease.valid(self.rt.now(), self.o.lease_margin_s):
            raise refuse("not-primary", f"{self.node} holds no lease on chunk {handle}")
        self.queues.setdefault(handle, []).append(p)
        if handle not in self.workers:
            self.workers.add(handle)
            self.rt.spawn(self._mutator(handle), name=f"dfs-mutator-{handle}")
        result = await p.done
        if result.get("status") == "error":
            raise refuse(result["code"], result["error"], definite=bool(result["definite"]))
        return result

    async def _mutator(self, handle: int) -> None:
        try:
            while self.queues.get(handle):
                queue = self.queues[handle]
                batch, size = [], 0
                while queue and (not batch or size + len(queue[0].data) <= self.o.max_batch_bytes):
                    p = queue.pop(0)
                    batch.append(p)
                    size += len(p.data)
                try:
                    await self._run_batch(handle, batch)
                except Exception as e:  # never leave a client hanging
                    _settle(batch, _error("internal", f"{type(e).__name__}: {e}", definite=False))
                    raise
        finally:
            self.workers.discard(handle)
            if not self.queues.get(handle):
                self.queues.pop(handle, None)

    async def _run_batch(self, handle: int, batch: list[Pending]) -> None:
        lease = self.leases.get(handle)
        if lease is None or not lease.valid(self.rt.now(), self.o.lease_margin_s):
            _settle(batch, _error("not-primary", f"the lease on chunk {handle} ran out"))
            return
        async with self._lock(handle):
            try:
                rep = self.store.get(handle)
            except ChunkMissing:
                _settle(batch, _error("no-chunk", f"{self.node} holds no replica of {handle}"))
                return
            if rep.failed:
                self.leases.pop(handle, None)
                _settle(batch, _error("not-primary", f"{self.node}'s replica of {handle} failed; it gave up its lease"))
                return
            if rep.version != lease.version:  # the master moved the chunk on: this lease is over
                self.leases.pop(handle, None)
                _settle(batch, _error("not-primary", f"chunk {handle} is at version {rep.version}, "
                                                     f"past this lease's {lease.version}"))
                return
            end = max(rep.length, lease.next_offset)
            ops: list[Op] = []
            wire_ops: list[list[Any]] = []
            results: list[dict[str, Any]] = []
            if end > rep.length:
                ops.append(("p", end, b""))
                wire_ops.append(["p", end])
            for p in batch:
                if p.kind == "append":
                    if end + len(p.data) > self.o.chunk_size:
                        if end < self.o.chunk_size:
                            ops.append(("p", self.o.chunk_size, b""))
                            wire_ops.append(["p", self.o.chunk_size])
                            end = self.o.chunk_size
                        results.append({"status": "full"})
                        continue
                    ops.append(("w", end, p.data))
                    wire_ops.append(["w", end, p.data_id])
                    results.append({"status": "ok", "offset": end})
                    end += len(p.data)
                else:
                    ops.append(("w", p.offset, p.data))
                    wire_ops.append(["w", p.offset, p.data_id])
                    results.append({"status": "ok", "offset": p.offset})
                    end = max(end, p.offset + len(p.data))
            if not wire_ops:
                _settle_each(batch, results)
                return
            lease.serial += 1
            req = {"handle": handle, "version": lease.version, "serial": lease.serial, "ops": wire_ops}
            secondaries = [n for n in lease.members if n != self.node]
            early = "early-ack" in self.o.bugs
            # The secondaries apply the batch while the primary does: their syncs overlap with its own.
            forwards = [] if early else [asyncio.ensure_future(self._forward(n, req)) for n in secondaries]
            try:
                await self.store.apply(handle, ops)
            except (ChunkCorrupt, OSError) as e:
                # The secondaries may apply the batch all the same: never hand these offsets out again, and
                # stop ordering mutations with a replica that may now lag theirs.
                lease.next_offset = max(lease.next_offset, end)
                self.leases.pop(handle, None)
                if isinstance(e, ChunkCorrupt):
                    self._found_corrupt(handle, str(e))
                else:
                    self._write_failed(handle, e)
                await asyncio.gather(*forwards)
                code = "corrupt" if isinstance(e, ChunkCorrupt) else "disk-failed"
                _settle(batch, _error(code, f"{self.node}: {e}", definite=False))
                return
            lease.next_offset = max(lease.next_offset, end)
            lease.last_mutation_at = self.rt.now()
            self.counters["batches"] += 1
        for p in batch:
            self.buffer.take(p.data_id)
        if early:
            _settle_each(batch, results)
            for n in secondaries:
                self.rt.send(n, "cs.apply", req)
            return
        answers = await asyncio.gather(*forwards)
        failed = [a for a in answers if a is not None]
        if failed:
            _settle(batch, _error("secondary-failed", "; ".join(failed), definite=False))
        else:
            _settle_each(batch, results)

    async def _forward(self, node: str, req: dict[str, Any]) -> str | None:
        try:
            await self.rt.call(node, "cs.apply", req, timeout=self.o.rpc_timeout_s)
        except RpcError as e:
            return f"{node}: {e.code} {e.message}"[:200]
        return None

    # ------------------------------------------------------------ a secondary
    async def _on_apply(self, src: str, msg: Message) -> Message:
        req = self.parse(m.ApplyReq, src, msg, sender=NODE)
        async with self._lock(req.handle):
            try:
                rep = self.store.get(req.handle)
            except ChunkMissing:
                raise refuse("no-chunk", f"{self.node} holds no replica of {req.handle}") from None
            if rep.version != req.version:
                raise refuse("version-mismatch", f"replica at version {rep.version}, batch at {req.version}")
            last = self.applied.get(req.handle)
            if last is not None and last[0] == req.version and req.serial <= last[1]:
                return {"ok": True, "duplicate": True}
            ops: list[Op] = []
            for op in req.ops:
                if op[0] == "w":
                    data = self.buffer.get(op[2])
                    if data is None:
                        raise refuse("no-data", f"no data pushed under {op[2]}")
                    if op[1] + len(data) > self.o.chunk_size:
                        raise refuse("out-of-chunk", "a write leaves the chunk")
                    ops.append(("w", op[1], data))
                else:
                    if op[1] > self.o.chunk_size:
                        raise refuse("out-of-chunk", "a pad leaves the chunk")
                    ops.append(("p", op[1], b""))
            try:
                await self.store.apply(req.handle, ops)
            except ChunkCorrupt as e:
                self._found_corrupt(req.handle, str(e))
                raise refuse("corrupt", str(e), definite=False) from None
            except ReplicaFailed as e:
                raise refuse("disk-failed", str(e)) from None
            except OSError as e:
                self._write_failed(req.handle, e)
                raise refuse("disk-failed", f"{self.node}: {e}", definite=False) from None
            self.applied[req.handle] = (req.version, req.serial)
            self.counters["applies"] += 1
        for op in req.ops:
            if op[0] == "w":
                self.buffer.take(op[2])
        return {"ok": True}

    # ------------------------------------------------------------ reads
    async def _on_read(self, src: str, msg: Message) -> Message:
        req = self.parse(m.ReadReq, src, msg)
        try:
            rep = self.store.get(req.handle)
        except ChunkMissing:
            raise refuse("no-chunk", f"{self.node} holds no replica of {req.handle}") from None
        if rep.version != req.version and "no-version" not in self.o.bugs:
            raise refuse("stale", f"replica at version {rep.version}, asked for {req.version}")
        try:
            data = self.store.read(req.handle, req.offset, min(req.length, self.o.chunk_size))
        except ChunkCorrupt as e:
            self.counters["corrupt_reads"] += 1
            self._found_corrupt(req.handle, str(e))
            raise refuse("corrupt", str(e)) from None
        except ReplicaFailed as e:
            raise refuse("disk-failed", str(e)) from None
        self.counters["reads"] += 1
        return {"data": data, "length": rep.length, "version": rep.version}

    def _found_corrupt(self, handle: int, why: str, *, event: str = "dfs-corrupt-replica") -> None:
        if handle in self.damaged:
            return
        self.damaged.add(handle)
        self.rt.log.warning(event, handle=handle, error=why)
        self.rt.spawn(self._report_corrupt(handle), name="dfs-report-corrupt")

    def _write_failed(self, handle: int, error: OSError) -> None:
        """The store marked the replica failed: the master hears of it as of a corrupt one, and replaces it."""
        self._found_corrupt(handle, str(error)[:200], event="dfs-replica-failed")

    async def _report_corrupt(self, handle: int) -> None:
        with contextlib.suppress(RpcError):  # the next heartbeat lists it as damaged anyway
            await self.rt.call(self.master, "master.report_corrupt", {"handle": handle, "node": self.node},
                               timeout=self.o.rpc_timeout_s)

    # ------------------------------------------------------------ the master's orders
    async def _on_create(self, src: str, msg: Message) -> Message:
        req = self.parse(m.ChunkVersionReq, src, msg, sender=MASTER)
        async with self._lock(req.handle):
            if self.store.has(req.handle):
                rep = self.store.get(req.handle)
                if rep.failed:
                    raise refuse("disk-failed", f"{self.node}'s replica of {req.handle} failed")
                if rep.version == req.version and rep.length == 0:
                    return {"ok": True, **self.stamp()}
                raise refuse("exists", f"chunk {req.handle} exists at version {rep.version}")
            try:
                await self.store.create(req.handle, req.version)
            except OSError as e:
                self._write_failed(req.handle, e)
                raise refuse("disk-failed", f"{self.node}: {e}", definite=False) from None
            self.changes += 1
        return {"ok": True, **self.stamp()}

    async def _on_bump(self, src: str, msg: Message) -> Message:
        req = self.parse(m.ChunkVersionReq, src, msg, sender=MASTER)
        async with self._lock(req.handle):
            try:
                rep = self.store.get(req.handle)
            except ChunkMissing:
                raise refuse("no-chunk", f"{self.node} holds no replica of {req.handle}") from None
            if req.handle in self.damaged:
                raise refuse("corrupt", f"replica of {req.handle} is corrupt")
            if rep.version > req.version:
                raise refuse("ahead", f"replica already at version {rep.version}")
            if rep.version < req.version:
                self.leases.pop(req.handle, None)  # a lease is for one version: never order writes at another
                try:
                    await self.store.set_version(req.handle, req.version)
                except (OSError, ReplicaFailed) as e:
                    if isinstance(e, OSError):
                        self._write_failed(req.handle, e)
                    raise refuse("disk-failed", f"{self.node}: {e}", definite=False) from None
                self.changes += 1
            return {"version": rep.version, "length": rep.length, **self.stamp()}

    async def _on_grant(self, src: str, msg: Message) -> Message:
        req = self.parse(m.GrantReq, src, msg, sender=MASTER)
        now = self.rt.now()
        async with self._lock(req.handle):
            try:
                rep = self.store.get(req.handle)
            except ChunkMissing:
                raise refuse("no-chunk", f"{self.node} holds no replica of {req.handle}") from None
            if rep.version != req.version:
                raise refuse("version-mismatch", f"replica at version {rep.version}, lease for {req.version}")
            if rep.failed:
                raise refuse("disk-failed", f"{self.node}'s replica of {req.handle} failed")
            lease = PrimaryLease(req.handle, req.version, tuple(req.members), now, now + req.lease_s,
                                 next_offset=max(req.start_offset, rep.length), period_s=req.lease_s)
            self.leases[req.handle] = lease
            self.lease_log.append(lease)
        self.rt.log.info("dfs-lease", handle=req.handle, version=req.version, members=req.members)
        return {"ok": True}

    async def _on_clone(self, src: str, msg: Message) -> Message:
        req = self.parse(m.CloneReq, src, msg, sender=MASTER)
        if req.length > self.o.chunk_size:
            raise refuse("out-of-chunk", f"a clone of {req.length} bytes is more than a chunk")
        parts = []
        step = max(self.o.block_size, 1024 * 1024 // self.o.block_size * self.o.block_size)
        for off in range(0, max(req.length, 1), step):
            try:
                got = await self.rt.call(req.source, "cs.read", {"handle": req.handle, "version": req.version,
                                                                 "offset": off, "length": step},
                                         timeout=self.o.rpc_timeout_s * 2)
            except RpcError as e:
                raise refuse("clone-failed", f"{req.source}: {e.code} {e.message}") from None
            if not isinstance(got, dict) or not isinstance(got.get("data"), bytes):
                raise refuse("clone-failed", f"{req.source}: bad answer")
            parts.append(got["data"])
        data = b"".join(parts)[: req.length]
        if len(data) != req.length:
            raise refuse("clone-failed", f"{req.source} gave {len(data)} of {req.length} bytes")
        async with self._lock(req.handle):
            try:
                await self.store.install(req.handle, req.version, data)
            except OSError as e:
                self.leases.pop(req.handle, None)
                self._write_failed(req.handle, e)
                raise refuse("disk-failed", f"{self.node}: {e}", definite=False) from None
            self.changes += 1
            self.damaged.discard(req.handle)
            self.leases.pop(req.handle, None)
        self.rt.log.info("dfs-cloned", handle=req.handle, version=req.version, source=req.source, bytes=len(data))
        return {"ok": True, "length": len(data), **self.stamp()}

    async def _on_delete(self, src: str, msg: Message) -> Message:
        req = self.parse(m.DeleteReq, src, msg, sender=MASTER)
        return {"deleted": await self._delete(req.handle, req.below)}

    async def _delete(self, handle: int, below: int) -> bool:
        async with self._lock(handle):
            if not self.store.has(handle):
                return False
            if below and self.store.get(handle).version >= below:
                return False
            self.store.delete(handle)
            self.changes += 1
            self.damaged.discard(handle)
            self.leases.pop(handle, None)
            self.applied.pop(handle, None)
        self.rt.log.info("dfs-replica-deleted", handle=handle, below=below)
        return True

    # ------------------------------------------------------------ background
    async def heartbeat(self) -> None:
        self.edge.flush()
        now = self.rt.now()
        extend = []
        for h, lease in self.leases.items():
            busy = h in self.workers or now - lease.last_mutation_at < lease.period_s
            if lease.valid(now, 0.0) and busy:
                extend.append(h)
        hb = {
            "node": self.node, "incarnation": self.incarnation,
            "chunks": [[h, r.version, r.length] for h, r in sorted(self.store.replicas.items())],
            "damaged": sorted(self.damaged), "extend": extend, "changes": self.changes,
        }
        try:
            reply = await self.rt.call(self.master, "master.heartbeat", hb, timeout=self.o.rpc_timeout_s)
        except RpcError:
            return
        if not isinstance(reply, dict):
            return
        granted_s = reply.get("lease_s")
        for h in reply.get("extended") or []:
            lease = self.leases.get(h)
            if lease is not None and isinstance(granted_s, int | float):
                lease.expires_at = max(lease.expires_at, now + float(granted_s))
        for item in reply.get("delete") or []:
            if isinstance(item, list) and len(item) == 2 and all(isinstance(x, int) for x in item):
                await self._delete(item[0], item[1])
        for h in list(self.leases):
            if not self.leases[h].valid(self.rt.now(), 0.0) and h not in self.workers:
                del self.leases[h]

    async def scrub(self) -> None:
        # A balance of bytes, refilled every tick and spent chunk by chunk: a chunk bigger than one tick's
        # share leaves a debt the next ticks pay back, so the average stays within scrub_bytes_per_s.
        tick = self.o.scrub_bytes_per_s * self.o.scrub_interval_s
        self._scrub_budget = min(self._scrub_budget + tick, tick)
        handles = self.store.handles()
        for _ in range(len(handles)):
            if self._scrub_budget <= 0:
                break
            self._scrub_cursor = (self._scrub_cursor + 1) % len(handles)
            h = handles[self._scrub_cursor]
            if h in self.damaged or not self.store.has(h):
                continue
            self._scrub_budget -= max(self.store.get(h).length, 1)
            if self.store.bad_block(h) is not None:
                self._found_corrupt(h, "found by the scrubber")

    # ------------------------------------------------------------ status
    def status(self, verify: bool) -> dict[str, Any]:
        now = self.rt.now()
        replicas = {}
        for h, r in sorted(self.store.replicas.items()):
            ok = None
            if verify:
                ok = h not in self.damaged and self.store.bad_block(h) is None
                if not ok and h not in self.damaged and self.store.verify:
                    self._found_corrupt(h, "found by a verifying status")  # acted on as a scrub would
            replicas[str(h)] = {"version": r.version, "length": r.length, "file": data_name(h), "ok": ok,
                                "damaged": h in self.damaged}
        return {
            "incarnation": self.incarnation,
            "replicas": replicas,
            "leases": [lease.to_report(now) for lease in self.lease_log],
            "counters": dict(self.counters),
            "syncs": self.store.syncs,
            "buffered_bytes": self.buffer.size,
            "dropped": dict(sorted(self.edge.dropped.items())),
        }


def _error(code: str, why: str, *, definite: bool = True) -> dict[str, Any]:
    return {"status": "error", "code": code, "error": why, "definite": definite}


def _settle(batch: list[Pending], result: dict[str, Any]) -> None:
    for p in batch:
        if not p.done.done():
            p.done.set_result(result)


def _settle_each(batch: list[Pending], results: list[dict[str, Any]]) -> None:
    for p, r in zip(batch, results, strict=True):
        if not p.done.done():
            p.done.set_result(r)
