"""Workloads for etcd (systems/etcd): register, list-append and lock, over etcd's native gRPC API.

Rules this module keeps:

- Each client talks to the member its slot is assigned (no failover: a
  client whose member is cut off sees its ops fail or time out, as Jepsen's
  etcd clients do), through workloads/etcd_client.py and its outcome rules
  (ok; fail only when certainly nothing happened; else info).
- `register` (default): read / write / compare-and-set of small integers
  over a few keys. cas is one etcd transaction: if the key's value equals
  the expected one, put the new one, else read the key; a cas that failed
  its comparison is `fail` with error "cas-mismatch" and the value it read,
  which the checker uses as a read at that point (the failure branch ran
  atomically there). Reads use the `read_mode` option: `linearizable`
  (etcd's default) or `serializable` (the member's own state, possibly
  stale). Checked for linearizability per key (cas-register model).
- `list-append`: transactions of 1-4 micro-ops (["append", k, v], ["r", k,
  null]) over a few keys. A read-only transaction is one etcd Txn of
  ranges (served per `read_mode`). A transaction that appends reads every
  key it touches in one linearizable Txn, then commits one Txn guarded on
  each key's mod revision being what it read (optimistic concurrency, as
  Jepsen's etcd append workload); a failed guard retries within the op's
  time, and a transaction that never committed is `fail` (so is one whose
  read failed: every commit it sent was refused by its guard). Lists are stored
  as JSON arrays. Checked by the Elle-like checker for strict
  serializability.
- `lock`: every client loops acquire -> hold -> release on one lock, with
  the `concurrency` package's protocol (a lease kept alive, a key under the
  lock's prefix, the lowest create revision holds it). `hold` is the
  critical section: up to `lock_hold_s`, cut short the moment the client's
  session is lost (its keepalive deadline passed), as a careful client
  would; the bug `lock-no-keepalive` neither renews the lease nor looks.
  Checked by checkers/lock.py: no moment at which two clients both
  believed they held the lock.
- Every workload sprinkles `status` ops (a member's own account from its
  status API: id, leader, Raft term and index, revision) and ends with a
  status of every member that also carries the hash of its store; the
  `etcd-status` checker judges them and the report draws them.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import random
from typing import Any

from base.history import Op, pairs
from base.spec import TestSpec
from base.verdict import Checker
from systems.etcd import BUGS, DEFAULT_OPTIONS, check_options
from systems.runtime.api import Runtime
from workloads.base import Client
from workloads.etcd_client import (
    Address,
    Connections,
    KVService,
    LockSession,
    decode,
    encode,
    member_hash,
    member_status,
    mod_revision_is,
    outcome,
)

STATUS_SHARE = 0.1
"""The share of ops that ask a client's member for its status (the members' own account, sampled)."""
LOCK_STATUS_SHARE = 0.3
"""The lock workload's is higher: its clients issue few ops (they wait for the lock)."""
REGISTER_KEYS = 5
TXN_KEYS = 8
LOCK_PREFIX = "picluster/lock"
WRITES = {"write", "cas", "txn", "acquire", "release"}


def _addr(rt: Runtime, node: str) -> Address:
    addrs = getattr(rt, "addrs", None)
    if not isinstance(addrs, dict) or node not in addrs:
        raise RuntimeError(f"the harness endpoint does not know {node}'s address")
    host, port = addrs[node]
    return str(host), int(port)


def _writes(op: Op) -> bool:
    if op["f"] == "txn":
        return any(m[0] != "r" for m in op.get("value") or [])
    return op["f"] in WRITES


class _Workload:
    """What every etcd workload shares: options, connections, status sampling."""

    name = "base"

    def __init__(self, spec: TestSpec) -> None:
        check_options(dict(spec.options))
        self.spec = spec
        self.options: dict[str, Any] = {**DEFAULT_OPTIONS, **spec.options}
        self.timeout_s = spec.op_timeout_s
        self.serializable = self.options["read_mode"] == "serializable"
        self.bugs = set(spec.bugs) & set(BUGS)
        self.connections = Connections()

    def client(self, rt: Runtime, node: str) -> Client:
        return EtcdClient(self, rt, node)

    status_share = STATUS_SHARE

    def _status(self, rng: random.Random) -> Op | None:
        return {"f": "status", "value": None} if rng.random() < self.status_share else None

    def _statuses(self, nodes: list[str]) -> list[tuple[str, Op]]:
        return [(n, {"f": "status", "value": None, "final": True}) for n in nodes]

    async def aclose(self) -> None:
        await self.connections.aclose()


class EtcdClient:
    """One client process's view of one member; dispatches each op by its `f`."""

    def __init__(self, workload: _Workload, rt: Runtime, node: str) -> None:
        self.workload, self.rt, self.node = workload, rt, node
        self.addr = _addr(rt, node)
        self.timeout_s = workload.timeout_s

    async def invoke(self, op: Op) -> Op:
        handler = getattr(self, "op_" + str(op["f"]).replace("-", "_"), None)
        if handler is None:
            return {**op, "type": "fail", "error": f"unknown f {op['f']!r}"}
        try:
            client = await self.workload.connections.get(self.addr)
            return dict(await handler(client, op))
        except Exception as e:
            kind, error = outcome(e, writes=_writes(op))
            return {**op, "type": kind, "error": error}

    # -- every workload -----------------------------------------------------------------------------
    async def op_status(self, client: Any, op: Op) -> Op:
        value = {"member": self.node, **await member_status(client, self.addr, self.timeout_s)}
        if op.get("final"):
            value["hash"] = await member_hash(client, self.timeout_s)
        return {**op, "type": "ok", "value": value}

    # -- register -----------------------------------------------------------------------------------
    async def op_read(self, client: Any, op: Op) -> Op:
        resp = await client.kv.get(op["key"], serializable=self.workload.serializable, timeout=self.timeout_s)
        return {**op, "type": "ok", "value": decode(resp.kvs[0].value) if resp.kvs else None}

    async def op_write(self, client: Any, op: Op) -> Op:
        await client.kv.put(op["key"], encode(op["value"]), timeout=self.timeout_s)
        return {**op, "type": "ok"}

    async def op_cas(self, client: Any, op: Op) -> Op:
        key, (expected, new) = op["key"], op["value"]
        resp = await client.kv.txn(
            [KVService.txn_compare_value(key, encode(expected))],
            [KVService.txn_op_put(key, encode(new))],
            [KVService.txn_op_get(key)],
            timeout=self.timeout_s,
        )
        if resp.succeeded:
            return {**op, "type": "ok"}
        kvs = resp.responses[0].response_range.kvs
        return {**op, "type": "fail", "error": "cas-mismatch", "read": decode(kvs[0].value) if kvs else None}

    # -- list-append --------------------------------------------------------------------------------
    async def op_txn(self, client: Any, op: Op) -> Op:
        mops = [list(m) for m in op["value"]]
        keys = sorted({m[1] for m in mops})
        if all(m[0] == "r" for m in mops):
            lists, _ = await self._read_lists(client, keys, serializable=self.workload.serializable)
            return {**op, "type": "ok", "value": _fill_reads(mops, lists)}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        attempts = 0
        while loop.time() < deadline:
            try:
                lists, revisions = await self._read_lists(client, keys, serializable=False)
            except Exception as e:  # every commit sent so far was refused by its guard: nothing happened
                return {**op, "type": "fail", "error": outcome(e, writes=False)[1]}
            attempts += 1
            done = _fill_reads(mops, lists)
            after = _apply_appends(mops, lists)
            guards = [mod_revision_is(k, revisions[k]) for k in keys]
            puts = [KVService.txn_op_put(k, encode(after[k])) for k in keys if after[k] != lists[k]]
            resp = await client.kv.txn(guards, puts, [], timeout=max(deadline - loop.time(), 0.05))
            if resp.succeeded:
                return {**op, "type": "ok", "value": done}
        return {**op, "type": "fail", "error": f"guard failed {attempts} time(s): keys changed under the txn"}

    async def _read_lists(self, client: Any, keys: list[str], *, serializable: bool
                          ) -> tuple[dict[str, Any], dict[str, int]]:
        ranges = [KVService.txn_op_get(k, serializable=serializable) for k in keys]
        resp = await client.kv.txn([], ranges, [], timeout=self.timeout_s)
        lists: dict[str, Any] = {}
        revisions: dict[str, int] = {}
        for k, r in zip(keys, resp.responses, strict=True):
            kvs = r.response_range.kvs
            lists[k] = decode(kvs[0].value) if kvs else None
            revisions[k] = int(kvs[0].mod_revision) if kvs else 0
        return lists, revisions

    # -- lock ---------------------------------------------------------------------------------------
    async def op_acquire(self, client: Any, op: Op) -> Op:
        w = self.workload
        assert isinstance(w, LockWorkload)
        session = LockSession(client, LOCK_PREFIX, int(w.options["lock_ttl_s"]),
                              keepalive="lock-no-keepalive" not in w.bugs)
        try:
            await session.acquire(float(w.options["lock_wait_s"]), self.timeout_s)
        except Exception as e:
            gone = await session.abandon(self.timeout_s)
            kind = "fail" if gone else "info"
            return {**op, "type": kind, "error": f"{outcome(e, writes=False)[1]}"
                    + ("" if gone else "; its key may linger until its lease expires")}
        w.holding(op, session)
        value = {"lease": f"{session.lease:x}", "key": session.key, "rev": session.revision,
                 "ttl": session.granted_ttl_s}
        return {**op, "type": "ok", "value": value}

    async def op_hold(self, client: Any, op: Op) -> Op:
        w = self.workload
        assert isinstance(w, LockWorkload)
        session = w.session(op)
        if session is None:
            return {**op, "type": "fail", "error": "not holding the lock"}
        loop = asyncio.get_running_loop()
        planned = float((op.get("value") or {}).get("hold_s", 0.0))
        start = loop.time()
        end = start + planned
        while loop.time() < end and not session.lost():
            wake = min(end, session.deadline) if session.keepalive else end
            await asyncio.sleep(max(wake - loop.time(), 0.0) + 1e-4)
        lost = session.lost()
        w.held(op)
        value = {"hold_s": planned, "held_s": round(loop.time() - start, 4), "lost": lost}
        return {**op, "type": "ok", "value": value}

    async def op_release(self, client: Any, op: Op) -> Op:
        w = self.workload
        assert isinstance(w, LockWorkload)
        session = w.released(op)
        if session is None:
            return {**op, "type": "fail", "error": "not holding the lock"}
        lapsed = session.lapsed()
        try:
            await session.release(self.timeout_s)
        except Exception as e:
            kind, error = outcome(e, writes=True)
            return {**op, "type": kind, "error": error, "value": {"lease_lapsed": lapsed}}
        return {**op, "type": "ok", "value": {"lease_lapsed": lapsed}}


def _fill_reads(mops: list[list[Any]], lists: dict[str, Any]) -> list[list[Any]]:
    """The micro-ops with every read filled in: the key's list as read, plus this txn's earlier appends."""
    seen = {k: (list(v) if isinstance(v, list) else v) for k, v in lists.items()}
    out = []
    for f, k, v in mops:
        if f == "r":
            out.append([f, k, list(seen[k]) if isinstance(seen[k], list) else seen[k]])
        else:
            seen[k] = [*(seen[k] or []), v]
            out.append([f, k, v])
    return out


def _apply_appends(mops: list[list[Any]], lists: dict[str, Any]) -> dict[str, Any]:
    after = {k: (list(v) if isinstance(v, list) else v) for k, v in lists.items()}
    for f, k, v in mops:
        if f == "append":
            after[k] = [*(after[k] or []), v]
    return after


# ---------------------------------------------------------------- the workloads


class RegisterWorkload(_Workload):
    name = "register"

    def __init__(self, spec: TestSpec, *, keys: int = REGISTER_KEYS) -> None:
        super().__init__(spec)
        self.keys = [f"r{i}" for i in range(keys)]

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        if (op := self._status(rng)) is not None:
            return op
        key = rng.choice(self.keys)
        x = rng.random()
        if x < 0.5:
            return {"f": "read", "key": key, "value": None}
        if x < 0.75:
            return {"f": "write", "key": key, "value": rng.randrange(5)}
        return {"f": "cas", "key": key, "value": [rng.randrange(5), rng.randrange(5)]}

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        reads = [(nodes[0], {"f": "read", "key": k, "value": None, "final": True}) for k in self.keys]
        return reads + self._statuses(nodes)

    def checkers(self) -> dict[str, Checker]:
        return {"linearizable": check_registers, "etcd-status": check_status}


class ListAppendWorkload(_Workload):
    name = "list-append"

    def __init__(self, spec: TestSpec, *, keys: int = TXN_KEYS) -> None:
        super().__init__(spec)
        self.keys = [f"t{i}" for i in range(keys)]
        self._values = itertools.count(1)

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        if (op := self._status(rng)) is not None:
            return op
        mops: list[list[Any]] = []
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(self.keys)
            mops.append(["r", key, None] if rng.random() < 0.5 else ["append", key, next(self._values)])
        return {"f": "txn", "value": mops}

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        read_all = {"f": "txn", "value": [["r", k, None] for k in self.keys], "final": True}
        return [(nodes[0], read_all), *self._statuses(nodes)]

    def checkers(self) -> dict[str, Checker]:
        return {"elle": check_txns, "etcd-status": check_status}


class LockWorkload(_Workload):
    """acquire -> hold -> release, per client process; the steps are kept here, by process."""

    name = "lock"
    status_share = LOCK_STATUS_SHARE

    def __init__(self, spec: TestSpec) -> None:
        super().__init__(spec)
        self.steps: dict[int, str] = {}
        self.sessions: dict[int, LockSession] = {}

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        step = self.steps.get(process, "acquire")
        if step == "acquire" and (op := self._status(rng)) is not None:
            return op
        if step == "hold":
            hold_s = round(rng.uniform(0.0, float(self.options["lock_hold_s"])), 3)
            return {"f": "hold", "value": {"hold_s": hold_s}, "process": process}
        return {"f": step, "value": None, "process": process}

    def holding(self, op: Op, session: LockSession) -> None:
        self.sessions[op["process"]] = session
        self.steps[op["process"]] = "hold"

    def session(self, op: Op) -> LockSession | None:
        return self.sessions.get(op["process"])

    def held(self, op: Op) -> None:
        self.steps[op["process"]] = "release"

    def released(self, op: Op) -> LockSession | None:
        self.steps[op["process"]] = "acquire"
        return self.sessions.pop(op["process"], None)

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        return self._statuses(nodes)

    def checkers(self) -> dict[str, Checker]:
        return {"lock": check_lock, "etcd-status": check_status}

    async def aclose(self) -> None:
        for session in self.sessions.values():
            session.stop_keepalive()
        self.sessions.clear()
        await super().aclose()


WORKLOADS = {"register": RegisterWorkload, "list-append": ListAppendWorkload, "lock": LockWorkload}
DEFAULT_WORKLOAD = "register"


# ---------------------------------------------------------------- checkers


def failed_cas_as_reads(history: list[Op]) -> list[Op]:
    """Register ops only; a cas that failed its comparison becomes the read its failure branch made
    (atomically, inside the cas's interval), so the checker uses what it saw."""
    reads: dict[int, Any] = {}
    for p in pairs(history):
        c = p.complete
        if p.invoke.get("f") == "cas" and c is not None and c["type"] == "fail" and c.get("error") == "cas-mismatch":
            reads[p.invoke["index"]] = c.get("read")
            reads[c["index"]] = c.get("read")
    out = []
    for op in history:
        if op.get("f") not in ("read", "write", "cas"):
            continue
        if op.get("index") in reads:
            read = reads[op["index"]]
            op = {**op, "f": "read", "value": None if op["type"] == "invoke" else read,
                  "type": "invoke" if op["type"] == "invoke" else "ok"}
        out.append(op)
    return out


def check_registers(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    from checkers.linearizable import check_history

    result = dict(check_history(failed_cas_as_reads(history), "cas-register"))
    mode = (test.get("options") or {}).get("read_mode", DEFAULT_OPTIONS["read_mode"])
    result["read_mode"] = mode
    return result


def check_txns(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    from checkers.elle import check_list_append

    return dict(check_list_append([op for op in history if op.get("f") == "txn"], consistency="strict-serializable"))


def check_lock(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    from checkers import lock

    return lock.check(history, test)


def check_status(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    from checkers import etcd_status

    return etcd_status.check(history, test)


# ---------------------------------------------------------------- harness hooks


async def find_leader(rt: Runtime, nodes: list[str]) -> str | None:
    """The member every reachable member's status names as leader in the highest term, or None."""
    connections = Connections()
    best: tuple[int, str] | None = None
    try:
        statuses = {}
        for n in nodes:
            try:
                statuses[n] = await member_status(await connections.get(_addr(rt, n)), _addr(rt, n), 0.5)
            except Exception:
                continue
        for n, st in statuses.items():
            term = st.get("term", st["applied_term"])
            if st["leader"] == st["id"] and (best is None or term > best[0]):
                best = (term, n)
    finally:
        await connections.aclose()
    return best[1] if best else None


def report_sections(history: list[Op], results: dict[str, Any]) -> list[tuple[str, str]]:
    """etcd's own account: who led which term, as the members said, and each member's last status."""
    from checkers import etcd_status

    reports = etcd_status.reports(history)
    names = etcd_status.member_names(reports)
    terms: dict[int, dict[str, Any]] = {}
    for r in reports:
        if not isinstance(r.get("term"), int):
            continue
        leader = names.get(r["raft_leader"], r["raft_leader"]) if r.get("raft_leader") else None
        t = terms.setdefault(r["term"], {"leaders": set(), "first": r["time_s"], "last": r["time_s"], "by": set()})
        if leader:
            t["leaders"].add(leader)
            t["by"].add(r["member"])
        t["first"], t["last"] = min(t["first"], r["time_s"]), max(t["last"], r["time_s"])
    rows = "".join(
        f"<tr><td>{term}</td><td>{html.escape(', '.join(sorted(t['leaders'])) or 'none known')}"
        + (" <b>(two leaders!)</b>" if len(t["leaders"]) > 1 else "")
        + f"</td><td>{t['first']:.2f}</td><td>{t['last']:.2f}</td>"
        f"<td>{html.escape(', '.join(sorted(t['by'])))}</td></tr>"
        for term, t in sorted(terms.items())
    )
    by_term = ("<table><tr><th>term</th><th>leader</th><th>first seen (s)</th><th>last seen (s)</th>"
               f"<th>reported by</th></tr>{rows}</table>") if rows else "<p>no status reports</p>"
    last: dict[str, dict[str, Any]] = {}
    for r in reports:
        last[r["member"]] = r
    cols = ["id", "state", "term", "leader", "applied_term", "index", "applied", "revision", "hash"]
    member_rows = "".join(
        f"<tr><td>{html.escape(m)}</td>"
        + "".join(f"<td>{html.escape(_cell(c, r, names))}</td>" for c in cols) + "</tr>"
        for m, r in sorted(last.items())
    )
    members = (f"<table><tr><th>member</th>{''.join(f'<th>{c}</th>' for c in cols)}</tr>{member_rows}</table>"
               if member_rows else "<p>no status reports</p>")
    return [("etcd: leaders by term (each member's Raft node, sampled)", by_term + _timeline_svg(reports, names)),
            ("etcd: each member's last status", members)]


PALETTE = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#57606a")


def _timeline_svg(reports: list[dict[str, Any]], names: dict[str, str]) -> str:
    """One row per member, one dot per status sample, coloured by the leader it named (term on hover)."""
    if not reports:
        return ""
    members = sorted({r["member"] for r in reports})
    leads = (r.get("raft_leader", r.get("leader")) for r in reports)
    leaders = sorted({names.get(x, x) for x in leads if x})
    colour = {leader: PALETTE[i % len(PALETTE)] for i, leader in enumerate(leaders)}
    end = max(r["time_s"] for r in reports) or 1.0
    left, width, row = 60, 900, 18
    parts = [f'<text x="2" y="{i * row + 13}" font-size="11">{html.escape(m)}</text>' for i, m in enumerate(members)]
    for r in reports:
        lead = r.get("raft_leader", r.get("leader"))
        leader = names.get(lead, lead) if lead else None
        x = left + r["time_s"] / end * (width - left - 10)
        y = members.index(r["member"]) * row + 9
        fill = colour.get(leader, "#d0d7de") if leader else "#ffffff"
        parts.append(f'<circle cx="{x:.1f}" cy="{y}" r="4" fill="{fill}" stroke="#57606a" stroke-width="0.5">'
                     f"<title>{html.escape(r['member'])} at {r['time_s']:.2f} s: term {r.get('term', '?')}, leader "
                     f"{html.escape(leader or 'none')}</title></circle>")
    legend = " ".join(f'<span style="color:{c}">&#9679;</span> {html.escape(n)}' for n, c in colour.items())
    return (f'<p class="muted">Each member\'s samples over time, coloured by the leader it named (white: none); '
            f'hover for the term. {legend}</p><svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{len(members) * row + 4}">{"".join(parts)}</svg>')


def _cell(column: str, report: dict[str, Any], names: dict[str, str]) -> str:
    if column == "leader":
        leader = report.get("raft_leader", report.get("leader"))
        return names.get(leader, leader) if leader else "none"
    if column == "state":
        return str(report.get("state", "")).removeprefix("State")
    if column == "hash":
        h = report.get("hash")
        return f"{h['hash']:x} @ rev {h['revision']}" if isinstance(h, dict) else ""
    return str(report.get(column, ""))
