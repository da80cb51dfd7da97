"""Raft's safety properties, judged from what the nodes themselves reported in the history.

Evidence comes from two kinds of ops: `status` ops (f "status", value = a
node's status: node, incarnation, term, role, led_terms (every term this
incarnation led), last_applied, applied_digest, checkpoints) and ok client
completions carrying `raft: {node, term, role}` (the node that answered,
and whether it was the leader of that term as it answered).

Rules checked (Raft paper, Figure 3):

- Election Safety: at most one node claims leadership of any term.
- State Machine Safety: no two reports give different applied digests for
  the same index (a digest chains every applied entry, so equal index and
  different digest means two nodes applied different commands somewhere at
  or below that index).
- State Machine Safety, by terms: a report's `term_runs` ([first index,
  term] per run of applied entries of one term) give the term of every
  index it applied since its first run; two reports covering one index
  with different terms applied different commands there (Log Matching:
  equal index and term mean equal command). Unlike digests, this compares
  nodes at every index, not only at equal checkpoints.
- Terms never decrease: for two status reports from one node incarnation,
  if the first completed before the second was invoked, the second's term is
  not lower. Across a node's restarts the same must hold, since currentTerm
  is persistent (reported separately as `term_lost_in_restart`).

Verdict: False on any violation; "unknown" when no status report was seen;
True otherwise.
"""

from __future__ import annotations

import bisect
from typing import Any

from base.history import Op, pairs

MAX_EVIDENCE = 10


def _reports(history: list[Op]) -> list[dict[str, Any]]:
    """Status reports with their invoke and completion positions."""
    out = []
    for p in pairs(history):
        c = p.complete
        if p.invoke.get("f") != "status" or c is None or c.get("type") != "ok" or not isinstance(c.get("value"), dict):
            continue
        v = c["value"]
        if not isinstance(v.get("term"), int):
            continue
        out.append(
            {
                "node": v.get("node", c.get("node")),
                "incarnation": v.get("incarnation"),
                "term": v["term"],
                "role": v.get("role"),
                "last_applied": v.get("last_applied"),
                "applied_digest": v.get("applied_digest"),
                "checkpoints": v.get("checkpoints") or {},
                "led_terms": [t for t in v.get("led_terms") or [] if isinstance(t, int)],
                "term_runs": _runs(v.get("term_runs"), v.get("last_applied")),
                "invoke_index": p.invoke.get("index"),
                "complete_index": c.get("index"),
            }
        )
    return out


def _runs(raw: Any, last_applied: Any) -> list[tuple[int, int]]:
    """Well-formed, strictly increasing [first index, term] runs ending at or before last_applied."""
    if not isinstance(raw, list) or not isinstance(last_applied, int):
        return []
    out: list[tuple[int, int]] = []
    for r in raw:
        if not (isinstance(r, list | tuple) and len(r) == 2 and all(isinstance(x, int) for x in r)):
            return []
        if (out and r[0] <= out[-1][0]) or r[0] > last_applied:
            return []
        out.append((r[0], r[1]))
    return out


def _term_conflicts(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Indexes that two reports say were applied with different terms.

    Two step functions that differ somewhere differ at a run start of one of
    them, so checking every report at every run start seen is complete."""
    covering = [r for r in reports if r["term_runs"]]
    points = sorted({start for r in covering for start, _ in r["term_runs"]})
    seen: dict[int, tuple[int, dict[str, Any]]] = {}
    out: list[dict[str, Any]] = []
    flagged: set[int] = set()
    for r in covering:
        runs = r["term_runs"]
        starts = [s for s, _ in runs]
        lo = bisect.bisect_left(points, starts[0])
        hi = bisect.bisect_right(points, r["last_applied"])
        for index in points[lo:hi]:
            term = runs[bisect.bisect_right(starts, index) - 1][1]
            if index not in seen:
                seen[index] = (term, r)
            elif seen[index][0] != term and index not in flagged:
                flagged.add(index)
                first_term, first = seen[index]
                out.append(
                    {
                        "index": index,
                        "reports": [
                            {"node": first["node"], "op": first["complete_index"], "term": first_term},
                            {"node": r["node"], "op": r["complete_index"], "term": term},
                        ],
                    }
                )
    return sorted(out, key=lambda c: c["index"])


def _leader_claims(history: list[Op], reports: list[dict[str, Any]]) -> dict[int, dict[str, list[Any]]]:
    """term -> node -> indexes of the ops in which that node claimed to lead that term."""
    claims: dict[int, dict[str, list[Any]]] = {}
    for r in reports:
        terms = set(r["led_terms"])
        if r["role"] == "leader":
            terms.add(r["term"])
        for t in sorted(terms):
            claims.setdefault(t, {}).setdefault(r["node"], []).append(r["complete_index"])
    for op in history:
        meta = op.get("raft")
        if op.get("type") != "ok" or not isinstance(meta, dict):
            continue
        if meta.get("role") == "leader" and isinstance(meta.get("term"), int) and meta.get("node"):
            claims.setdefault(meta["term"], {}).setdefault(meta["node"], []).append(op.get("index"))
    return claims


def _digest_conflicts(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[int, tuple[str, dict[str, Any]]] = {}
    conflicts: list[dict[str, Any]] = []
    flagged: set[int] = set()
    for r in reports:
        points: list[tuple[int, str]] = []
        if isinstance(r["last_applied"], int) and r["applied_digest"]:
            points.append((r["last_applied"], r["applied_digest"]))
        for k, d in r["checkpoints"].items():
            try:
                points.append((int(k), d))
            except (TypeError, ValueError):
                continue
        for index, digest in points:
            if index == 0:
                continue
            if index not in seen:
                seen[index] = (digest, r)
            elif seen[index][0] != digest and index not in flagged:
                flagged.add(index)
                first = seen[index][1]
                conflicts.append(
                    {
                        "index": index,
                        "reports": [
                            {"node": first["node"], "op": first["complete_index"], "digest": seen[index][0]},
                            {"node": r["node"], "op": r["complete_index"], "digest": digest},
                        ],
                    }
                )
    return sorted(conflicts, key=lambda c: c["index"])


def _term_regressions(reports: list[dict[str, Any]], *, same_incarnation: bool) -> list[dict[str, Any]]:
    out = []
    by_node: dict[Any, list[dict[str, Any]]] = {}
    for r in reports:
        by_node.setdefault(r["node"], []).append(r)
    for node, rs in by_node.items():
        for b in rs:
            for a in rs:
                if (a["incarnation"] == b["incarnation"]) != same_incarnation:
                    continue
                if a["complete_index"] is None or b["invoke_index"] is None:
                    continue
                if a["complete_index"] < b["invoke_index"] and a["term"] > b["term"]:
                    out.append(
                        {
                            "node": node,
                            "earlier": {"op": a["complete_index"], "term": a["term"], "incarnation": a["incarnation"]},
                            "later": {"op": b["invoke_index"], "term": b["term"], "incarnation": b["incarnation"]},
                        }
                    )
                    break
    return out


def check(history: list[Op], test: dict[str, Any] | None = None) -> dict[str, Any]:
    """Judge Election Safety, State Machine Safety and term monotonicity from node reports."""
    reports = _reports(history)
    claims = _leader_claims(history, reports)
    two_leaders = [
        {"term": t, "leaders": {n: ops[:3] for n, ops in sorted(by_node.items())}}
        for t, by_node in sorted(claims.items())
        if len(by_node) > 1
    ]
    conflicts = _digest_conflicts(reports)
    term_conflicts = _term_conflicts(reports)
    regressions = _term_regressions(reports, same_incarnation=True)
    lost = _term_regressions(reports, same_incarnation=False)
    problems = []
    if two_leaders:
        problems.append(f"{len(two_leaders)} term(s) with two leaders (first: term {two_leaders[0]['term']})")
    if conflicts:
        problems.append(f"nodes applied different commands at or below index {conflicts[0]['index']}")
    if term_conflicts:
        problems.append(f"nodes applied entries of different terms at index {term_conflicts[0]['index']}")
    if regressions:
        problems.append(f"term went down within one run of node {regressions[0]['node']}")
    if lost:
        problems.append(f"node {lost[0]['node']} forgot its term across a restart")
    valid: bool | str
    if problems:
        valid, summary = False, "; ".join(problems)
    elif not reports:
        valid, summary = "unknown", "no node status reports in the history"
    else:
        valid = True
        summary = (
            f"{len(reports)} status reports, {len(claims)} terms with a leader: "
            "one leader per term, applied prefixes agree, terms never went down"
        )
    return {
        "valid": valid,
        "summary": summary,
        "leaders_by_term": {str(t): sorted(by_node) for t, by_node in sorted(claims.items())},
        "two_leaders": two_leaders[:MAX_EVIDENCE],
        "digest_conflicts": conflicts[:MAX_EVIDENCE],
        "term_conflicts": term_conflicts[:MAX_EVIDENCE],
        "term_regressions": regressions[:MAX_EVIDENCE],
        "term_lost_in_restart": lost[:MAX_EVIDENCE],
        "stats": {"status_reports": len(reports), "terms_with_leader": len(claims)},
    }
