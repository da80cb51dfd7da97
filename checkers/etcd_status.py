"""etcd's own account of itself, judged: what its members said in their status answers.

Input: `status` ops whose ok completions carry a member's status: from its
status API (member, id, leader, applied_term, index, applied, revision)
and from its Raft node (`term`, `raft_leader`, `state`: one consistent
snapshot of the node's current term and the leader of that term); the
final ones also `hash`: {revision, hash, compact_revision} of its
key-value store. A pure function of the history.

etcd's status API calls the term of the last *applied* entry its
`raftTerm`: a new leader that has not yet applied an entry of its own term
reports the old term, so (leader, raftTerm) pairs cannot judge elections.
The checks use the Raft node's own term instead.

Rules checked:

- One leader per term (Raft's Election Safety, as the members report it):
  no two reports name different leaders for the same Raft term (a leader
  names itself).
- Terms never go back: a member's Raft term (persistent in its WAL) in a
  report invoked after an earlier report of the same member completed is
  not lower, across restarts too.
- The stores agree: final reports of members at the same revision carry the
  same hash of the key-value store.

Verdict: False on any violation; "unknown" when no report carried the Raft
term (or none came at all); True otherwise. Leader ids are turned into
member names with the ids the members gave for themselves.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from base.history import Op, pairs

MAX_EVIDENCE = 10


def reports(history: list[Op]) -> list[dict[str, Any]]:
    """Every ok status report, with when it was asked (invoke) and answered (complete), in answer order."""
    out = []
    for p in pairs(history):
        c = p.complete
        if p.invoke.get("f") != "status" or c is None or c.get("type") != "ok" or not isinstance(c.get("value"), dict):
            continue
        v = c["value"]
        if not isinstance(v.get("applied_term", v.get("term")), int):
            continue
        out.append({
            **v,
            "member": str(v.get("member", c.get("node"))),
            "invoked": int(p.invoke["time"]),
            "completed": int(c["time"]),
            "time_s": round(int(c["time"]) / 1e9, 3),
            "final": bool(p.invoke.get("final")),
        })
    out.sort(key=lambda r: r["completed"])
    return out


def member_names(rs: list[dict[str, Any]]) -> dict[str, str]:
    """Member id -> name, from the ids the members reported for themselves."""
    return {str(r["id"]): r["member"] for r in rs if r.get("id")}


def check(history: list[Op], test: dict[str, Any] | None = None) -> dict[str, Any]:
    rs = reports(history)
    if not rs:
        return {"valid": "unknown", "summary": "no member answered a status request"}
    names = member_names(rs)
    raft = [r for r in rs if isinstance(r.get("term"), int)]
    leaders: dict[int, set[str]] = defaultdict(set)
    for r in raft:
        if r.get("raft_leader"):
            leaders[r["term"]].add(names.get(r["raft_leader"], r["raft_leader"]))
    two_leaders = [{"term": t, "leaders": sorted(ls)} for t, ls in sorted(leaders.items()) if len(ls) > 1]
    went_back = []
    by_member: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in raft:
        by_member[r["member"]].append(r)
    for member, mine in sorted(by_member.items()):
        for r in mine:
            before = [x for x in mine if x["completed"] < r["invoked"]]
            top = max(before, key=lambda x: x["term"], default=None)
            if top is not None and r["term"] < top["term"]:
                went_back.append({"member": member, "term": r["term"], "at_s": r["time_s"],
                                  "after_term": top["term"], "seen_at_s": top["time_s"]})
    by_revision: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in rs:
        h = r.get("hash")
        if r["final"] and isinstance(h, dict):
            by_revision[int(h["revision"])][f"{int(h['hash']):x}"].append(r["member"])
    diverged = [{"revision": rev, "hashes": {h: sorted(ms) for h, ms in hs.items()}}
                for rev, hs in sorted(by_revision.items()) if len(hs) > 1]
    compared = sum(1 for hs in by_revision.values() if sum(len(ms) for ms in hs.values()) > 1)
    terms = sorted(leaders)
    led = ", ".join(f"{t}:{'/'.join(sorted(leaders[t]))}" for t in terms[-8:])
    result: dict[str, Any] = {
        "reports": len(rs),
        "members": sorted({r["member"] for r in rs}),
        "leaders_by_term": {str(t): sorted(ls) for t, ls in sorted(leaders.items())},
        "two_leaders": two_leaders[:MAX_EVIDENCE],
        "term_went_back": went_back[:MAX_EVIDENCE],
        "stores_diverged": diverged[:MAX_EVIDENCE],
        "final_hashes": {str(rev): {h: sorted(ms) for h, ms in hs.items()} for rev, hs in sorted(by_revision.items())},
    }
    problems = []
    if two_leaders:
        t = two_leaders[0]
        problems.append(f"{len(two_leaders)} term(s) with two leaders (term {t['term']}: {', '.join(t['leaders'])})")
    if went_back:
        w = went_back[0]
        problems.append(f"a member's term went back ({w['member']}: {w['after_term']} then {w['term']})")
    if diverged:
        problems.append(f"members at revision {diverged[0]['revision']} hold different stores")
    if problems:
        return {"valid": False, "summary": "; ".join(problems), **result}
    if not raft:
        return {"valid": "unknown", **result,
                "summary": f"{len(rs)} status reports, none with the Raft node's own term: elections not judged"}
    hashes = (f"; final store hashes agree ({compared} revision(s) compared)" if compared
              else "; no two final reports at one revision to compare stores")
    summary = (f"{len(rs)} status reports from {len(result['members'])} members; one leader per term "
               f"(last terms {led or 'none known'}); terms never went back{hashes}")
    return {"valid": True, "summary": summary, **result}
