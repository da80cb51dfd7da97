"""The Raft nodes' own account of an operation, read back from a history, for reports.

What the nodes reported during the run, and nothing else:

- every ok client completion carries `raft: {node, term, role}`: the node
  that answered, its term, and "leader" when it answered as the leader of
  that term (workloads/raft.py);
- `status` ops carry a node's own {node, term, role, ...} (each client asks
  its own node now and then, and every node is asked at the end).

Rules this module keeps:

- A leadership is dated by the first report of it: "n4 had led term 2 since
  5.1 s" means the first op that showed n4 leading term 2 completed at
  5.1 s (it may have led a little earlier, never later).
- `ServerAccount.describe(invoke, complete)` says who served an op and in
  what state: the node that answered (`raft.node`), else the node the
  client asked (the history's `node`); its term and role as it answered
  (or as it last reported before the op); and, when a newer term had a
  leader that was first reported before the op completed, that leader and
  since when. It returns (node, clause) so the harness can add the faults
  that node was under.
- Pure: a function of the history; times are seconds since the test began.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from base.history import Op, pairs

NS = 1e9


@dataclass(frozen=True, slots=True)
class Claim:
    """node led term, as first reported at time_s."""

    term: int
    node: str
    time_s: float


@dataclass(frozen=True, slots=True)
class Report:
    """A node's own state as one op showed it."""

    time_s: float
    node: str
    term: int
    role: str


class ServerAccount:
    """Who led which term since when, and what each node last said of itself, from one history."""

    def __init__(self, history: list[Op]) -> None:
        first: dict[int, Claim] = {}
        reports: dict[str, list[Report]] = {}
        for p in pairs(history):
            c = p.complete
            if c is None or c.get("type") != "ok" or not isinstance(c.get("time"), int):
                continue
            for node, term, role in _states(p.invoke, c):
                t = c["time"] / NS
                reports.setdefault(node, []).append(Report(t, node, term, role))
                if role == "leader" and (term not in first or t < first[term].time_s):
                    first[term] = Claim(term, node, t)
        self.claims = sorted(first.values(), key=lambda c: c.term)
        self.reports = {n: sorted(rs, key=lambda r: r.time_s) for n, rs in reports.items()}

    def leader_by(self, time_s: float) -> Claim | None:
        """The leader of the newest term first reported at or before time_s."""
        seen = [c for c in self.claims if c.time_s <= time_s]
        return max(seen, key=lambda c: c.term) if seen else None

    def last_report(self, node: str, time_s: float) -> Report | None:
        """What `node` last said of itself at or before time_s."""
        rs = self.reports.get(node) or []
        i = bisect.bisect_right([r.time_s for r in rs], time_s)
        return rs[i - 1] if i else None

    def describe(self, invoke: Op, complete: Op | None) -> tuple[str, str] | None:
        raft = complete.get("raft") if complete is not None else None
        end_s = (complete or invoke).get("time", 0) / NS
        if isinstance(raft, dict) and isinstance(raft.get("node"), str) and isinstance(raft.get("term"), int):
            node, term, role = raft["node"], raft["term"], raft.get("role")
            state = f"which led term {term}" if role == "leader" else f"which was in term {term} and not its leader"
            text = f"served by {node}, {state}"
        else:
            node = invoke.get("node")
            if not isinstance(node, str):
                return None
            last = self.last_report(node, invoke.get("time", 0) / NS)
            if last is None:
                return node, f"sent to {node} (no report of its state before this op)"
            term, role = last.term, last.role
            text = f"sent to {node}, which last reported term {term} as {role} at {last.time_s:.2f} s"
        newer = self.leader_by(end_s)
        if newer is not None and newer.term > term and newer.node != node:
            text += f", while {newer.node} had led term {newer.term} since {newer.time_s:.2f} s"
        return node, text


def _states(invoke: Op, complete: Op) -> list[tuple[str, int, str]]:
    """(node, term, role) reports one ok completion carries."""
    out = []
    raft = complete.get("raft")
    if isinstance(raft, dict) and isinstance(raft.get("node"), str) and isinstance(raft.get("term"), int):
        out.append((raft["node"], raft["term"], "leader" if raft.get("role") == "leader" else "other"))
    v = complete.get("value")
    if invoke.get("f") == "status" and isinstance(v, dict) and isinstance(v.get("term"), int):
        node = v.get("node", complete.get("node"))
        if isinstance(node, str):
            out.append((node, v["term"], str(v.get("role", "?"))))
    return out


def account(history: list[Op], test: dict[str, Any] | None = None) -> ServerAccount:
    """The workload hook the report calls (harness/explain.py): an object with describe(invoke, complete)."""
    return ServerAccount(history)
