"""The Raft system's status view: leader, term, commit and applied index per node, and lag.

Rules: one row per node from its own `status` reply (role, term, whom it
believes leads, commit index, applied index, last log index, snapshot
index, log records); `lag` is how far the node's applied index trails the
highest commit index any answering node reports. A node that did not answer
is shown unreachable with the reason. Notes name the leader of the highest
term, any node that still believes it leads an older term, and a cluster
where fewer than a majority answer. Pure (base.status explains views).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.status import BAD, DIM, GOOD, WARN, Cell, NodeReply, Table, row, silent_note, unreachable_row

METHOD = "status"
REQUEST: Any = None

COLUMNS = ("node", "role", "term", "leader", "commit", "applied", "last log", "lag", "snapshot", "log records")
ROLE_TONE = {"leader": GOOD, "follower": "", "candidate": WARN, "pre-candidate": WARN}


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def tables(replies: Mapping[str, NodeReply]) -> list[Table]:
    answered = {n: r.reply for n, r in replies.items() if r.ok and isinstance(r.reply, Mapping)}
    commits = [c for st in answered.values() if (c := _int(st.get("commit_index"))) is not None]
    top_commit = max(commits, default=0)
    rows = []
    for node in sorted(replies):
        st = answered.get(node)
        if st is None:
            rows.append(unreachable_row(replies[node], len(COLUMNS)))
            continue
        role = str(st.get("role", "?"))
        applied = _int(st.get("last_applied"))
        lag = top_commit - applied if applied is not None else None
        rows.append(row(
            node,
            Cell(role, ROLE_TONE.get(role, "")),
            str(st.get("term", "?")),
            Cell(str(st.get("leader") or "none"), "" if st.get("leader") else WARN),
            str(st.get("commit_index", "?")),
            str(applied if applied is not None else "?"),
            str(st.get("last_index", "?")),
            Cell(str(lag) if lag is not None else "?", GOOD if lag == 0 else WARN),
            Cell(str(st.get("snapshot_index", 0)), DIM),
            Cell(str(st.get("log_records", "?")), DIM),
        ))
    return [Table("raft: each node's own account", COLUMNS, tuple(rows), tuple(_notes(replies, answered)))]


def _notes(replies: Mapping[str, NodeReply], answered: Mapping[str, Mapping[str, Any]]) -> list[Cell]:
    notes = []
    leaders = sorted(((_int(st.get("term")) or 0, n) for n, st in answered.items() if st.get("role") == "leader"),
                     reverse=True)
    if leaders:
        term, leader = leaders[0]
        notes.append(Cell(f"leader {leader} in term {term}", GOOD))
        for old_term, stale in leaders[1:]:
            notes.append(Cell(f"{stale} still believes it leads term {old_term}", WARN))
    else:
        notes.append(Cell("no leader among the nodes that answered", BAD))
    majority = len(replies) // 2 + 1
    if len(answered) < majority:
        notes.append(Cell(f"only {len(answered)} of {len(replies)} nodes answer: no majority can commit", BAD))
    notes += silent_note({n: r for n, r in replies.items() if n not in answered})
    return notes
