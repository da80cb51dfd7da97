"""Workloads for the Raft KV (systems/raft).

Rules this module keeps:

- `register` (default; Jepsen's linearizable register): read / write / cas
  of small integers over a few independent keys; checked per key with the
  cas-register model (a cas that failed on a mismatch is checked as the
  model's read-only "cas-failed" op rather than dropped).
- `append`: append unique integers to a few keys and read whole lists;
  every op is checked as a one-op transaction by the Elle list-append
  checker, which for single-key single-op transactions means per-key
  linearizability (strict serializability of one-object ops).
- `list-append`: transactions of 1-4 micro-ops (["append", k, v],
  ["r", k, null]) over a few keys, checked by Elle for strict serializability.
- Every workload sprinkles `status` ops (each client asks its own node) and
  ends with a `status` of every node, feeding checkers/raft_safety.py.
- The client goes to its assigned node first, on every op, and follows
  redirects to the leader (systems/raft/client.py), so every node keeps
  hearing from its clients (a deposed leader that still answers is heard).
  The outcome rules are the client library's: ok, fail only when certainly
  nothing happened, else info. A status or read that does not complete is
  `fail` (it has no effect).
- Ok completions carry `raft: {node, term, role}` of the node that answered.
  With the status ops they are the nodes' own account of who led which term
  when, which the report ties to the ops a checker rejects (`account`,
  workloads/raft_account.py).
"""

from __future__ import annotations

import html
import itertools
import random
from typing import Any

from base.history import Op, pairs
from base.spec import TestSpec
from systems.raft.client import RaftClient
from systems.runtime.api import RpcError, Runtime
from workloads.base import Checker, Client
from workloads.raft_account import account

__all__ = ["DEFAULT_WORKLOAD", "WORKLOADS", "account", "find_leader", "report_sections"]

STATUS_SHARE = 0.03
REGISTER_KEYS = 5
APPEND_KEYS = 5
TXN_KEYS = 8


class RaftWorkloadClient:
    def __init__(self, rt: Runtime, node: str, nodes: list[str], timeout_s: float) -> None:
        self.rt, self.node, self.timeout_s = rt, node, timeout_s
        self.kv = RaftClient(rt, nodes, home=node, attempt_timeout_s=min(1.0, timeout_s))

    async def invoke(self, op: Op) -> Op:
        f = op["f"]
        if f == "status":
            try:
                st = await self.rt.call(self.node, "status", None, timeout=self.timeout_s)
            except RpcError as e:
                return {**op, "type": "fail", "error": e.code}
            return {**op, "type": "ok", "value": st}
        self.kv.leader = self.node  # every op starts at the assigned node
        if f == "read":
            out = await self.kv.request("get", op.get("key"), None, timeout_s=self.timeout_s)
        elif f == "write":
            out = await self.kv.request("put", op.get("key"), op.get("value"), timeout_s=self.timeout_s)
        elif f in ("cas", "append", "txn"):
            out = await self.kv.request(f, op.get("key"), op.get("value"), timeout_s=self.timeout_s)
        else:
            return {**op, "type": "fail", "error": f"unknown f {f!r}"}
        if out.type == "ok":
            done: Op = {**op, "type": "ok"}
            if f in ("read", "txn"):
                done["value"] = out.value
            if out.leader is not None:
                done["raft"] = {"node": out.leader, "term": out.term, "role": "leader" if out.claim else "other"}
            return done
        return {**op, "type": out.type, "error": out.error or out.type}


class _Base:
    name = "base"

    def __init__(self, spec: TestSpec) -> None:
        self.spec = spec
        self.nodes = spec.nodes
        self.timeout_s = spec.op_timeout_s
        self._values = itertools.count(1)

    def client(self, rt: Runtime, node: str) -> Client:
        return RaftWorkloadClient(rt, node, self.nodes, self.timeout_s)

    def _status(self, rng: random.Random) -> Op | None:
        return {"f": "status", "value": None} if rng.random() < STATUS_SHARE else None

    def _statuses(self, nodes: list[str]) -> list[tuple[str, Op]]:
        return [(n, {"f": "status", "value": None, "final": True}) for n in nodes]


class RegisterWorkload(_Base):
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
        return {"linearizable": check_registers, "raft-safety": check_safety}


class AppendWorkload(_Base):
    name = "append"

    def __init__(self, spec: TestSpec, *, keys: int = APPEND_KEYS) -> None:
        super().__init__(spec)
        self.keys = [f"l{i}" for i in range(keys)]

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        if (op := self._status(rng)) is not None:
            return op
        key = rng.choice(self.keys)
        if rng.random() < 0.5:
            return {"f": "read", "key": key, "value": None}
        return {"f": "append", "key": key, "value": next(self._values)}

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        reads = [(nodes[0], {"f": "read", "key": k, "value": None, "final": True}) for k in self.keys]
        return reads + self._statuses(nodes)

    def checkers(self) -> dict[str, Checker]:
        return {"append": check_appends, "raft-safety": check_safety}


class ListAppendWorkload(_Base):
    name = "list-append"

    def __init__(self, spec: TestSpec, *, keys: int = TXN_KEYS) -> None:
        super().__init__(spec)
        self.keys = [f"t{i}" for i in range(keys)]

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        if (op := self._status(rng)) is not None:
            return op
        mops = []
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(self.keys)
            if rng.random() < 0.5:
                mops.append(["r", key, None])
            else:
                mops.append(["append", key, next(self._values)])
        return {"f": "txn", "value": mops}

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        read_all = {"f": "txn", "value": [["r", k, None] for k in self.keys], "final": True}
        return [(nodes[0], read_all), *self._statuses(nodes)]

    def checkers(self) -> dict[str, Checker]:
        return {"elle": check_txns, "raft-safety": check_safety}


# ---------------------------------------------------------------- checkers


def check_safety(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    from checkers import raft_safety

    return raft_safety.check(history, test)


def check_registers(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    try:
        from checkers.linearizable import check_history
    except ImportError:
        return {"valid": "unknown", "summary": "linearizability checker not installed"}
    return dict(check_history(cas_mismatches_as_reads(history), "cas-register"))


def cas_mismatches_as_reads(history: list[Op]) -> list[Op]:
    """Register ops only; a cas that failed with "cas-mismatch" becomes the model's read-only
    "cas-failed" op (the state machine saw a value other than the expected one, at a point
    inside the op's interval), so the checker can use what it tells instead of dropping it."""
    mismatched = set()
    for p in pairs(history):
        c = p.complete
        if p.invoke.get("f") == "cas" and c is not None and c["type"] == "fail" and c.get("error") == "cas-mismatch":
            mismatched.add(p.invoke.get("index"))
            mismatched.add(c.get("index"))
    out = []
    for op in history:
        if op.get("f") not in ("read", "write", "cas"):
            continue
        if op.get("index") in mismatched:
            op = {**op, "f": "cas-failed", "type": "ok" if op["type"] == "fail" else op["type"]}
        out.append(op)
    return out


def as_single_op_txns(history: list[Op]) -> list[Op]:
    """append/read ops as one-micro-op transactions (what Elle's list-append reads)."""
    out = []
    for op in history:
        f = op.get("f")
        if f not in ("append", "read"):
            continue
        if f == "append":
            value = [["append", op.get("key"), op.get("value")]]
        else:
            read = op.get("value") if op["type"] == "ok" else None
            value = [["r", op.get("key"), read]]
        out.append({**op, "f": "txn", "value": value})
    return out


def check_appends(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    try:
        from checkers.elle import check_list_append
    except ImportError:
        return {"valid": "unknown", "summary": "Elle checker not installed"}
    result = dict(check_list_append(as_single_op_txns(history), consistency="strict-serializable"))
    result["summary"] = "per-key linearizability of append/read (as one-op txns): " + str(result.get("summary", ""))
    return result


def check_txns(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    try:
        from checkers.elle import check_list_append
    except ImportError:
        return {"valid": "unknown", "summary": "Elle checker not installed"}
    return dict(check_list_append([op for op in history if op.get("f") == "txn"], consistency="strict-serializable"))


# ---------------------------------------------------------------- harness hooks


async def find_leader(rt: Runtime, nodes: list[str]) -> str | None:
    """The node that reports itself leader with the highest term, or None."""
    best: tuple[int, str] | None = None
    for n in nodes:
        try:
            st = await rt.call(n, "status", None, timeout=0.5)
        except RpcError:
            continue
        is_leader = isinstance(st, dict) and st.get("role") == "leader" and isinstance(st.get("term"), int)
        if is_leader and (best is None or st["term"] > best[0]):
            best = (st["term"], n)
    return best[1] if best else None


def report_sections(history: list[Op], results: dict[str, Any]) -> list[tuple[str, str]]:
    """A table of the nodes' final status, and who led which term."""
    final: dict[str, dict[str, Any]] = {}
    for op in history:
        if op.get("f") == "status" and op.get("type") == "ok" and isinstance(op.get("value"), dict):
            final[str(op["value"].get("node"))] = op["value"]
    cols = [
        "term", "role", "leader", "commit_index", "last_applied", "applied_digest",
        "snapshot_index", "log_records", "log_bytes", "syncs",
    ]
    rows = "".join(
        "<tr><td>" + html.escape(n) + "</td>"
        + "".join(f"<td>{html.escape(str(s.get(c, '')))}</td>" for c in cols) + "</tr>"
        for n, s in sorted(final.items())
    )
    table = (
        "<table><tr><th>node</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
        + rows + "</table>"
    )
    safety = (results.get("checkers") or results).get("raft-safety") or {}
    leaders = safety.get("leaders_by_term") or {}
    items = "".join(
        f"<li>term {html.escape(str(t))}: {html.escape(', '.join(map(str, ns)))}"
        + (" <b>(two leaders!)</b>" if len(ns) > 1 else "") + "</li>"
        for t, ns in sorted(leaders.items(), key=lambda kv: int(kv[0]))
    )
    return [
        ("Raft nodes (last status)", table if final else "<p>no status reports</p>"),
        ("Raft leaders by term", f"<ul>{items}</ul>" if items else "<p>no leader claims recorded</p>"),
    ]


WORKLOADS = {"register": RegisterWorkload, "append": AppendWorkload, "list-append": ListAppendWorkload}
DEFAULT_WORKLOAD = "register"
