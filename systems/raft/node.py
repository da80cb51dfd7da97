"""The asyncio glue around RaftCore: one loop owns the core, persists, sends, applies.

Rules:

- Only the `_run` task touches the core. Handlers and the ticker put events
  on a queue; the loop drains every queued event, then handles each Ready:
  persist (one sync for all of it: group commit) BEFORE sending any message,
  then send, then apply committed entries and answer confirmed reads, then
  `advance`. Two exceptions: a leader's AppendEntries and InstallSnapshot
  go out before its own sync (they promise nothing; the leader counts its
  own log only once stable), so its fsync overlaps its followers'; and
  committed entries that were already on this node's disk before the Ready
  are applied (and their clients answered) before its sync: committed means
  durable on a majority, so the answer does not depend on the new entries.
  While a sync is in progress new events queue up, so the next
  Ready batches them (and their entries) together.
- A client write is answered only after its entry is applied; its reply says
  what certainly happened: "ok"/"fail" (applied, with the state machine's
  result), "not-leader" (never appended here: definite), "dropped" (appended
  here but overwritten by another leader's entry: this attempt can never
  apply), "unknown" (no answer in time, or superseded by a snapshot).
- Reads go through ReadIndex (default) or the log (`read_mode: "log"`);
  never from a follower's state. The `stale-read` bug answers from the
  leader's local state without confirming leadership (and, trusting its
  leadership blindly, turns off check-quorum, so a cut-off leader stays one).
- The `lease-read` bug serves reads from the leader's local state while
  it believes its lease holds: a read confirmed by a majority (ReadIndex)
  at node time t grants a lease until t + `lease_ratio` x the election
  timeout, measured on the leader's own clock (`rt.now()`). With equal
  clock rates this is safe (a majority that acknowledged will not elect
  another leader within an election timeout); a leader whose clock runs
  slow keeps serving after the others elected a new leader: stale reads.
- Peer messages arrive one-way on "raft" and may be lost, duplicated or
  reordered. Each is checked at the edge before the loop sees it
  (messages.from_wire's schema; sent by a peer of this cluster, as itself,
  to this node); anything else is counted in `dropped` (status), logged
  through a `Throttle` and dropped. Client requests are checked the same
  way (`check_request`) and refused with a definite "fail".
- Leader probe: a follower that has not heard its leader for
  `probe_leader_ticks` ticks (0: never) calls its `raft-ping`; a refused
  connection (`Unreachable`: a killed process's port is closed) means the
  leader is gone, and the core is told (`leader_gone`: pre-vote at once, not
  at the end of the election timeout; it settles who goes first when both
  followers learn it together). A probe that times out proves nothing: the
  election timeout decides.
- Fail-stop (api.py's one rule): a disk operation that fails (EIO, ENOSPC,
  a failed fsync) stops the node at once, before the error reaches the
  loop, so what was not persisted is never acknowledged; the loop and the
  ticker are essential tasks, so a loop that dies for any other reason (a
  bug) stops the node too. It never lives on as a zombie that still
  answers `status`; a restart recovers from what its disk holds.
- Snapshots (compaction) happen once `snapshot_every` entries were applied
  since the last one and the log grew by `snapshot_log_ratio` times the last
  snapshot's size; the state is serialized in the loop (a consistent cut),
  the snapshot file is written and synced and the covered log segments are
  deleted by a background task, one at a time, never blocking the loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from systems.raft.core import CoreConfig, RaftCore, Ready, Role
from systems.raft.inbox import Inbox
from systems.raft.kvstate import KVState, encode_command, is_read_only
from systems.raft.log import Entry, Snapshot
from systems.raft.messages import Append, BadMessage, InstallSnapshot, from_wire, to_wire
from systems.raft.storage import RaftStorage
from systems.runtime.api import INT_MAX, Message, NodeConfig, RpcError, Runtime, Throttle, Unreachable

DEFAULT_OPTIONS: dict[str, Any] = {
    "tick_s": 0.1,
    "heartbeat_ticks": 1,
    "election_ticks": 10,
    "max_batch": 64,
    "max_inflight": 8,
    "check_quorum": True,
    "pre_vote": True,
    "snapshot_every": 200,
    "snapshot_log_ratio": 1.0,
    "segment_entries": 0,
    "read_mode": "read-index",
    "apply_wait_s": 1.5,
    "digest_checkpoint_every": 64,
    "lease_ratio": 0.8,
    "probe_leader_ticks": 2,
}

WRITE_OPS = ("put", "cas", "append", "txn")
_SCALARS = (str, int, float, bool, bytes, type(None))
"""Values msgpack gives back as they were (a map inside a value may not: its keys are checked on decode)."""
READ_OPS = ("get",)
MAX_KEY_CHARS = 1024
MAX_CLIENT_CHARS = 128
MAX_TXN_OPS = 1024


def _bad_key(k: Any) -> bool:
    if isinstance(k, str):
        return len(k) > MAX_KEY_CHARS
    return not (k is None or (type(k) is int and -INT_MAX <= k <= INT_MAX))


def check_request(msg: Any) -> str | None:
    """Why a client request cannot be taken (None when it can): the edge of the state machine.

    Keys are str (at most MAX_KEY_CHARS), int or null, in micro-ops too (an unhashable key would
    raise in every node's apply); `client` a str, `seq` an int in 0..INT_MAX, `timeout_s` a
    number; a txn's value a list of at most MAX_TXN_OPS micro-ops [f, key, value]."""
    if not isinstance(msg, dict):
        return "a request is a map"
    f = msg.get("f")
    if f not in (*WRITE_OPS, *READ_OPS):
        return f"unknown op {str(f)[:40]!r}"
    if _bad_key(msg.get("key")):
        return "key must be a string of at most 1024 characters, an int or null"
    client, seq = msg.get("client"), msg.get("seq")
    if client is not None and not (isinstance(client, str) and len(client) <= MAX_CLIENT_CHARS):
        return "client must be a short string"
    if seq is not None and not (type(seq) is int and 0 <= seq <= INT_MAX):
        return f"seq must be an int in 0..{INT_MAX}"
    t = msg.get("timeout_s")
    if t is not None and not (isinstance(t, int | float) and not isinstance(t, bool) and 0 <= t < 1e9):
        return "timeout_s must be a number of seconds"
    if f == "txn":
        mops = msg.get("value")
        if not isinstance(mops, list) or len(mops) > MAX_TXN_OPS:
            return f"a txn's value is a list of at most {MAX_TXN_OPS} micro-ops"
        for mop in mops:
            if not (isinstance(mop, list) and len(mop) == 3 and mop[0] in ("r", "w", "append")) or _bad_key(mop[1]):
                return f"bad micro-op {str(mop)[:80]}"
    return None


def segment_entries(opts: dict[str, Any]) -> int:
    """Records per log segment: the option, else 1024. Compaction deletes whole segments, and
    every delete is a file-system operation on the loop's thread: few large segments, not many."""
    given = int(opts["segment_entries"])
    return given if given > 0 else 1024


class RaftNode:
    def __init__(self, rt: Runtime, config: NodeConfig) -> None:
        self.rt = rt
        self.opts = {**DEFAULT_OPTIONS, **config.options}
        self.bugs = set(config.bugs)
        self.storage = RaftStorage(
            rt.disk,
            sync="no-fsync" not in self.bugs,
            persist_vote="double-vote" not in self.bugs,
            segment_entries=segment_entries(self.opts),
        )
        self.compacting = False
        self.log_bytes_at_snapshot = 0
        self.kv = KVState(checkpoint_every=int(self.opts["digest_checkpoint_every"]))
        self.events: Inbox[tuple[Any, ...]] = Inbox()
        self.waiters: dict[int, tuple[int, asyncio.Future[dict[str, Any]], dict[str, Any] | None]] = {}
        """index -> (term, the client's future, its command when applying it needs no decoding)."""
        self.read_waiters: list[tuple[int, dict[str, Any], asyncio.Future[dict[str, Any]]]] = []
        self.open_reads: list[asyncio.Future[dict[str, Any]]] = []
        self.incarnation = f"{rt.rng.getrandbits(32):08x}"
        self.core: RaftCore | None = None
        self._last_role: tuple[int, Role, str | None] | None = None
        self.led_terms: list[int] = []
        """Terms this incarnation led (the last 64), reported in status for the safety checker."""
        self.peer_set = frozenset(rt.peers)
        self.dropped: dict[str, int] = {}
        """Messages and requests refused at the edge, by kind (reported in status)."""
        self.warn = Throttle(rt.log, rt.now)
        self.lease: tuple[int, float] = (0, 0.0)
        """(term, node time until which this leader trusts its lease): the lease-read bug only."""
        self.probing = False
        """A leader probe is in flight (at most one at a time)."""

    # ------------------------------------------------------------ start
    def start(self) -> None:
        loaded = self.storage.load()
        for cut in loaded.cuts:
            self.rt.log.warning("raft-log-torn-tail", entries=len(loaded.entries), **cut)
        if loaded.snapshot is not None:
            self.kv.restore(loaded.snapshot.data)
        o = self.opts
        cfg = CoreConfig(
            node_id=self.rt.node_id,
            peers=tuple(self.rt.peers),
            election_ticks=int(o["election_ticks"]),
            heartbeat_ticks=int(o["heartbeat_ticks"]),
            max_batch=int(o["max_batch"]),
            max_inflight=int(o["max_inflight"]),
            # The stale-read bug trusts leadership blindly, so it never checks for a quorum either.
            check_quorum=bool(o["check_quorum"]) and "stale-read" not in self.bugs,
            pre_vote=bool(o["pre_vote"]),
            commit_old_term="commit-old-term" in self.bugs,
        )
        self.core = RaftCore(cfg, self.rt.rng, loaded.hard, loaded.snapshot, loaded.entries)
        self.rt.log.info(
            "raft-start",
            incarnation=self.incarnation,
            term=loaded.hard.term,
            vote=loaded.hard.vote,
            snapshot_index=loaded.snapshot.index if loaded.snapshot else 0,
            entries=len(loaded.entries),
            bugs=sorted(self.bugs),
        )
        self.rt.serve("raft", self._on_raft)
        self.rt.serve("client", self._on_client)
        self.rt.serve("status", self._on_status)
        self.rt.serve("raft-ping", self._on_ping)
        self.rt.spawn(self._ticker(), name="raft-ticker", essential=True)
        self.rt.spawn(self._run(), name="raft-loop", essential=True)

    # ------------------------------------------------------------ handlers
    async def _on_raft(self, src: str, msg: Message) -> Message:
        try:
            m = from_wire(msg)
        except BadMessage as e:
            return self._drop("raft-bad-message", src=src, error=str(e))
        if src not in self.peer_set:
            return self._drop("raft-not-a-peer", src=src, error="raft messages come from the cluster's nodes")
        if m.src != src or m.dst != self.rt.node_id:
            return self._drop("raft-misaddressed", src=src, error=f"claims {m.src} -> {m.dst}")
        self.events.put_nowait(("msg", m))
        return None

    async def _on_ping(self, src: str, msg: Message) -> Message:
        return None  # an answer at all says this process is alive (the leader probe)

    def _drop(self, why: str, **fields: Any) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1
        self.warn.warning(why, **fields)

    async def _on_status(self, src: str, msg: Message) -> Message:
        core = self._core()
        return {
            "node": self.rt.node_id,
            "incarnation": self.incarnation,
            **core.status(),
            "last_applied": self.kv.applied_index,
            "applied_digest": self.kv.applied_digest,
            "checkpoints": {str(k): v for k, v in sorted(self.kv.checkpoints.items())},
            "term_runs": [list(r) for r in self.kv.term_runs],
            "led_terms": list(self.led_terms),
            **self.storage.sizes(),
            "syncs": self.storage.syncs,
            "dropped": dict(sorted(self.dropped.items())),
        }

    async def _on_client(self, src: str, msg: Message) -> Message:
        core = self._core()
        problem = check_request(msg)
        if problem is not None:
            self._drop("raft-bad-request", src=src, error=problem)
            return self._reply({"status": "fail", "error": f"bad request: {problem}"})
        timeout_s = msg.get("timeout_s")
        wait_s = float(self.opts["apply_wait_s"])
        if timeout_s is not None:
            wait_s = min(float(timeout_s), wait_s)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        if is_read_only(msg) and self.opts["read_mode"] != "log":
            query = {k: msg[k] for k in ("f", "key", "value") if k in msg}
            if "stale-read" in self.bugs:
                if core.role is Role.LEADER:
                    return self._reply(self.kv.query(query))
                return self._reply({"status": "not-leader"})
            if "lease-read" in self.bugs and core.role is Role.LEADER and self.lease[0] == core.term \
                    and self.rt.now() < self.lease[1]:
                return self._reply(self.kv.query(query))
            self.events.put_nowait(("read", query, fut, self.rt.now()))
        else:
            cmd = {k: msg[k] for k in ("f", "key", "value", "client", "seq") if k in msg}
            # A command of scalars decodes back to an equal dict: the leader applies it as it is
            # (anything else is decoded from the entry, as every follower does).
            same = cmd if type(cmd.get("value")) in _SCALARS else None
            self.events.put_nowait(("propose", encode_command(cmd), fut, same))
        timer = loop.call_later(wait_s, _give_up, fut)
        try:
            result = await fut
        finally:
            timer.cancel()
        return self._reply(result)

    def _reply(self, result: dict[str, Any]) -> dict[str, Any]:
        core = self._core()
        return {**result, "node": self.rt.node_id, "term": core.term, "role": core.role.value, "leader": core.leader}

    def _core(self) -> RaftCore:
        assert self.core is not None, "node not started"
        return self.core

    # ------------------------------------------------------------ the loop
    async def _ticker(self) -> None:
        while True:
            await self.rt.sleep(float(self.opts["tick_s"]))
            self.events.put_nowait(("tick",))

    async def _run(self) -> None:
        core = self._core()
        while True:
            self._handle(await self.events.get())
            while not self.events.empty():
                self._handle(self.events.get_nowait())
            while core.has_ready():
                rd = core.ready()
                await self._process(rd)
            self._note_role()

    def _handle(self, ev: tuple[Any, ...]) -> None:
        core = self._core()
        match ev:
            case ("tick",):
                core.tick()
                self.warn.flush()
                self._maybe_probe_leader()
            case ("leader-gone", leader, term):
                # still silent since the probe began: a heartbeat meanwhile reset `elapsed`
                if core.term == term and core.elapsed >= int(self.opts["probe_leader_ticks"]):
                    core.leader_gone(leader)
            case ("msg", m):
                core.step(m)
            case ("propose", data, fut, cmd):
                placed = core.propose(data)
                if fut.done():
                    return
                if placed is None:
                    fut.set_result({"status": "not-leader"})
                else:
                    self.waiters[placed[0]] = (placed[1], fut, cmd)
            case ("read", query, fut, asked_at):
                if fut.done():
                    return
                if not core.read_index((query, fut, asked_at)):
                    fut.set_result({"status": "not-leader"})
                else:
                    self.open_reads.append(fut)
        if core.role is not Role.LEADER and self.open_reads:
            # A deposed leader forgets its pending reads: they certainly returned nothing.
            for f in self.open_reads:
                if not f.done():
                    f.set_result({"status": "not-leader"})
            self.open_reads = []

    def _maybe_probe_leader(self) -> None:
        core = self._core()
        after = int(self.opts["probe_leader_ticks"])
        if after <= 0 or self.probing or core.role is not Role.FOLLOWER or core.leader is None:
            return
        if core.elapsed < after:
            return
        self.probing = True
        self.rt.spawn(self._probe_leader(core.leader, core.term), name="raft-probe-leader")

    async def _probe_leader(self, leader: str, term: int) -> None:
        tick_s = float(self.opts["tick_s"])
        try:
            await self.rt.call(leader, "raft-ping", None, timeout=tick_s)
        except Unreachable:
            self.events.put_nowait(("leader-gone", leader, term))
        except RpcError:
            pass  # no answer in time: slow or cut off, not known to be gone; the election timeout decides
        finally:
            self.probing = False

    async def _process(self, rd: Ready) -> None:
        core = self._core()
        # A leader's AppendEntries may go out before its own write (dissertation §10.2.1): the
        # leader counts itself only once its entries are stable. Every answer waits for the sync.
        early = [m for m in rd.messages if isinstance(m, Append | InstallSnapshot)]
        for m in early:
            self.rt.send(m.dst, "raft", to_wire(m))
        # Committed entries already on our disk do not wait for this Ready's write: applying them
        # and answering their clients first takes one fsync off every request's latency.
        stable = core.log.stable
        done = 0
        if rd.snapshot is None:
            while done < len(rd.committed) and rd.committed[done].index <= stable:
                done += 1
            self._apply(rd.committed[:done])
            self._release_reads()
        await self.storage.save(rd.hard_state, rd.snapshot, rd.entries)
        for m in rd.messages:
            if not isinstance(m, Append | InstallSnapshot):
                self.rt.send(m.dst, "raft", to_wire(m))
        if rd.snapshot is not None:
            self.kv.restore(rd.snapshot.data)
            for index in [i for i in self.waiters if i <= rd.snapshot.index]:
                _, fut, _ = self.waiters.pop(index)
                if not fut.done():
                    fut.set_result({"status": "unknown", "error": "superseded by a snapshot"})
        self._apply(rd.committed[done:])
        lease_s = float(self.opts["lease_ratio"]) * int(self.opts["election_ticks"]) * float(self.opts["tick_s"])
        for (query, fut, asked_at), index in rd.reads:
            self.read_waiters.append((index, query, fut))
            if "lease-read" in self.bugs and core.role is Role.LEADER:
                # a majority acknowledged leadership after `asked_at`: no other leader for a while
                self.lease = (core.term, max(self.lease[1] if self.lease[0] == core.term else 0.0, asked_at + lease_s))
        self._release_reads()
        core.advance(rd)
        self._maybe_compact()

    def _apply(self, committed: list[Entry]) -> None:
        """Apply committed entries and answer the clients waiting for them."""
        for e in committed:
            if e.index <= self.kv.applied_index:
                continue
            waiter = self.waiters.pop(e.index, None)
            # our own proposal (same index and term: the same entry) is applied from its command
            cmd = waiter[2] if waiter is not None and waiter[0] == e.term else None
            result = self.kv.apply_entry(e.index, e.term, e.data, cmd)
            if waiter is not None and not waiter[1].done():
                term, fut, _ = waiter
                if term == e.term:
                    fut.set_result(result or {"status": "ok", "value": None})
                else:
                    fut.set_result({"status": "dropped", "error": "overwritten by another leader"})

    def _release_reads(self) -> None:
        keep = []
        for index, query, fut in self.read_waiters:
            if index <= self.kv.applied_index:
                if not fut.done():
                    fut.set_result(self.kv.query(query))
            else:
                keep.append((index, query, fut))
        self.read_waiters = keep
        self.open_reads = [f for f in self.open_reads if not f.done()]

    def _maybe_compact(self) -> None:
        """Snapshot once `snapshot_every` entries were applied since the last one AND the log grew
        by `snapshot_log_ratio` times the last snapshot's size (so a large state is not rewritten
        every few hundred entries); the file work runs in the background, off the loop."""
        core = self._core()
        every = int(self.opts["snapshot_every"])
        if self.compacting or every <= 0 or core.applied - core.log.snapshot_index < every:
            return
        grown = self.storage.log_bytes() - self.log_bytes_at_snapshot
        if grown < float(self.opts["snapshot_log_ratio"]) * self.storage.snapshot_bytes:
            return
        assert self.kv.applied_index == core.applied, (self.kv.applied_index, core.applied)
        snap = core.compact(core.applied, self.kv.snapshot())
        self.compacting = True
        self.rt.spawn(self._compact(snap), name="raft-compact", essential=True)

    async def _compact(self, snap: Snapshot) -> None:
        try:
            await self.storage.compact(snap)
        finally:
            self.compacting = False
            self.log_bytes_at_snapshot = self.storage.log_bytes()
        self.rt.log.debug("raft-snapshot", index=snap.index, bytes=len(snap.data))

    def _note_role(self) -> None:
        core = self._core()
        now = (core.term, core.role, core.leader)
        if now != self._last_role:
            self._last_role = now
            if core.role is Role.LEADER and (not self.led_terms or self.led_terms[-1] != core.term):
                self.led_terms = [*self.led_terms[-63:], core.term]
            self.rt.log.info("raft-role", term=core.term, role=core.role.value, leader=core.leader)


def _give_up(fut: asyncio.Future[dict[str, Any]]) -> None:
    """No answer within the wait: the request may still take effect."""
    if not fut.done():
        fut.set_result({"status": "unknown", "error": "timeout"})


async def start_node(rt: Runtime, config: NodeConfig) -> None:
    """NodeMain: load the durable state, register handlers, start the loop."""
    RaftNode(rt, config).start()
