"""The master: namespace, chunk versions, leases, replica health (GFS §2.6, §3.1, §4).

RPCs it serves (requests in messages.py, checked at the edge, edge.py: a
malformed one is counted, logged (throttled) as `dfs-bad-request` and
answered with a definite "bad-request" error; one from a sender that may not
send it, e.g. a heartbeat not from the chunkserver it names, likewise as
`dfs-forbidden`, "forbidden"):

- master.create {path, creator}, master.delete {path}, master.rename {src, dst}:
  checked against the namespace, applied, appended to the operation log and
  answered only once the log is synced (§2.6.3). A create retried by the same
  creator after it landed answers ok. Delete hides the file under a trash key;
  `gc_delay_s` later the hidden file is purged and its chunks become orphans
  that chunkservers are told to delete (§4.4).
- master.ls {prefix}, master.stat {path}: the namespace, and a file's chunks
  with their versions and current replicas.
- master.chunk {path, index, create}: a chunk's handle, version and current
  replicas; with `create`, the next chunk of the file is allocated (logged
  and synced before any replica is made, so a handle is never reused) and
  its empty replicas are placed (placement.py).
- master.lease {handle, suspect}: the primary and members of the chunk's
  lease, granting one if none is held (§3.1): every current replica is told
  a new version (cs.bump), logged as issued first so that no number is
  handed out twice; if one does not confirm, the others move to a
  higher version at once, so a replica that might hold the new version but
  is left out can never pass for current; once all members confirmed, the
  master logs the version (synced). Then the primary gets the lease
  (cs.grant), starting after the longest member's data. No lease is granted
  with fewer than `min_replicas` members (default 2): an acknowledged write
  is never on one disk only. "busy" and "no-replicas" (definite) tell the
  client to ask again.
- master.heartbeat: a chunkserver's full replica list; the answer lists
  replicas to delete (orphans; stale ones, on the condition they are still
  older, except readmissible ones while the chunk is short of its goal;
  corrupt ones once the chunk has its goal elsewhere, or at once when
  every live chunkserver holds the chunk, so a good copy can be cloned onto
  the same node: placement.may_delete_bad) and the leases extended.
  master.report_corrupt marks a replica bad at once.
- master.fsck: under-replicated, stale, corrupt and lost chunks.

Background: a chunkserver not heard from for `dead_after_s` is dead: its
replicas are forgotten and leases it takes part in are no longer extended.
Re-replication (placement.py's order, at most `max_clones` at a time, one
clone per chunkserver): a chunk's lease is first left to run out (no new
lease is granted on a chunk waiting for a clone), then its
current replicas move to a new version (so a late mutation of the old lease
cannot land after the copy), then a new replica copies a current one. A
readmissible stale replica (replicas.py: it missed only bumps that carried
no writes) is moved up with the current ones in that step, and in a lease
round, instead of being deleted and copied again.
A restarted master grants no lease and clones nothing for a grace period
(one lease, and long enough to hear every chunkserver).

Planted bugs: `no-version` (every reported replica counts as current),
`lease-overlap` (a client's complaint about the primary ends its lease at once).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, TypeVar

from systems.dfs import messages as m
from systems.dfs.edge import NODE, Edge
from systems.dfs.leases import Lease, LeaseTable
from systems.dfs.loops import every
from systems.dfs.namespace import Namespace
from systems.dfs.oplog import OpLog
from systems.dfs.placement import Need, clone_plan, may_delete_bad, order, place_new
from systems.dfs.replicas import Held, ReplicaMap, Standing
from systems.runtime.api import Message, RemoteError, RpcError, Runtime

T = TypeVar("T")
EVENTS = 400


def refuse(code: str, why: str, *, definite: bool = True) -> RemoteError:
    return RemoteError(why, code=code, definite=definite)


@dataclass
class MasterOptions:
    goal: int
    min_replicas: int
    chunk_size: int
    lease_s: float
    heartbeat_s: float
    dead_after_s: float
    rpc_timeout_s: float
    gc_delay_s: float
    checkpoint_every: int
    max_clones: int
    rereplicate_s: float

    @classmethod
    def of(cls, o: dict[str, Any]) -> MasterOptions:
        return cls(
            goal=int(o["goal"]), min_replicas=int(o["min_replicas"]), chunk_size=int(o["chunk_size"]),
            lease_s=float(o["lease_s"]),
            heartbeat_s=float(o["heartbeat_s"]), dead_after_s=float(o["dead_after_s"]),
            rpc_timeout_s=float(o["rpc_timeout_s"]), gc_delay_s=float(o["gc_delay_s"]),
            checkpoint_every=int(o["checkpoint_every"]), max_clones=int(o["max_clones"]),
            rereplicate_s=float(o["rereplicate_s"]),
        )


class Master:
    def __init__(self, rt: Runtime, opts: MasterOptions, bugs: frozenset[str], nodes: list[str],
                 edge: Edge | None = None) -> None:
        self.rt = rt
        self.edge = edge or Edge(rt, nodes, rt.node_id)
        self.o = opts
        self.bugs = bugs
        self.nodes = sorted(nodes)
        self.log = OpLog(rt.disk)
        self.ns = Namespace()
        self.replicas = ReplicaMap(ignore_versions="no-version" in bugs)
        self.leases = LeaseTable(opts.lease_s, overlap_bug="lease-overlap" in bugs)
        self.heard: dict[str, float] = {}
        self.incarnations: dict[str, str] = {}
        self.changes: dict[str, tuple[str, int]] = {}
        """node -> (incarnation, changes) of the newest thing it told us: older heartbeats are ignored."""
        self.alive: set[str] = set()
        self.trashed_at: dict[str, float] = {}
        self.granting: set[int] = set()
        self.cloning: set[int] = set()
        self.clone_wanted: set[int] = set()
        self.busy: set[str] = set()
        self.waited_on: dict[int, float] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS)
        self.incarnation = f"{rt.rng.getrandbits(32):08x}"
        self._checkpointing = False
        self.started_at = 0.0

    # ------------------------------------------------------------ start
    def start(self) -> None:
        loaded = self.log.load()
        self.ns = loaded.ns
        now = self.rt.now()
        self.started_at = now
        self.leases.grace_until = now + max(self.o.lease_s, self.o.dead_after_s) + self.o.heartbeat_s
        self.trashed_at = dict.fromkeys(self.ns.trash, now)
        if loaded.cut is not None:
            self.rt.log.warning("dfs-log-torn-tail", **loaded.cut)
        self.rt.log.info("dfs-master-start", incarnation=self.incarnation, files=len(self.ns.files),
                         chunks=len(self.ns.versions), replayed=loaded.replayed, seq=loaded.seq,
                         torn_tail=loaded.torn_tail, bugs=sorted(self.bugs))
        self.event("master-start", records=loaded.replayed)
        handlers = {
            "master.create": self._on_create, "master.delete": self._on_delete, "master.rename": self._on_rename,
            "master.ls": self._on_ls, "master.stat": self._on_stat, "master.chunk": self._on_chunk,
            "master.lease": self._on_lease, "master.heartbeat": self._on_heartbeat,
            "master.report_corrupt": self._on_report_corrupt, "master.fsck": self._on_fsck,
        }
        for method, handler in handlers.items():
            self.rt.serve(method, handler)
        rt = self.rt
        rt.spawn(every(rt, self.o.heartbeat_s, "monitor", self.monitor), name="dfs-monitor")
        rt.spawn(every(rt, self.o.rereplicate_s, "rereplicate", self.rereplicate), name="dfs-rereplicate")
        gc_s = max(self.o.gc_delay_s / 4, self.o.heartbeat_s)
        rt.spawn(every(rt, gc_s, "gc", self.collect_garbage), name="dfs-gc")

    def parse(self, kind: type[T], src: str, msg: Message, *, sender: str = "anyone") -> T:
        return self.edge.parse(kind, src, msg, sender=sender)

    def event(self, kind: str, **fields: Any) -> None:
        self.events.append({"t": self.rt.now(), "kind": kind, **fields})

    # ------------------------------------------------------------ the log
    async def commit(self, rec: list[Any]) -> None:
        """Check, apply, log and sync one record (the caller answers only after this returns)."""
        err = self.ns.check(rec)
        if err is not None:
            raise refuse(err.code, str(err))
        self.log.append(rec)  # first: a disk that refuses it (EIO, ENOSPC) leaves the namespace as it was
        self.ns.apply(rec)
        await self.log.sync()
        if self.log.records_since_checkpoint >= self.o.checkpoint_every and not self._checkpointing:
            self._checkpointing = True
            self.rt.spawn(self._checkpoint(), name="dfs-checkpoint")

    async def _checkpoint(self) -> None:
        try:
            await self.log.checkpoint(self.ns)
            self.rt.log.info("dfs-checkpoint", seq=self.log.seq, files=len(self.ns.files))
        finally:
            self._checkpointing = False

    # ------------------------------------------------------------ namespace
    async def _on_create(self, src: str, msg: Message) -> Message:
        req = self.parse(m.CreateReq, src, msg)
        meta = self.ns.files.get(req.path)
        if meta is not None and req.creator and meta.creator == req.creator:
            return {"ok": True, "again": True}
        await self.commit(["create", req.path, req.creator])
        return {"ok": True}

    async def _on_delete(self, src: str, msg: Message) -> Message:
        req = self.parse(m.PathReq, src, msg)
        key = f"t{self.log.seq + 1}"
        await self.commit(["delete", req.path, key])
        self.trashed_at[key] = self.rt.now()
        for h in self.ns.trash[key].chunks:
            self.leases.revoke(h, self.rt.now())
        self.event("delete", path=req.path, trash=key)
        return {"ok": True}

    async def _on_rename(self, src: str, msg: Message) -> Message:
        req = self.parse(m.RenameReq, src, msg)
        await self.commit(["rename", req.src, req.dst])
        return {"ok": True}

    async def _on_ls(self, src: str, msg: Message) -> Message:
        req = self.parse(m.ListReq, src, msg)
        return {"files": self.ns.ls(req.prefix)}

    async def _on_stat(self, src: str, msg: Message) -> Message:
        req = self.parse(m.PathReq, src, msg)
        meta = self.ns.files.get(req.path)
        if meta is None:
            raise refuse("not-found", f"{req.path} does not exist")
        return {"path": req.path, "chunk_size": self.o.chunk_size,
                "chunks": [self.chunk_info(h) for h in meta.chunks]}

    def chunk_info(self, handle: int) -> dict[str, Any]:
        version = self.ns.versions[handle]
        return {"handle": handle, "version": version, "replicas": self.replicas.current(handle, version, self.alive)}

    async def _on_chunk(self, src: str, msg: Message) -> Message:
        req = self.parse(m.ChunkReq, src, msg)
        meta = self.ns.files.get(req.path)
        if meta is None:
            raise refuse("not-found", f"{req.path} does not exist")
        if req.index < len(meta.chunks):
            handle = meta.chunks[req.index]
            info = self.chunk_info(handle)
            if not info["replicas"] and self.ns.versions[handle] == 1 and self.rt.now() >= self.leases.grace_until:
                await self._place_empty(handle)  # never leased, so certainly empty: make it anew
                info = self.chunk_info(handle)
            return {**info, "chunk_size": self.o.chunk_size}
        if not req.create or req.index > len(meta.chunks):
            raise refuse("no-chunk", f"{req.path} has {len(meta.chunks)} chunks")
        handle = self.ns.next_handle
        await self.commit(["chunk", req.path, req.index, handle])
        await self._place_empty(handle)
        return {**self.chunk_info(handle), "chunk_size": self.o.chunk_size}

    async def _place_empty(self, handle: int) -> None:
        targets = place_new(self.replicas.load(self.alive), self.o.goal, self.rt.rng)
        answers = await asyncio.gather(*(self._ask(n, "cs.create", {"handle": handle, "version": 1})
                                          for n in targets))
        for n, a in zip(targets, answers, strict=True):
            if isinstance(a, dict):
                self.replicas.add(handle, n, Held(1, 0))

    async def _ask(self, node: str, method: str, msg: dict[str, Any], timeout: float | None = None) -> Any:
        """The node's answer, or the RpcError it raised (never raises)."""
        try:
            answer = await self.rt.call(node, method, msg, timeout=timeout or self.o.rpc_timeout_s)
        except RpcError as e:
            return e
        if isinstance(answer, dict):
            self.newer(node, answer.get("incarnation"), answer.get("changes"))
        return answer

    def newer(self, node: str, incarnation: Any, changes: Any) -> bool:
        """Note what a chunkserver's message says of its state; False when it is older than what we know."""
        if not isinstance(incarnation, str) or not isinstance(changes, int):
            return True
        known = self.changes.get(node)
        if known is not None and known[0] == incarnation and changes < known[1]:
            return False
        self.changes[node] = (incarnation, changes)
        return True

    # ------------------------------------------------------------ leases
    async def _on_lease(self, src: str, msg: Message) -> Message:
        req = self.parse(m.LeaseReq, src, msg)
        now = self.rt.now()
        if req.handle not in self.ns.versions:
            raise refuse("no-chunk", f"no chunk {req.handle}")
        lease = self.leases.current(req.handle, now)
        if req.handle in self.granting or req.handle in self.cloning or req.handle in self.clone_wanted:
            self.waited_on[req.handle] = now
            raise refuse("busy", f"chunk {req.handle} is being granted or cloned; ask again")
        if not self.leases.may_grant(req.handle, now, suspect=req.suspect):
            if lease is not None:
                return self.lease_info(lease)
            self.waited_on[req.handle] = now
            raise refuse("busy", "the master is in its grace period; ask again")
        self.granting.add(req.handle)
        try:
            lease = await self.grant(req.handle, req.suspect)
        finally:
            self.granting.discard(req.handle)
        return self.lease_info(lease)

    def lease_info(self, lease: Lease) -> dict[str, Any]:
        return {"handle": lease.handle, "primary": lease.primary, "members": list(lease.members),
                "version": lease.version, "expires_in_s": lease.expires_at - self.rt.now()}

    async def new_version(self, handle: int, members: list[str], *, lease_min: int = 0
                          ) -> tuple[int, list[str], int]:
        """Move the chunk to a new version on `members`; (version, members that confirmed, max length).

        The replicas move first and the master's record last (GFS §4.5: a master that dies in between
        finds replicas ahead of it and takes their version), so the master never records a version no
        replica holds. A member that does not confirm may still hold the new version: the others then
        move on to a higher one at once, leaving it behind. Each version is logged as issued (synced)
        before any replica hears it, so a bump whose answers were all lost is never reused for other
        replicas once its holder is forgotten (dead, or unheard after a master restart). The version is
        logged as leased only for a lease round (`lease_min`) that kept at least `lease_min` members:
        a replica left behind by any other bump holds every acknowledged write (namespace `leased`)."""
        for _ in range(3):
            version = max(self.ns.next_version(handle), self.replicas.highest(handle) + 1)
            await self.commit(["issue", handle, version])
            answers = await asyncio.gather(*(self._ask(n, "cs.bump", {"handle": handle, "version": version})
                                              for n in members))
            confirmed, longest = [], 0
            for n, a in zip(members, answers, strict=True):
                if isinstance(a, dict) and isinstance(a.get("length"), int):
                    confirmed.append(n)
                    longest = max(longest, a["length"])
                    self.replicas.set_version(handle, n, version, a["length"])
            if confirmed and len(confirmed) == len(members):
                leased = lease_min and len(confirmed) >= lease_min
                await self.commit(["version", handle, version] if leased else ["version", handle, version, "no-lease"])
                return version, confirmed, longest
            members = confirmed
            if not members:
                break
        raise refuse("busy", f"no replica of chunk {handle} took a new version; ask again")

    def usable(self, handle: int, version: int) -> list[str]:
        """Current replicas, and while the chunk is short of its goal readmissible stale ones (sorted)."""
        current = self.replicas.current(handle, version, self.alive)
        short = self.goal() - len(current)
        if short <= 0:
            return current
        spare = self.replicas.readmissible(handle, version, self.ns.leased.get(handle, version), self.alive)
        return sorted(current + spare[:short])

    async def grant(self, handle: int, suspect: str | None) -> Lease:
        members = self.usable(handle, self.ns.versions[handle])
        if len(members) < self.min_replicas():
            self.waited_on[handle] = self.rt.now()
            raise refuse("no-replicas", f"chunk {handle} has {len(members)} current replica(s) on live chunkservers, "
                                        f"fewer than the {self.min_replicas()} a write needs")
        version, members, longest = await self.new_version(handle, members, lease_min=self.min_replicas())
        if len(members) < self.min_replicas():
            raise refuse("no-replicas", f"only {len(members)} replica(s) of chunk {handle} took the new version")
        choices = [n for n in members if n != suspect] or members
        previous = next((le.primary for le in reversed(self.leases.history) if le.handle == handle), None)
        primary = previous if previous in choices else self.rt.rng.choice(choices)
        req = {"handle": handle, "version": version, "members": members, "lease_s": self.o.lease_s,
               "start_offset": longest}
        answer = await self._ask(primary, "cs.grant", req)
        now = self.rt.now()
        if isinstance(answer, RpcError):
            if not answer.definite:
                self.leases.in_doubt(handle, primary, tuple(members), version, now)
            raise refuse("busy", f"{primary} did not take the lease ({answer.code}); ask again")
        lease = self.leases.granted(handle, primary, tuple(members), version, now)
        self.event("lease", handle=handle, primary=primary, version=version, members=members)
        return lease

    # ------------------------------------------------------------ chunkservers
    async def _on_heartbeat(self, src: str, msg: Message) -> Message:
        hb = self.parse(m.Heartbeat, src, msg, sender=NODE)
        now = self.rt.now()
        node = hb.node
        if node not in self.nodes:
            raise refuse("bad-request", f"{node} is not a node of this cluster")
        if node not in self.alive or self.incarnations.get(node) != hb.incarnation:
            self.event("chunkserver-up", node=node, replicas=len(hb.chunks))
        self.heard[node] = now
        self.alive.add(node)
        self.incarnations[node] = hb.incarnation
        extended = [h for h in hb.extend if self.leases.extend(h, node, now) is not None]
        if not self.newer(node, hb.incarnation, hb.changes):
            # sent before a change we already learned from a direct answer: its list is out of date
            return {"delete": [], "extended": extended, "lease_s": self.o.lease_s}
        held = {h: Held(v, n) for h, v, n in hb.chunks}
        self.replicas.report(node, held)
        for h in hb.damaged:
            if h in held and not self.replicas.is_bad(h, node):
                self.mark_bad(h, node)
        deletes: list[list[int]] = []
        for h, got in held.items():
            version = self.ns.versions.get(h)
            if version is None:
                deletes.append([h, 0])  # an orphan: no file (nor hidden file) holds it
                continue
            if h in self.granting or h in self.cloning:
                continue
            standing = self.replicas.standing(h, node, version)
            if standing is Standing.STALE and node not in self.usable(h, version):
                deletes.append([h, version])
                self.event("stale-replica", handle=h, node=node, version=got.version, current=version)
            elif standing is Standing.AHEAD:
                self.event("version-adopted", handle=h, node=node, version=got.version, was=version)
                await self.commit(["version", h, got.version, "no-lease"])  # no lease without the record
            version = self.ns.versions.get(h)
            if version is None:
                continue  # purged while this heartbeat waited on the log
            if self.replicas.is_bad(h, node) and may_delete_bad(
                    self.replicas.current(h, version, self.alive), self.goal(),
                    set(self.replicas.nodes(h)), self.alive, settled=now >= self.leases.grace_until):
                # only if still at most this version: a good copy cloned there since is newer
                deletes.append([h, max(version, got.version) + 1])
        return {"delete": deletes, "extended": extended, "lease_s": self.o.lease_s}

    def mark_bad(self, handle: int, node: str) -> None:
        self.replicas.mark_bad(handle, node)
        self.leases.revoke(handle, self.rt.now())
        self.event("corrupt-replica", handle=handle, node=node)

    async def _on_report_corrupt(self, src: str, msg: Message) -> Message:
        req = self.parse(m.CorruptReport, src, msg, sender=NODE)
        if req.handle in self.ns.versions and not self.replicas.is_bad(req.handle, req.node):
            self.mark_bad(req.handle, req.node)
        return {"ok": True}

    def goal(self) -> int:
        return min(self.o.goal, len(self.nodes))

    def min_replicas(self) -> int:
        """No lease (so no write) with fewer current replicas than this: one disk is not durable."""
        return max(1, min(self.o.min_replicas, self.goal()))

    async def monitor(self) -> None:
        now = self.rt.now()
        for node in sorted(self.alive):
            if now - self.heard.get(node, 0.0) > self.o.dead_after_s:
                self.alive.discard(node)
                self.replicas.drop_node(node)
                revoked = self.leases.revoke_member(node, now)
                self.event("chunkserver-dead", node=node, leases_revoked=revoked)
                self.rt.log.info("dfs-chunkserver-dead", node=node)

    # ------------------------------------------------------------ re-replication
    def needs(self) -> list[Need]:
        live = set(self.ns.live_chunks())
        now = self.rt.now()
        goal = min(self.goal(), len(self.alive))
        out = []
        for h, version in sorted(self.ns.versions.items()):
            missing = goal - self.replicas.count_current(h, version, self.alive)
            if missing > 0:
                waited = now - self.waited_on.get(h, -1e9) < 2 * self.o.lease_s
                out.append(Need(h, missing, h in live, waited))
        return order(out)

    async def rereplicate(self) -> None:
        now = self.rt.now()
        if now < self.leases.grace_until:
            return
        needs = self.needs()
        self.clone_wanted &= {n.handle for n in needs}
        load: dict[str, int] | None = None  # replicas per live node: the same all pass, until the master waits
        for need in needs:
            if len(self.cloning) >= self.o.max_clones:
                break
            h = need.handle
            if h in self.cloning or h in self.granting or h not in self.ns.versions:
                continue  # (a chunk may have been purged while an earlier step waited)
            version = self.ns.versions[h]
            members = self.usable(h, version)
            if not members:
                if version == 1 and need.live_file:
                    await self._place_empty(h)
                    load = None
                continue
            readmit = len(members) > len(self.replicas.current(h, version, self.alive))
            holders = set(self.replicas.nodes(h))
            if load is None:
                load = self.replicas.load(self.alive)
            plan = clone_plan(members, holders, load, self.busy, self.rt.rng)
            if plan is None and not readmit:
                self.clone_wanted.discard(h)  # nowhere to put a copy yet: do not hold up its writers
                continue
            if self.leases.current(h, now) is not None:
                self.leases.revoke(h, now)  # let it run out, grant no other, clone once it has
                self.clone_wanted.add(h)
                continue
            self.cloning.add(h)
            self.clone_wanted.discard(h)
            self.busy.update(plan or ())
            self.rt.spawn(self._clone(h, members, plan), name=f"dfs-clone-{h}")

    async def _clone(self, handle: int, members: list[str], plan: tuple[str, str] | None) -> None:
        """Move `members` (current and readmissible replicas) to a new version, then copy one to a new node."""
        try:
            before = set(self.replicas.current(handle, self.ns.versions.get(handle, 0), self.alive))
            try:
                version, confirmed, _ = await self.new_version(handle, members)
            except RemoteError:
                return
            readmitted = sorted(set(confirmed) - before)
            if readmitted:
                self.event("readmitted", handle=handle, nodes=readmitted, version=version)
            if plan is None:
                return
            source, target = plan
            held = self.replicas.held.get(handle, {}).get(source)
            if source not in confirmed or held is None:
                return
            started = self.rt.now()
            answer = await self._ask(target, "cs.clone", {"handle": handle, "version": version, "source": source,
                                                          "length": held.length},
                                     timeout=self.o.rpc_timeout_s * (2 + held.length // (1 << 20)))
            if isinstance(answer, dict) and answer.get("ok"):
                self.replicas.add(handle, target, Held(version, held.length))
                self.event("re-replicated", handle=handle, source=source, target=target, version=version,
                           bytes=held.length, seconds=round(self.rt.now() - started, 6))
            else:
                self.event("clone-failed", handle=handle, source=source, target=target, error=repr(answer)[:120])
        finally:
            self.cloning.discard(handle)
            self.busy.difference_update(plan or ())

    # ------------------------------------------------------------ garbage
    async def collect_garbage(self) -> None:
        now = self.rt.now()
        for key in sorted(self.ns.trash):
            if now - self.trashed_at.get(key, now) >= self.o.gc_delay_s and key in self.ns.trash:
                chunks = list(self.ns.trash[key].chunks)
                try:
                    await self.commit(["purge", key])
                except RemoteError:
                    continue
                self.trashed_at.pop(key, None)
                for h in chunks:
                    self.replicas.forget_chunk(h)
                self.event("purged", trash=key, chunks=len(chunks))

    # ------------------------------------------------------------ reports
    async def _on_fsck(self, src: str, msg: Message) -> Message:
        self.parse(m.FsckReq, src, msg)
        return self.fsck()

    def fsck(self) -> dict[str, Any]:
        live = set(self.ns.live_chunks())
        goal = self.goal()
        under, stale, corrupt, lost = [], [], [], []
        for h, version in sorted(self.ns.versions.items()):
            current = self.replicas.current(h, version, self.alive)
            if h in live and len(current) < goal:
                (lost if not current and version > 1 else under).append({"handle": h, "current": current})
            for n in self.replicas.stale(h, version):
                stale.append({"handle": h, "node": n})
            for n in sorted(self.replicas.bad.get(h, ())):
                corrupt.append({"handle": h, "node": n})
        healthy = not (under or stale or corrupt or lost) and self.rt.now() >= self.leases.grace_until
        return {"healthy": healthy, "files": len(self.ns.files), "chunks": len(live), "hidden": len(self.ns.trash),
                "under_replicated": under, "stale": stale, "corrupt": corrupt, "lost": lost,
                "alive": sorted(self.alive), "grace": self.rt.now() < self.leases.grace_until}

    def status(self) -> dict[str, Any]:
        now = self.rt.now()
        chunks = {}
        for h, version in sorted(self.ns.versions.items()):
            chunks[str(h)] = {
                "version": version, "file": self.ns.owner.get(h),
                "replicas": {n: [x.version, x.length] for n, x in sorted(self.replicas.held.get(h, {}).items())},
                "current": self.replicas.current(h, version, self.alive),
                "bad": sorted(self.replicas.bad.get(h, ())),
            }
        return {
            "incarnation": self.incarnation,
            "goal": self.goal(),
            "files": {p: list(meta.chunks) for p, meta in sorted(self.ns.files.items())},
            "hidden": {k: {"path": t.path, "chunks": list(t.chunks)} for k, t in sorted(self.ns.trash.items())},
            "chunks": chunks,
            "alive": sorted(self.alive),
            "grace": now < self.leases.grace_until,
            "leases": self.leases.report(now),
            "events": [{**{k: v for k, v in e.items() if k != "t"}, "ago_s": round(now - e["t"], 6)}
                       for e in self.events],
            "log": {**self.log.sizes(), "seq": self.log.seq, "syncs": self.log.syncs,
                    "checkpoints": self.log.checkpoints},
            "fsck": self.fsck(),
        }
