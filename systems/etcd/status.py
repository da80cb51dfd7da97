"""etcd's status view: each member's own account of its Raft state (base.status explains views).

etcd's members speak none of the runtime's RPCs: the harness asks each one
through etcd's own API (its maintenance status, and the Raft node's status
in /debug/vars; workloads/etcd_client.member_status) and hands the answers
here, one dict per member: {"id", "leader", "term", "state", "raft_leader",
"index", "applied", "applied_term", "revision", "version", "errors"}, ids
in hex as etcd prints them.

Rules: one row per node: its Raft state, its current term, the member it
follows (by node name when that member answered, else by etcd's id), its
Raft log index, applied index, lag (how far its applied index trails the
highest index any answering member reports), its store's revision, its
version, and any errors (alarms) it reports. A node that did not answer is
shown unreachable with the reason. Notes name the leader of the highest
term, members that follow another leader or none, a cluster where fewer
than a majority answer, and every silent node. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.status import BAD, DIM, GOOD, WARN, Cell, NodeReply, Table, row, silent_note, unreachable_row

METHOD = "etcd status (maintenance API and /debug/vars)"
"""Not a runtime RPC: what the harness asks each member through etcd's own API (see the module docstring)."""
REQUEST: Any = None

COLUMNS = ("node", "state", "term", "follows", "raft index", "applied", "lag", "revision", "version", "errors")
STATE = {"StateLeader": ("leader", GOOD), "StateFollower": ("follower", ""), "StateCandidate": ("candidate", WARN),
         "StatePreCandidate": ("pre-candidate", WARN)}


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def tables(replies: Mapping[str, NodeReply]) -> list[Table]:
    answered = {n: r.reply for n, r in replies.items() if r.ok and isinstance(r.reply, Mapping)}
    names = {str(st["id"]): n for n, st in answered.items() if st.get("id")}
    top = max((i for st in answered.values() if (i := _int(st.get("index"))) is not None), default=0)
    rows = []
    for node in sorted(replies):
        st = answered.get(node)
        if st is None:
            rows.append(unreachable_row(replies[node], len(COLUMNS)))
            continue
        state, tone = STATE.get(str(st.get("state", "")), (str(st.get("state") or "?"), DIM))
        follows = _leader(st)
        applied = _int(st.get("applied"))
        lag = top - applied if applied is not None else None
        errors = [str(e) for e in st.get("errors") or []]
        rows.append(row(
            node,
            Cell(state, tone),
            str(st.get("term", st.get("applied_term", "?"))),
            Cell(names.get(follows, follows) if follows else "none", "" if follows else WARN),
            str(st.get("index", "?")),
            str(applied if applied is not None else "?"),
            Cell(str(lag) if lag is not None else "?", GOOD if lag == 0 else WARN),
            Cell(str(st.get("revision", "?")), DIM),
            Cell(str(st.get("version", "?")), DIM),
            Cell("; ".join(errors) or "-", BAD if errors else DIM),
        ))
    return [Table("etcd: each member's own account", COLUMNS, tuple(rows), tuple(_notes(replies, answered, names)))]


def _leader(st: Mapping[str, Any]) -> str | None:
    """The member this one follows in its current term (the Raft node's view, else the status API's)."""
    lead = st.get("raft_leader") if "raft_leader" in st else st.get("leader")
    return str(lead) if lead else None


def _notes(replies: Mapping[str, NodeReply], answered: Mapping[str, Mapping[str, Any]],
           names: Mapping[str, str]) -> list[Cell]:
    notes = []
    leaders = sorted(((_int(st.get("term")) or 0, n) for n, st in answered.items() if st.get("state") == "StateLeader"),
                     reverse=True)
    if leaders:
        term, leader = leaders[0]
        notes.append(Cell(f"leader {leader} in term {term}", GOOD))
        for old_term, stale in leaders[1:]:
            notes.append(Cell(f"{stale} still believes it leads term {old_term}", WARN))
        for n, st in sorted(answered.items()):
            follows = _leader(st)
            if n != leader and follows and names.get(follows) != leader:
                notes.append(Cell(f"{n} follows {names.get(follows, follows)}, not {leader}", WARN))
    else:
        notes.append(Cell("no leader among the members that answered", BAD))
    majority = len(replies) // 2 + 1
    if len(answered) < majority:
        notes.append(Cell(f"only {len(answered)} of {len(replies)} members answer: no majority can commit", BAD))
    notes += silent_note({n: r for n, r in replies.items() if n not in answered})
    return notes
