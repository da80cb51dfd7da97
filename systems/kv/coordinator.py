"""Coordinating a client's get or put: quorums over the preference list.

Rules this module keeps:

- Any node coordinates a get. A put is coordinated by a preference node: a
  node outside the list forwards it to the first preference node it does not
  suspect (node.py keeps suspicion from recent RPC failures), and coordinates
  it itself only when it suspects them all (then its own copy is a stand-in
  with a hint, like any fallback's).
- The coordinator of a put issues the new version's dot, makes it durable in
  its own record of the key (that record is how it never reuses a dot), then
  sends that *whole* record to the preference nodes (whole, so that any
  replica holding a dot also holds that node's earlier dots or what replaced
  them, which keeps dotted clocks sound).
- Sloppy quorum: when a preference node fails, the request goes to the next
  node clockwise outside the list, carrying a hint naming the node it stands
  in for. A reply counts toward R/W either way; the result says "strict" when
  R (or W) replies came from the preference list itself, "sloppy" otherwise.
  R + W > N makes a strict read see every strict write acknowledged before it.
- A put succeeds after W acknowledgements (the coordinator's own durable write
  counts when it is in the list); the others keep going in the background.
  Too few acks before the deadline is an *indefinite* failure (some replica
  may hold the write); a get with too few replies is a definite one.
- Read repair: once every replica of a get has answered (or failed), the
  merge of the preference nodes' replies is sent to each of them whose copy
  differed (stand-ins' data goes home by hinted handoff only).
- Replication is batched: the kv.store requests for one replica go in one
  kv.store-batch call per loop turn, or, while a call to that replica is in
  flight, wait and leave together when it ends (StoreBatcher); the replica
  answers after one sync for all of them (group commit, as on the
  coordinator, whose concurrent puts share fsyncs too).
- Planted bug `sloppy-ack`: a put is acknowledged after W-1 acks, still
  reported as strict.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from systems.kv import vclock
from systems.kv.messages import BadMessage, KeyRequest, PutRequest, StoreRequest, decode_versioned
from systems.kv.store import Hint
from systems.kv.vclock import Versioned, VersionError
from systems.runtime.api import RemoteError, RpcError, RpcTimeout, Unreachable

if TYPE_CHECKING:
    from systems.kv.node import KvNode

MAX_INFLIGHT_BATCHES = 1
"""kv.store-batch calls in flight per replica (StoreBatcher)."""
MAX_BATCH_REQUESTS = 1000
"""kv.store requests in one kv.store-batch call (the replica takes at most 10,000)."""


@dataclass(frozen=True, slots=True)
class QuorumConfig:
    n: int = 3
    r: int = 2
    w: int = 2

    def write_need(self, *, sloppy_ack: bool = False) -> int:
        return max(1, self.w - 1) if sloppy_ack else self.w


@dataclass(frozen=True, slots=True)
class Reply:
    node: str
    """Who answered."""
    hint: str | None
    """The preference node it stood in for, or None when it is one."""
    result: Any


def quorum_kind(replies: list[Reply], need: int) -> str:
    """'strict' when `need` replies came from preference nodes themselves."""
    return "strict" if sum(1 for r in replies if r.hint is None) >= need else "sloppy"


@dataclass
class Fanout:
    """Ask each target; on failure move on to the next unused fallback with a hint.

    Tasks run on the node (rt.spawn) and outlive `wait`, so a put keeps
    replicating after its quorum and a get's stragglers feed read repair.
    """

    attempt: Callable[[str, str | None], Awaitable[Any]]
    targets: list[str]
    fallbacks: list[str] | Callable[[], list[str]]
    """The fallbacks in order, or what works them out (called when the first target fails)."""
    replies: list[Reply] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    remaining: int = 0
    _waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    def start(self, spawn: Callable[[Any], Any],
              send: Callable[[str], asyncio.Future[None]] | None = None) -> None:
        """Ask every target: through `send` when given (its future, answered by a callback; no task per
        target unless one fails and a fallback is tried), else by a task running `attempt`."""
        self.remaining = len(self.targets)
        for t in self.targets:
            if send is None:
                spawn(self._run(t, None))
            else:
                send(t).add_done_callback(functools.partial(self._sent, t, spawn))

    def _sent(self, target: str, spawn: Callable[[Any], Any], fut: asyncio.Future[None]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if exc is None and not fut.cancelled():
            self.replies.append(Reply(target, None, True))
        elif isinstance(exc, RpcError):
            self.failures.append((target, exc.code))
            fallback = self._next_fallback()
            if fallback is not None:
                spawn(self._run(fallback, target))
                return
        self.remaining -= 1
        self._wake()

    async def _run(self, node: str, hint: str | None) -> None:
        target = hint or node
        try:
            while True:
                try:
                    self.replies.append(Reply(node, hint, await self.attempt(node, hint)))
                    return
                except RpcError as e:
                    self.failures.append((node, e.code))
                    fallback = self._next_fallback()
                    if fallback is None:
                        return
                    node, hint = fallback, target
        finally:
            self.remaining -= 1
            self._wake()

    def _next_fallback(self) -> str | None:
        if callable(self.fallbacks):
            self.fallbacks = self.fallbacks()
        return self.fallbacks.pop(0) if self.fallbacks else None

    def _wake(self) -> None:
        keep = []
        for need, fut in self._waiters:
            if fut.done():
                continue
            if len(self.replies) >= need or self.remaining <= 0:
                fut.set_result(None)
            else:
                keep.append((need, fut))
        self._waiters = keep

    async def wait(self, need: int, timeout_s: float) -> None:
        """Until `need` replies, every task finished, or the timeout."""
        if len(self.replies) >= need or self.remaining <= 0:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append((need, fut))
        timer = loop.call_later(timeout_s, _settle, fut)
        try:
            await fut
        finally:
            timer.cancel()

    async def all_done(self, timeout_s: float) -> None:
        await self.wait(len(self.targets) + 1, timeout_s)


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class StoreBatcher:
    """kv.store requests for one replica travel together in kv.store-batch calls, at most
    MAX_INFLIGHT_BATCHES of them in flight per replica at a time.

    Requests made while a replica's batch is in flight wait for it and leave together in the next
    call (group commit across loop turns, as a Raft leader's appends: under load a replica merges
    many puts per sync; with nothing in flight a request leaves at the end of its turn). The
    replica merges them all and syncs once; each request still gets its own answer, and a failed
    call fails every request it carried (as separate calls would). When a call gets no answer
    (timeout, unreachable), the requests queued behind it fail at once with a definite
    `Unreachable` (they were never sent), so they move to fallbacks when its requests do.
    """

    def __init__(self, node: KvNode) -> None:
        self.node = node
        self.pending: dict[str, list[tuple[Any, asyncio.Future[None]]]] = {}
        self.in_flight: dict[str, int] = {}

    def store(self, dst: str, msg: Any) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        batch = self.pending.get(dst)
        if batch is None:
            batch = self.pending[dst] = []
            if self.in_flight.get(dst, 0) < MAX_INFLIGHT_BATCHES:
                loop.call_soon(self._flush, dst)
        batch.append((msg, fut))
        return fut

    def _flush(self, dst: str) -> None:
        if self.in_flight.get(dst, 0) >= MAX_INFLIGHT_BATCHES:
            return  # sent when the call in flight ends
        batch = self.pending.pop(dst, [])
        if len(batch) > MAX_BATCH_REQUESTS:
            self.pending[dst] = batch[MAX_BATCH_REQUESTS:]
            batch = batch[:MAX_BATCH_REQUESTS]
        if batch:
            self.in_flight[dst] = self.in_flight.get(dst, 0) + 1
            self.node.rt.spawn(self._call(dst, batch), name="kv-store-batch")

    async def _call(self, dst: str, batch: list[tuple[Any, asyncio.Future[None]]]) -> None:
        node = self.node
        lost = False
        try:
            reply = await node.call(dst, "kv.store-batch", {"items": [m for m, _ in batch]},
                                    timeout=node.rpc_timeout_s)
            results = reply.get("results") if isinstance(reply, dict) else None
            if not isinstance(results, list) or len(results) != len(batch):
                raise RemoteError(f"bad kv.store-batch reply from {dst}", code="bad-reply", definite=False)
        except RpcError as e:
            lost = isinstance(e, Unreachable | RpcTimeout)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(type(e)(e.message, code=e.code, definite=e.definite))
            return
        finally:
            self.in_flight[dst] -= 1
            if lost:
                for _, fut in self.pending.pop(dst, []):
                    if not fut.done():
                        fut.set_exception(Unreachable(f"not sent: the kv.store-batch before it to {dst} got no answer"))
            elif dst in self.pending:
                self._flush(dst)
        for (_, fut), r in zip(batch, results, strict=True):
            if fut.done():
                continue
            if r is True:
                fut.set_result(None)
            else:
                err = r if isinstance(r, dict) else {}
                fut.set_exception(RemoteError(str(err.get("message", r)), code=str(err.get("code", "remote")),
                                              definite=bool(err.get("definite", False))))


class Coordinator:
    def __init__(self, node: KvNode) -> None:
        self.node = node
        self.batcher = StoreBatcher(node)

    # -- get

    async def get(self, key: str) -> dict[str, Any]:
        node, rt, q = self.node, self.node.rt, self.node.quorum
        pref = node.preference_list(key)
        local: list[Reply] = []
        if rt.node_id in pref:
            local.append(Reply(rt.node_id, None, await node.store.get_durable(key)))

        async def attempt(dst: str, hint: str | None) -> Versioned:
            if dst == rt.node_id:
                return await node.local_view(key)
            raw = await node.call(dst, "kv.fetch", KeyRequest(key).to_wire(), timeout=node.rpc_timeout_s)
            try:
                return decode_versioned(raw)  # the schema's checks too (messages.py)
            except VersionError as e:
                raise RemoteError(str(e), code="bad-reply", definite=True) from e

        fallbacks = [f for f in node.fallbacks(key) if f != rt.node_id]
        if not local:
            fallbacks.insert(0, rt.node_id)  # what this node holds for others counts as a sloppy reply
        fan = Fanout(attempt, [p for p in pref if p != rt.node_id], fallbacks)
        fan.start(rt.spawn)
        await fan.wait(q.r - len(local), node.coord_timeout_s)
        replies = local + list(fan.replies)
        if len(replies) < q.r:
            raise RemoteError(f"{len(replies)} of R={q.r} replicas answered", code="unavailable", definite=True)
        merged = vclock.merge_all((r.result for r in replies), last_writer_wins=node.store.lww)
        rt.spawn(self._read_repair(key, fan, local), name="kv-read-repair")
        return {
            "values": merged.values,
            "siblings": [[s.value, s.ts, s.dot.node, s.dot.counter] for s in merged.siblings],
            "context": merged.clock,
            "quorum": quorum_kind(replies, q.r),
        }

    async def _read_repair(self, key: str, fan: Fanout, local: list[Reply]) -> None:
        node = self.node
        await fan.all_done(node.coord_timeout_s)
        replies = [r for r in local + list(fan.replies) if r.hint is None]
        merged = vclock.merge_all((r.result for r in replies), last_writer_wins=node.store.lww)
        for r in replies:
            if r.result == merged:
                continue
            if r.node == node.rt.node_id:
                await node.store.merge(key, merged, owned=True)
            else:
                node.rt.send(r.node, "kv.store", StoreRequest(key, merged).to_wire())

    # -- put

    async def put(self, key: str, value: Any, ctx: dict[str, int], *, overwrite: bool, forwarded: bool) -> Any:
        """A client's write; `overwrite` replaces whatever the coordinator knows of the key."""
        node = self.node
        pref = node.preference_list(key)
        if node.rt.node_id not in pref and not forwarded:
            msg = PutRequest(key, value, ctx, overwrite, forwarded=True).to_wire()
            for dst in pref:
                if node.suspected(dst):
                    continue
                try:
                    return await node.call(dst, "kv.put", msg, timeout=node.coord_timeout_s + node.rpc_timeout_s)
                except Unreachable:
                    continue
                except RpcTimeout as e:
                    raise RemoteError(f"put forwarded to {dst} timed out", code="timeout", definite=False) from e
        return await self._coordinate(key, value, ctx, overwrite=overwrite)

    async def _coordinate(self, key: str, value: Any, ctx: dict[str, int], *, overwrite: bool) -> Any:
        node, rt, q = self.node, self.node.rt, self.node.quorum
        pref = node.preference_list(key)
        if overwrite:
            ctx = vclock.join(ctx, node.store.get(key).clock)
        in_pref = rt.node_id in pref
        await node.store.update(key, rt.node_id, value, ctx, node.clock(), owned=in_pref)
        local = [Reply(rt.node_id, None, True)] if in_pref else []

        async def attempt(dst: str, hint: str | None) -> bool:
            """A fallback's try (`send` makes the first tries, to the preference nodes)."""
            if dst == rt.node_id:
                await self.on_store(key, node.store.get(key), hint)
                return True
            await self.batcher.store(dst, StoreRequest(key, await node.store.get_durable(key), hint).to_wire())
            return True

        msg = StoreRequest(key, await node.store.get_durable(key)).to_wire()
        """The coordinator's record as it is now, encoded once for every preference node."""

        def fallbacks() -> list[str]:
            # A coordinator outside the list is its own first stand-in (its copy is durable already).
            out = [f for f in node.fallbacks(key) if f != rt.node_id]
            return out if in_pref else [rt.node_id, *out]

        fan = Fanout(attempt, [p for p in pref if p != rt.node_id], fallbacks)
        fan.start(rt.spawn, lambda dst: self.batcher.store(dst, msg))
        need = q.write_need(sloppy_ack="sloppy-ack" in node.bugs)
        await fan.wait(need - len(local), node.coord_timeout_s)
        replies = local + list(fan.replies)
        if len(replies) < need:
            raise RemoteError(f"{len(replies)} of W={q.w} replicas acknowledged", code="unavailable", definite=False)
        return {"quorum": quorum_kind(replies, need), "acks": len(replies)}

    # -- replica side

    async def on_store(self, key: str, state: Versioned, hint: str | None, *, sync: bool = True) -> None:
        """Merge a replica's copy; durable on return (with `sync`; else at the store's next commit)."""
        node = self.node
        owned = node.rt.node_id in node.preference_list(key)
        if hint is None or owned or hint == node.rt.node_id:
            await node.store.merge(key, state, owned=owned, sync=sync)
            return
        await node.store.merge_held(key, state, sync=False)
        if "no-handoff" not in node.bugs:
            await node.store.add_hint(Hint(hint, key), sync=False)
        if sync:
            await node.store.commit()

    async def on_store_batch(self, items: list[Any]) -> list[Any]:
        """kv.store-batch: merge every item, then one sync for all (group commit); a result per item."""
        results: list[Any] = []
        for raw in items:
            try:
                req = StoreRequest.from_wire(raw)
            except BadMessage as e:
                results.append({"code": "bad-request", "definite": True, "message": str(e)})
                continue
            await self.on_store(req.key, req.state, req.hint, sync=False)  # no await inside: nothing interleaves
            results.append(True)
        await self.node.store.commit()
        return results
