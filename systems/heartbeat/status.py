"""The heartbeat system's status view: each node's view of every other (base.status explains views).

Rules: one row per node as observer, one column per node; a cell is what
the observer thinks of that node (alive / suspect / dead, with phi, or how
long it has been dead), the diagonal is the observer itself with its
incarnation. A node that did not answer is shown unreachable with the
reason. Notes say, per node, who thinks it dead or suspect. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.status import BAD, DIM, GOOD, WARN, Cell, NodeReply, Table, row, silent_note, unreachable_row

METHOD = "view"
REQUEST: Any = None

TONE = {"alive": GOOD, "suspect": WARN, "dead": BAD}


def cell(peer: Mapping[str, Any] | None) -> Cell:
    """What an observer thinks of one peer."""
    if not isinstance(peer, Mapping):
        return Cell("?", DIM)
    status = str(peer.get("status", "?"))
    phi = peer.get("phi")
    if status == "dead":
        since = peer.get("since_s")
        return Cell(f"dead {since:.0f}s" if isinstance(since, int | float) else "dead", BAD)
    text = f"{status} φ{phi:.1f}" if isinstance(phi, int | float) else status
    return Cell(text, TONE.get(status, ""))


def tables(replies: Mapping[str, NodeReply]) -> list[Table]:
    nodes = sorted(set(replies) | {p for r in replies.values() if r.ok and isinstance(r.reply, Mapping)
                                   for p in r.reply.get("peers", {})})
    columns = ("observer", "incarnation", *nodes)
    rows = []
    verdicts: dict[str, dict[str, list[str]]] = {n: {"dead": [], "suspect": []} for n in nodes}
    for observer in nodes:
        r = replies.get(observer)
        if r is None or not r.ok or not isinstance(r.reply, Mapping):
            rows.append(unreachable_row(r or NodeReply(observer, error="not asked"), len(columns)))
            continue
        peers = r.reply.get("peers", {})
        cells = []
        for n in nodes:
            if n == observer:
                cells.append(Cell("self", DIM))
                continue
            c = cell(peers.get(n))
            cells.append(c)
            status = str(peers.get(n, {}).get("status", ""))
            if status in ("dead", "suspect"):
                verdicts[n][status].append(observer)
        rows.append(row(observer, str(r.reply.get("incarnation", "?")), *cells))
    notes = []
    for n in nodes:
        for status, tone in (("dead", BAD), ("suspect", WARN)):
            if verdicts[n][status]:
                notes.append(Cell(f"{n} is {status} to {' '.join(verdicts[n][status])}", tone))
    notes += silent_note(replies)
    if not notes:
        notes.append(Cell("every node sees every other alive", GOOD))
    return [Table("heartbeat: what each node (row) thinks of every node (column)", columns, tuple(rows),
                  tuple(notes))]
