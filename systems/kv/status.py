"""The KV system's status view: ring ownership and hinted handoffs pending, per node.

Rules: one row per node from its own `kv.dump` reply: whether it is in its
own ring, the share of the hash space it owns as primary (computed from
the members and vnodes it reports, with the same ring as the nodes use),
how many keys it holds a replica of, hints waiting for delivery, and
sibling sets it holds for others. A node that did not answer is shown
unreachable with the reason. Notes say when nodes disagree about the
membership and how many hints are pending in all. Pure (base.status
explains views).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.status import DIM, GOOD, WARN, Cell, NodeReply, Table, row, silent_note, unreachable_row
from systems.kv.ring import Ring

METHOD = "kv.dump"
REQUEST: Any = {}

COLUMNS = ("node", "member", "owns", "replicas held", "hints pending", "held for others", "ring view")


def tables(replies: Mapping[str, NodeReply]) -> list[Table]:
    answered = {n: r.reply for n, r in replies.items() if r.ok and isinstance(r.reply, Mapping)}
    views = {n: tuple(sorted(str(m) for m in st.get("members", []))) for n, st in answered.items()}
    common = max(set(views.values()), key=lambda v: sum(1 for x in views.values() if x == v), default=())
    rows = []
    for node in sorted(replies):
        st = answered.get(node)
        if st is None:
            rows.append(unreachable_row(replies[node], len(COLUMNS)))
            continue
        members = views[node]
        vnodes = st.get("vnodes")
        shares = Ring.of(members, vnodes).shares() if members and isinstance(vnodes, int) and vnodes > 0 else {}
        hints = st.get("hints", 0)
        rows.append(row(
            node,
            Cell("yes" if node in members else "no (left)", "" if node in members else WARN),
            f"{shares.get(node, 0.0):.0%}",
            str(len(st.get("keys", {}))),
            Cell(str(hints), WARN if hints else GOOD),
            Cell(str(len(st.get("held", {}))), DIM),
            Cell(" ".join(members) if members != common else "agrees", "" if members == common else WARN),
        ))
    notes = []
    total = sum(int(st.get("hints", 0) or 0) for st in answered.values())
    notes.append(Cell(f"{total} hinted handoff(s) pending" if total else "no hinted handoffs pending",
                      WARN if total else GOOD))
    if len(set(views.values())) > 1:
        notes.append(Cell("the nodes disagree about the ring's members (gossip still converging?)", WARN))
    notes += silent_note({n: r for n, r in replies.items() if n not in answered})
    return [Table("kv: ring ownership and hinted handoff", COLUMNS, tuple(rows), tuple(notes))]
