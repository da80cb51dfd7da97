"""What list-append transactions reveal: version orders, dependencies and non-cycle anomalies.

Rules (Elle, section 4: list-append histories are traceable, every read shows
the order of the appends before it):

- Appended values are unique per key; a second append of the same (key,
  value), by any txn, is an input error (the order would be ambiguous).
- Version order of a key: every read is a prefix of it, so the longest read
  (distinct elements) is the order; distinct reads that are not prefixes of
  one another are incompatible-order. A key no read shows but that has exactly
  one append has the order [that element].
- Edges, for every append of (k, v) by T: its predecessor p is the element
  before v in the order, the initial empty state if v is first, and, for an
  append no read observed, the last observed element (it came after all of
  them) or the initial state if there is none:
  ww  writer(p) -> T;
  rw  every txn that read k ending in p (or read k empty, for the initial
      state) -> T, so a read of [] precedes every append it missed, seen or
      not, and a read of a prefix precedes every unobserved append;
  and for every ok read of k ending in e: wr writer(e) -> reader.
  Info txns' reads are unknown and give no edges; their appends do.
- Non-cycle anomalies, from ok txns: internal (a read disagrees with the
  txn's own earlier reads and appends), future-read (a read shows an element
  the txn appends later), duplicate-elements, incompatible-order, G1a (a read
  shows an element only a failed txn appended), G1b (a read ends in another
  txn's intermediate append), garbage-read (an element nobody appended),
  dirty-update (in a key's order, a committed append right after failed
  ones), lost-update (two committed txns read the same state of a key and
  both appended to it).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

from checkers.elle.graph import RW, WR, WW, DepGraph
from checkers.elle.history import HistoryError, Txn, TxnHistory

Report = Callable[[str, dict[str, Any]], None]
INIT = object()
"""The initial (empty) state of a key, as a version."""


def _raw(t: Txn, i: int) -> Any:
    return t.raw[i]


def _internal(t: Txn, report: Report) -> None:
    """Elle's INT check and future-read, first case of each per txn."""
    state: dict[Any, tuple[bool, list[Any]]] = {}  # key -> (prefix known, elements)
    seen: dict[Any, dict[Any, int]] = {}  # key -> element -> index of the read that showed it
    internal_done = future_done = False
    for i, (f, k, v) in enumerate(t.mops):
        if f == "append":
            if not future_done and v in seen.get(k, {}):
                future_done = True
                report("future-read", {"op": t.view(), "mop": _raw(t, seen[k][v]), "key": k, "element": v})
            known, els = state.get(k, (False, []))
            state[k] = (known, [*els, v])
            continue
        if not internal_done and k in state:
            known, els = state[k]
            bad = (list(v) != els) if known else (len(v) < len(els) or list(v[len(v) - len(els):]) != els)
            if bad:
                internal_done = True
                report("internal", {"op": t.view(), "mop": _raw(t, i), "key": k,
                                    "expected": els if known else ["...", *els], "read": list(v)})
        state[k] = (True, list(v))
        ks = seen.setdefault(k, {})
        for e in v:
            ks.setdefault(e, i)


def infer(th: TxnHistory, g: DepGraph, report: Report, warn: Callable[[str], None]) -> set[int]:
    """Add ww, wr and rw edges to g and report non-cycle anomalies; returns the info txns whose appends were read."""
    txns = th.txns
    writer: dict[tuple[Any, Any], int] = {}
    failed: dict[tuple[Any, Any], Txn] = {}
    intermediate: dict[tuple[Any, Any], Txn] = {}
    append_count: dict[Any, int] = {}
    single: dict[Any, Any] = {}
    for t in [*txns, *th.failed]:
        last: dict[Any, Any] = {}
        for f, k, v in t.mops:
            if f != "append":
                continue
            kv = (k, v)
            if kv in writer or kv in failed:
                other = txns[writer[kv]] if kv in writer else failed[kv]
                raise HistoryError(f"value {v!r} appended to key {k!r} by both {other.name} and {t.name}: "
                                   "appended values must be unique per key")
            if t.type == "fail":
                failed[kv] = t
            else:
                writer[kv] = t.id
                append_count[k] = append_count.get(k, 0) + 1
                single[k] = v
            if k in last:
                intermediate[(k, last[k])] = t
            last[k] = v

    # Reads of ok txns, and the anomalies a single txn shows.
    reads: list[tuple[Txn, int, Any, tuple[Any, ...]]] = []
    values: dict[Any, dict[tuple[Any, ...], None]] = {}
    for t in txns:
        if t.type != "ok":
            continue
        _internal(t, report)
        for i, (f, k, v) in enumerate(t.mops):
            if f == "r":
                reads.append((t, i, k, v))
                if v:
                    values.setdefault(k, {})[v] = None

    order: dict[Any, list[Any]] = {}
    for k, vs in values.items():
        ordered = sorted(vs, key=len)
        for a, b in pairwise(ordered):
            if b[: len(a)] != a:
                report("incompatible-order", {"key": k, "values": [list(a), list(b)]})
                break
        order[k] = list(dict.fromkeys(ordered[-1]))
    for k, n in append_count.items():
        if n == 1 and k not in order:
            order[k] = [single[k]]
    pos = {k: {e: i for i, e in enumerate(els)} for k, els in order.items()}

    observed: set[tuple[Any, Any]] = set()
    garbage: set[tuple[Any, Any]] = set()
    lost: dict[tuple[Any, Any], list[Txn]] = {}
    read_index: dict[tuple[Any, Any], list[int]] = {}
    for t, i, k, v in reads:
        read_index.setdefault((k, v[-1] if v else INIT), []).append(t.id)
        if not v:
            continue
        if len(set(v)) != len(v):
            counts: dict[Any, int] = {}
            for e in v:
                counts[e] = counts.get(e, 0) + 1
            report("duplicate-elements", {"op": t.view(), "mop": _raw(t, i), "key": k,
                                          "duplicates": {_json_key(e): c for e, c in counts.items() if c > 1}})
        for e in v:
            kv = (k, e)
            observed.add(kv)
            if kv in failed:
                report("G1a", {"op": t.view(), "mop": _raw(t, i), "writer": failed[kv].view(), "key": k, "element": e})
            elif kv not in writer and kv not in garbage:
                garbage.add(kv)
                report("garbage-read", {"op": t.view(), "mop": _raw(t, i), "key": k, "element": e})
        w = intermediate.get((k, v[-1]))
        if w is not None and w is not t:
            report("G1b", {"op": t.view(), "mop": _raw(t, i), "writer": w.view(), "key": k, "element": v[-1]})
    for t in txns:
        if t.type == "ok":
            _lost_updates(t, lost)
    for (k, v), ts in lost.items():
        if len(ts) > 1:
            report("lost-update", {"key": k, "value": list(v), "txns": [x.view() for x in ts]})
    _dirty_updates(order, writer, failed, txns, report)

    def prev_of(k: Any, v: Any) -> Any:
        i = pos.get(k, {}).get(v)
        if i is None:
            els = order.get(k)
            return els[-1] if els else INIT
        return order[k][i - 1] if i > 0 else INIT

    link = g.link
    for t in txns:
        tid = t.id
        for f, k, v in t.mops:
            if f == "append":
                p = prev_of(k, v)
                if p is not INIT:
                    w = writer.get((k, p))
                    if w is not None and w != tid:
                        link(w, tid, WW, (k, p, v))
                seen = None if p is INIT else p
                for r in read_index.get((k, p), ()):
                    if r != tid:
                        link(r, tid, RW, (k, seen, v))
            elif f == "r" and v and t.type == "ok":
                w = writer.get((k, v[-1]))
                if w is not None and w != tid:
                    link(w, tid, WR, (k, v[-1]))
    return {t.id for t in txns if t.type == "info" and any(
        f == "append" and (k, v) in observed for f, k, v in t.mops)}


def _json_key(e: Any) -> Any:
    return e if isinstance(e, str | int | float | bool) or e is None else repr(e)


def _lost_updates(t: Txn, lost: dict[tuple[Any, Any], list[Txn]]) -> None:
    """As Elle: the first read of a key, if the txn later writes (appends to) that key for the first time."""
    reads: dict[Any, Any] = {}
    wrote: set[Any] = set()
    for f, k, v in t.mops:
        if f != "r":
            if k not in wrote and k in reads:
                lost.setdefault((k, reads[k]), []).append(t)
                wrote.add(k)
        elif k not in reads:
            reads[k] = v


def _dirty_updates(order: dict[Any, list[Any]], writer: dict[tuple[Any, Any], int],
                   failed: dict[tuple[Any, Any], Txn], txns: list[Txn], report: Report) -> None:
    """A committed append right after (a run of) failed appends in a key's version order."""
    for k, els in order.items():
        t1: Txn | None = None  # None: the initial state, which counts as committed
        t1_type = "ok"
        span: list[Any] = []
        for e in els:
            kv = (k, e)
            t2 = txns[writer[kv]] if kv in writer else failed.get(kv)
            t2_type = t2.type if t2 is not None else "info"
            if t2_type == "info":
                span.append(e)
                continue
            if t2_type == "ok" and t1_type == "fail":
                report("dirty-update", {"key": k, "values": [*span, e],
                                        "txns": [t1.view() if t1 else None, "...", t2.view() if t2 else None]})
            if t2_type == "fail" and t1_type == "fail":
                span.append(e)
                continue
            t1, t1_type, span = t2, t2_type, [e]
