"""A KV node: the glue between the runtime, the store and the protocol modules.

Rules this module keeps:

- Handlers validate their input (messages.py) and answer bad input with a
  definite `RemoteError("bad-request")`; they never crash the node. Every
  refusal is counted (`dropped`, in kv.dump) and its warning throttled.
- Peer RPCs are taken from the cluster's other nodes alone (`src`, the
  authenticated sender on the real runtime); a client or the harness gets
  a definite "forbidden". A join or leave names a node of the cluster, and
  gossip mentions only those.
- Client RPCs: kv.get {key} -> {values, siblings, context, quorum};
  kv.put {key, value, context, overwrite} -> {quorum, acks};
  admin: kv.join {node}, kv.leave {node}, kv.dump {} (this node's replicas,
  ring, data held for others and hints, for the convergence and load
  checkers), kv.ring {} -> {members, vnodes, n, keys} (this node's view of
  the ring and the keys it stores, for faults aimed at a key's replicas).
- Peer RPCs: kv.fetch, kv.store, kv.store-batch (replication, one sync per
  batch), kv.digest, kv.members (gossip).
- Background loops (hinted handoff, ownership transfer, anti-entropy,
  membership gossip, compaction of the store's log) run every
  `*_interval_s` on the node's own timers.
- The membership table is synced before a join/leave is acknowledged. It is
  a checksummed file (api.frame_file); a damaged one is `CorruptData` at
  start (never replaced by the initial table), as is damage in the store.
- A peer is suspected for `suspect_s` after an RPC to it got no answer
  (timeout, refused); any answer clears it. Only put forwarding uses it.
- Timestamps for LWW are `rt.now()` plus this node's clock skew (option
  `clock_skew_s`: {node: seconds}).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgpack

from systems.kv import antientropy, handoff, vclock
from systems.kv.coordinator import Coordinator, QuorumConfig
from systems.kv.membership import Membership, MembershipError
from systems.kv.messages import AdminRequest, BadMessage, DigestRequest, KeyRequest, PutRequest, StoreRequest
from systems.kv.ring import Ring
from systems.kv.store import Store
from systems.kv.vclock import Versioned
from systems.runtime.api import (
    CorruptData,
    Message,
    NodeConfig,
    RemoteError,
    RpcTimeout,
    Runtime,
    Throttle,
    Unreachable,
    frame_file,
    unframe_file,
)

MEMBERS_FILE = "members"
MAX_BATCH_ITEMS = 10_000
PEER_METHODS = frozenset({"kv.fetch", "kv.store", "kv.store-batch", "kv.digest", "kv.members"})


def bad_request(why: str) -> RemoteError:
    return RemoteError(why, code="bad-request", definite=True)


M = TypeVar("M")


def parse(kind: Callable[[Any], M], msg: Message) -> M:
    """`kind.from_wire(msg)`, answering bad input with a definite bad-request error."""
    try:
        return kind(msg)
    except (BadMessage, MembershipError) as e:
        raise bad_request(str(e)) from e


class KvNode:
    """One node's state (store, membership, suspicion) and its handlers and loops."""

    def __init__(self, rt: Runtime, config: NodeConfig) -> None:
        opts = config.options
        self.rt = rt
        self.bugs = frozenset(config.bugs)
        self.quorum = QuorumConfig(int(opts.get("n", 3)), int(opts.get("r", 2)), int(opts.get("w", 2)))
        self.vnodes = int(opts.get("vnodes", 128))
        self.rpc_timeout_s = float(opts.get("rpc_timeout_s", 0.5))
        self.coord_timeout_s = float(opts.get("coord_timeout_s", 1.2))
        self.handoff_interval_s = float(opts.get("handoff_interval_s", 0.5))
        self.antientropy_interval_s = float(opts.get("antientropy_interval_s", 0.5))
        self.gossip_interval_s = float(opts.get("gossip_interval_s", 0.5))
        self.compact_interval_s = float(opts.get("compact_interval_s", 1.0))
        self.skew_s = float((opts.get("clock_skew_s") or {}).get(rt.node_id, 0.0))
        self.store = Store(rt.disk, last_writer_wins="lww-clock" in config.bugs)
        self.membership = self._load_members(opts.get("members"))
        self.suspect_s = float(opts.get("suspect_s", 1.0))
        self._suspects: dict[str, float] = {}
        self._ring: Ring | None = None
        self._ring_of: Membership | None = None
        self._prefs: dict[str, tuple[str, ...]] = {}
        self._fallbacks: dict[str, tuple[str, ...]] = {}
        self.digest_index = antientropy.DigestIndex(self)
        self.coordinator = Coordinator(self)
        self.cluster = frozenset([rt.node_id, *rt.peers])
        self.dropped: dict[str, int] = {}
        """Requests refused at the edge, by method (reported in kv.dump)."""
        self.warn = Throttle(rt.log, rt.now)
        for cut in self.store.cuts:
            rt.log.warning("kv-wal-torn-tail", **cut)
        self._handed_over: tuple[Ring, int] | None = None
        """(ring, store.owned_epoch) of the last ownership pass that left nothing to hand over."""

    # -- ring

    def _load_members(self, initial: Any) -> Membership:
        raw = self.rt.disk.read(MEMBERS_FILE)
        if raw is not None:
            body = unframe_file(raw, MEMBERS_FILE)  # CorruptData: never fall back to the initial table
            try:
                return Membership.decode(msgpack.unpackb(body))
            except (MembershipError, ValueError, msgpack.UnpackException) as e:
                raise CorruptData(MEMBERS_FILE, 0, f"checksum matches but the table does not decode: {e}") from None
        nodes = initial if isinstance(initial, list) and initial else [self.rt.node_id, *self.rt.peers]
        return Membership.initial(nodes)

    @property
    def ring(self) -> Ring:
        """The ring of the current membership (rebuilt, and the caches below emptied, when it changes)."""
        if self._ring_of is not self.membership:
            members = self.membership.members
            self._ring_of = self.membership
            if self._ring is None or self._ring.nodes != tuple(sorted(members)):
                self._ring = Ring(members, self.vnodes)
                self._prefs = {}
                self._fallbacks = {}
        assert self._ring is not None
        return self._ring

    def preference_list(self, key: str) -> list[str]:
        """The key's N replicas under the current ring (cached until the ring changes)."""
        ring = self.ring
        pref = self._prefs.get(key)
        if pref is None:
            pref = self._prefs[key] = tuple(ring.preference_list(key, self.quorum.n))
        return list(pref)

    def fallbacks(self, key: str) -> list[str]:
        """Every other known node, in ring order after the preference list, then non-members
        (cached until the ring changes)."""
        pref = self.preference_list(key)
        cached = self._fallbacks.get(key)
        if cached is None:
            walk = [n for n in self.ring.walk(key) if n not in pref]
            others = [n for n in sorted([self.rt.node_id, *self.rt.peers]) if n not in pref and n not in walk]
            cached = self._fallbacks[key] = (*walk, *others)
        return list(cached)

    # -- peers

    def suspected(self, peer: str) -> bool:
        """True while a recent RPC to `peer` failed and none has succeeded since."""
        return self._suspects.get(peer, -1.0) > self.rt.now()

    async def call(self, dst: str, method: str, msg: Message, timeout: float) -> Message:
        """`rt.call` that keeps suspicion: a failure to get any answer marks the peer for `suspect_s`."""
        try:
            reply = await self.rt.call(dst, method, msg, timeout=timeout)
        except (Unreachable, RpcTimeout):
            self._suspects[dst] = self.rt.now() + self.suspect_s
            raise
        self._suspects.pop(dst, None)
        return reply

    def clock(self) -> float:
        return self.rt.now() + self.skew_s

    async def set_membership(self, new: Membership) -> bool:
        if new == self.membership:
            return False
        old = self.membership.members
        self.membership = new
        self.rt.disk.write(MEMBERS_FILE, frame_file(msgpack.packb(new.encode())))
        await self.rt.disk.sync(MEMBERS_FILE)
        if new.members != old:
            self.rt.log.info("ring-changed", members=list(new.members))
        return True

    # -- handlers

    async def h_get(self, src: str, msg: Message) -> Message:
        return await self.coordinator.get(parse(KeyRequest.from_wire, msg).key)

    async def h_put(self, src: str, msg: Message) -> Message:
        req = parse(PutRequest.from_wire, msg)
        return await self.coordinator.put(
            req.key, req.value, req.context, overwrite=req.overwrite, forwarded=req.forwarded
        )

    async def local_view(self, key: str) -> Versioned:
        """What this node can answer for the key: its own record (durable: store.py's rules) and what it
        holds for others."""
        own = await self.store.get_durable(key)
        return vclock.merge(own, self.store.get_held(key), last_writer_wins=self.store.lww)

    async def h_fetch(self, src: str, msg: Message) -> Message:
        return (await self.local_view(parse(KeyRequest.from_wire, msg).key)).encode()

    async def h_store(self, src: str, msg: Message) -> Message:
        req = parse(StoreRequest.from_wire, msg)
        await self.coordinator.on_store(req.key, req.state, req.hint)
        return True

    async def h_store_batch(self, src: str, msg: Message) -> Message:
        items = msg.get("items") if isinstance(msg, dict) else None
        if not isinstance(items, list) or len(items) > MAX_BATCH_ITEMS:
            raise bad_request(f"kv.store-batch needs {{items: [...]}} (at most {MAX_BATCH_ITEMS}), got {str(msg)[:80]}")
        return {"results": await self.coordinator.on_store_batch(items)}

    async def h_digest(self, src: str, msg: Message) -> Message:
        req = parse(DigestRequest.from_wire, msg)
        if req.buckets is not None:
            return antientropy.answer_buckets(self, src, req.buckets)
        return antientropy.answer(self, src, req.keys, req.within)

    async def h_members(self, src: str, msg: Message) -> Message:
        theirs = parse(Membership.decode, msg)
        strangers = [n for n, _ in theirs.table if n not in self.cluster]
        if strangers:
            raise bad_request(f"kv.members names nodes outside the cluster: {', '.join(strangers[:5])}")
        await self.set_membership(self.membership.merge(theirs))
        return self.membership.encode()

    async def _change(self, new: Membership) -> Message:
        await self.set_membership(new)
        for peer in sorted({*self.rt.peers, *(n for n, _ in new.table)} - {self.rt.node_id}):
            self.rt.send(peer, "kv.members", new.encode())
        return {"members": list(self.membership.members)}

    def _member(self, msg: Message) -> str:
        node = parse(AdminRequest.from_wire, msg).node
        if node not in self.cluster:
            raise bad_request(f"{node!r} is not a node of this cluster ({', '.join(sorted(self.cluster))})")
        return node

    async def h_join(self, src: str, msg: Message) -> Message:
        return await self._change(self.membership.join(self._member(msg)))

    async def h_leave(self, src: str, msg: Message) -> Message:
        return await self._change(self.membership.leave(self._member(msg)))

    async def h_ring(self, src: str, msg: Message) -> Message:
        return {
            "members": list(self.membership.members),
            "vnodes": self.vnodes,
            "n": self.quorum.n,
            "keys": sorted(self.store.key_list()),
        }

    async def h_dump(self, src: str, msg: Message) -> Message:
        me = self.rt.node_id
        keys = {}
        for key in self.store.key_list():
            pref = self.preference_list(key)
            if me in pref:
                state = self.store.get(key)
                keys[key] = {
                    "dots": [list(d) for d in state.dots()],
                    "values": state.values,
                    "clock": state.clock,
                    "pref": pref,
                }
        held = {key: [list(d) for d in st.dots()] for key, st in sorted(self.store.held.items()) if st.siblings}
        return {
            "node": me,
            "members": list(self.membership.members),
            "vnodes": self.vnodes,
            "n": self.quorum.n,
            "keys": keys,
            "held": held,
            "hints": len(self.store.hints()),
            "dropped": dict(sorted(self.dropped.items())),
        }

    # -- loops

    async def _every(self, interval_s: float, step: Callable[[], Awaitable[Any]]) -> None:
        # Start at a random phase so nodes do not march in lockstep.
        await self.rt.sleep(interval_s * self.rt.rng.random())
        while True:
            try:
                await step()
            except Exception as e:  # a background round must never stop the loop
                self.rt.log.warning("kv-loop-error", step=step.__name__, error=repr(e))
            await self.rt.sleep(interval_s)

    async def _handoff_step(self) -> None:
        await handoff.deliver_hints(self)
        # A pass over every key is needed only when the ring or the set of owned keys changed since
        # a pass that left no owned key outside its preference list; keys newly owned under the same
        # ring are looked at alone (each is owned because this node is in its list, so the check is
        # cheap and almost always passes).
        ring, epoch = self.ring, self.store.owned_epoch
        me = self.rt.node_id
        last = self._handed_over
        if last is not None and last[0] is ring:
            if last[1] == epoch:
                return
            fresh = self.store.owned_log[last[1]:epoch]
            if all(me in self.preference_list(k) for k in fresh if self.store.owned.get(k)):
                self._handed_over = (ring, epoch)
                return
        await handoff.transfer_ownership(self)
        if all(me in self.preference_list(k) for k, owned in self.store.owned.items() if owned):
            self._handed_over = (ring, epoch)

    async def _antientropy_step(self) -> None:
        peers = [n for n in self.ring.nodes if n != self.rt.node_id]
        if peers:
            await antientropy.exchange(self, self.rt.rng.choice(peers))

    async def _compact_step(self) -> None:
        if self.store.wants_compaction():
            await self.store.compact()

    async def _gossip_step(self) -> None:
        self.warn.flush()
        peers = sorted({*self.rt.peers, *(n for n, _ in self.membership.table)} - {self.rt.node_id})
        if peers:
            self.rt.send(self.rt.rng.choice(peers), "kv.members", self.membership.encode())

    def _guarded(self, method: str, handler: Callable[[str, Message], Awaitable[Message]]
                 ) -> Callable[[str, Message], Awaitable[Message]]:
        """The handler behind the edge: peer methods from peers alone; every refusal counted, warned (throttled)."""
        peer_only = method in PEER_METHODS

        async def guarded(src: str, msg: Message) -> Message:
            try:
                if peer_only and (src not in self.cluster or src == self.rt.node_id):
                    raise RemoteError(f"{method} is for the cluster's nodes, not {src!r}", code="forbidden",
                                      definite=True)
                return await handler(src, msg)
            except RemoteError as e:
                if e.code in ("bad-request", "forbidden"):
                    self.dropped[method] = self.dropped.get(method, 0) + 1
                    self.warn.warning("kv-refused", method=method, src=src, code=e.code, error=e.message[:200])
                raise

        return guarded

    def start(self) -> None:
        handlers: dict[str, Callable[[str, Message], Awaitable[Message]]] = {
            "kv.get": self.h_get,
            "kv.put": self.h_put,
            "kv.fetch": self.h_fetch,
            "kv.store": self.h_store,
            "kv.store-batch": self.h_store_batch,
            "kv.digest": self.h_digest,
            "kv.members": self.h_members,
            "kv.join": self.h_join,
            "kv.leave": self.h_leave,
            "kv.dump": self.h_dump,
            "kv.ring": self.h_ring,
        }
        for method, handler in handlers.items():
            self.rt.serve(method, self._guarded(method, handler))
        self.rt.spawn(self._every(self.handoff_interval_s, self._handoff_step), name="kv-handoff")
        self.rt.spawn(self._every(self.antientropy_interval_s, self._antientropy_step), name="kv-antientropy")
        self.rt.spawn(self._every(self.gossip_interval_s, self._gossip_step), name="kv-gossip")
        self.rt.spawn(self._every(self.compact_interval_s, self._compact_step), name="kv-compact")
        self.rt.log.info("kv-started", keys=len(self.store.key_list()), members=list(self.membership.members))


async def start_node(rt: Runtime, config: NodeConfig) -> None:
    KvNode(rt, config).start()
