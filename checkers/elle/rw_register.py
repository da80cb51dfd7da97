"""What read-write register transactions reveal, inferring only what is sound.

Rules:

- Written values are assumed unique per key; every key starts at null (the
  initial version, which precedes every write). Only a txn's final write to a
  key is a version others can see; reading an earlier one is G1b.
- Internal consistency: a read after the txn's own read or write of the key
  must return that value.
- Version order of a key is known only where something shows it:
  initial state: null precedes everything;
  write-follows-read: an ok txn that read v and then wrote v' installs v'
  after v;
  linearizable_keys (opt-in, an assumption about the store): a write that
  completed before another write of the same key was invoked came first.
  A cycle in a key's version order is a cyclic-versions anomaly.
- Edges: ww writer(v) -> writer(v') for each known v < v'; wr writer(v) ->
  each txn whose external read saw v; rw reader of v -> writer of each
  version directly after v (for null: each version with no known
  predecessor). Reads of values nobody wrote are garbage-read, of values only
  a failed txn wrote G1a.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx

from checkers.elle.graph import RW, WR, WW, DepGraph
from checkers.elle.history import Txn, TxnHistory, realtime_order
from checkers.elle.list_append import Report, _h


def _internal(t: Txn, report: Report) -> list[tuple[Any, Any]]:
    """Check t's reads against its own earlier ops; return its external reads (key, value)."""
    known: dict[Any, Any] = {}
    external: list[tuple[Any, Any]] = []
    for f, k, v in t.mops:
        k, v = _h(k), _h(v)
        if f == "w":
            known[k] = v
        elif f == "r":
            if k in known:
                if known[k] != v:
                    report("internal", {"op": t.view(), "key": k, "expected": known[k], "read": v})
            else:
                external.append((k, v))
            known[k] = v
    return external


def infer(
    th: TxnHistory,
    g: DepGraph,
    report: Report,
    warn: Callable[[str], None],
    *,
    linearizable_keys: bool = False,
) -> None:
    txns = th.txns
    any_write: dict[tuple[Any, Any], int] = {}
    final: dict[tuple[int, Any], Any] = {}
    for t in txns:
        for f, k, v in t.mops:
            if f == "w":
                kv = (_h(k), _h(v))
                if kv in any_write and any_write[kv] != t.id:
                    warn(f"{k!r}: value {v!r} written by both T{txns[any_write[kv]].index} and {t.name}")
                else:
                    any_write.setdefault(kv, t.id)
                final[(t.id, kv[0])] = kv[1]
    writer = {(k, v): tid for (tid, k), v in final.items()}
    failed: dict[tuple[Any, Any], Txn] = {}
    for t in th.failed:
        for f, k, v in t.mops:
            if f == "w":
                failed.setdefault((_h(k), _h(v)), t)

    succ: dict[Any, dict[Any, dict[Any, None]]] = {}  # key -> version -> later versions

    def order(k: Any, a: Any, b: Any) -> None:
        if a is not None and a != b:
            succ.setdefault(k, {}).setdefault(a, {})[b] = None

    external: list[tuple[int, Any, Any]] = []
    reported: set[tuple[Any, Any]] = set()
    for t in txns:
        if t.type != "ok":
            continue
        ext = _internal(t, report)
        for k, v in ext:
            external.append((t.id, k, v))
            if (t.id, k) in final:
                order(k, v, final[(t.id, k)])
            if v is None or (k, v) in any_write or (k, v) in reported:
                continue
            reported.add((k, v))
            if (k, v) in failed:
                report("G1a", {"op": t.view(), "writer": failed[(k, v)].view(), "key": k, "element": v})
            else:
                report("garbage-read", {"op": t.view(), "key": k, "element": v})

    if linearizable_keys:
        _realtime_versions(th, final, order)

    has_pred: dict[Any, set[Any]] = {}
    for k, vs in succ.items():
        for a, bs in vs.items():
            for b in bs:
                has_pred.setdefault(k, set()).add(b)
                wa, wb = writer.get((k, a)), writer.get((k, b))
                if wa is not None and wb is not None:
                    g.link(wa, wb, WW, (k, a, b))
        vg = nx.DiGraph([(a, b) for a, bs in vs.items() for b in bs])
        try:
            cyc = nx.find_cycle(vg)
        except nx.NetworkXNoCycle:
            continue
        report("cyclic-versions", {"key": k, "versions": [a for a, _ in cyc]})

    roots: dict[Any, list[Any]] = {}
    for (k, v), _w in writer.items():
        if v not in has_pred.get(k, ()):
            roots.setdefault(k, []).append(v)

    for tid, k, v in external:
        if v is not None:
            w = any_write.get((k, v))
            if w is not None and w != tid:
                g.link(w, tid, WR, (k, v))
                if final.get((w, k)) != v:
                    report("G1b", {"op": txns[tid].view(), "writer": txns[w].view(), "key": k, "element": v})
            nexts = list(succ.get(k, {}).get(v, {}))
        else:
            nexts = roots.get(k, [])
        for nv in nexts:
            w = writer.get((k, nv))
            if w is not None and w != tid:
                g.link(tid, w, RW, (k, v, nv))


def _realtime_versions(
    th: TxnHistory, final: dict[tuple[int, Any], Any], order: Callable[[Any, Any, Any], None]
) -> None:
    """Version order from real time among each key's writes (the linearizable-keys assumption)."""
    keys_of: dict[int, list[Any]] = {}
    for tid, k in final:
        keys_of.setdefault(tid, []).append(k)
    per_key: dict[Any, list[tuple[int, int]]] = {}
    for kind, tid in th.events:
        for k in keys_of.get(tid, ()):
            per_key.setdefault(k, []).append((kind, tid))
    for k, events in per_key.items():
        realtime_order(events, lambda a, b, k=k: order(k, final[(a, k)], final[(b, k)]))
