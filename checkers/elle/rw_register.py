"""What read-write register transactions reveal, inferring only what is sound.

Rules (Elle's rw-register, with the initial state made explicit):

- A txn's external read of a key is its first micro-op on that key if that
  is a read; its external write is its last write of the key. Only external
  writes are versions others may see; reading another txn's earlier write is
  G1b. Written values are unique per key: a value written twice and read is
  ambiguous, an input error.
- Every key starts with a known value, `initial` (null unless the test says
  otherwise, per key or for all), which precedes every other version. A read
  of a value nobody wrote that is not the initial value is garbage-read.
- A key's version order is known only where something shows it, from these
  sources, merged in this order (Elle's):
  initial-state  the initial value precedes every value written or read;
  wfr-keys       (on by default; an assumption) a txn that read v and then
                 wrote v' installed v' after v;
  sequential-keys    (opt-in assumption: each key is sequentially consistent)
                 a process's successive txns on a key saw successive versions;
  linearizable-keys  (opt-in assumption: each key is linearizable) a txn on a
                 key that completed before another on it began saw an earlier
                 version: its last value of the key (its write, else its read)
                 precedes the other's first (its read, else its write), so
                 read-read, read-write, write-read and write-write pairs all
                 count.
  A source that would make a key's versions cyclic is cyclic-versions (with
  the sources involved) and is not used for that key.
- Edges from each known v1 < v2 of key k: ww writer(v1) -> writer(v2), rw
  every external reader of v1 -> writer(v2); and wr writer(v) -> every
  external reader of v. Writers are ok and info txns (an info txn whose
  write was read happened); readers only ok txns.
- Non-cycle anomalies, from ok txns: internal (a read disagrees with the
  txn's own earlier read or write of the key), G1a, G1b, garbage-read,
  lost-update (two txns read the same version of a key and both wrote it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from checkers.elle.graph import RW, WR, WW, DepGraph, sccs
from checkers.elle.history import HistoryError, Txn, TxnHistory, realtime_order
from checkers.elle.list_append import Report, _lost_updates

NO_VALUE = object()


def ext_reads(t: Txn) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    touched: set[Any] = set()
    for f, k, v in t.mops:
        if k not in touched:
            touched.add(k)
            if f == "r":
                out[k] = v
    return out


def ext_writes(t: Txn) -> dict[Any, Any]:
    return {k: v for f, k, v in t.mops if f == "w"}


def _internal(t: Txn, report: Report) -> None:
    known: dict[Any, Any] = {}
    for i, (f, k, v) in enumerate(t.mops):
        if f == "r" and k in known and known[k] != v:
            report("internal", {"op": t.view(), "mop": t.raw[i], "key": k, "expected": known[k], "read": v})
            return
        known[k] = v


class Initial:
    """The initial value of each key: one for all keys, overridden per key."""

    def __init__(self, value: Any = None, by_key: dict[Any, Any] | None = None) -> None:
        self.value = value
        self.by_key = by_key or {}

    def __call__(self, k: Any) -> Any:
        return self.by_key.get(k, self.value)


def infer(
    th: TxnHistory,
    g: DepGraph,
    report: Report,
    warn: Callable[[str], None],
    *,
    initial: Initial | None = None,
    wfr_keys: bool = True,
    sequential_keys: bool = False,
    linearizable_keys: bool = False,
) -> set[int]:
    """Add ww, wr and rw edges to g and report non-cycle anomalies; returns the info txns whose writes were read."""
    init = initial or Initial()
    txns = th.txns
    ok = [t for t in txns if t.type == "ok"]
    ereads = {t.id: ext_reads(t) for t in ok}
    ewrites = {t.id: ext_writes(t) for t in txns}

    any_writer: dict[tuple[Any, Any], list[Txn]] = {}
    intermediate: dict[tuple[Any, Any], Txn] = {}
    failed: dict[tuple[Any, Any], Txn] = {}
    for t in [*txns, *th.failed]:
        final = ewrites.get(t.id) if t.type != "fail" else ext_writes(t)
        for f, k, v in t.mops:
            if f != "w":
                continue
            ws = any_writer.setdefault((k, v), [])
            if t not in ws:
                ws.append(t)
            if t.type == "fail":
                failed.setdefault((k, v), t)
            if final is not None and final.get(k, NO_VALUE) != v:
                intermediate[(k, v)] = t
    writer: dict[tuple[Any, Any], int] = {(k, v): tid for tid, ws in ewrites.items() for k, v in ws.items()}
    readers: dict[tuple[Any, Any], list[int]] = {}
    for tid, rs in ereads.items():
        for k, v in rs.items():
            readers.setdefault((k, v), []).append(tid)
    for (k, v), ws in any_writer.items():
        if len(ws) > 1 and (k, v) in readers:
            raise HistoryError(f"value {v!r} written to key {k!r} by both {ws[0].name} and {ws[1].name} and read by "
                               f"{txns[readers[(k, v)][0]].name}: written values must be unique per key")
        if v == init(k) and (k, v) in readers:
            raise HistoryError(f"{ws[0].name} wrote key {k!r} = {v!r}, its initial value, which "
                               f"{txns[readers[(k, v)][0]].name} read: written values must differ from the initial one")

    # Non-cycle anomalies.
    garbage: set[tuple[Any, Any]] = set()
    lost: dict[tuple[Any, Any], list[Txn]] = {}
    for t in ok:
        _internal(t, report)
        _lost_updates(t, lost)
        for i, (f, k, v) in enumerate(t.mops):
            if f != "r":
                continue
            kv = (k, v)
            if kv in failed:
                report("G1a", {"op": t.view(), "mop": t.raw[i], "writer": failed[kv].view(), "key": k, "element": v})
            w = intermediate.get(kv)
            if w is not None and w is not t:
                report("G1b", {"op": t.view(), "mop": t.raw[i], "writer": w.view(), "key": k, "element": v})
            if kv not in any_writer and v != init(k) and kv not in garbage and ereads[t.id].get(k, NO_VALUE) == v:
                garbage.add(kv)
                report("garbage-read", {"op": t.view(), "mop": t.raw[i], "key": k, "element": v})
    for (k, v), ts in lost.items():
        if len(ts) > 1:
            report("lost-update", {"key": k, "value": v, "txns": [x.view() for x in ts]})

    # Version orders, source by source.
    sources: list[tuple[str, dict[Any, dict[tuple[Any, Any], None]]]] = [
        ("initial-state", _initial_state(txns, ereads, ewrites, init))
    ]
    if wfr_keys:
        sources.append(("wfr-keys", _wfr(ok, ereads, ewrites, init)))
    if sequential_keys:
        sources.append(("sequential-keys", _sequential(ok, ereads, ewrites)))
    if linearizable_keys:
        sources.append(("linearizable-keys", _linearizable(th, ereads, ewrites)))
    versions: dict[Any, dict[tuple[Any, Any], None]] = {}
    used: dict[Any, list[str]] = {}
    for name, edges in sources:
        for k, es in edges.items():
            merged = {**versions.get(k, {}), **es}
            cyc = _cycles(merged)
            if cyc:
                for scc in cyc:
                    report("cyclic-versions", {"key": k, "scc": scc, "sources": [*used.get(k, []), name]})
                continue
            versions[k] = merged
            used.setdefault(k, []).append(name)

    link = g.link
    for k, es in versions.items():
        for v1, v2 in es:
            w2 = writer.get((k, v2))
            if w2 is None:
                continue
            w1 = writer.get((k, v1))
            if w1 is not None and w1 != w2:
                link(w1, w2, WW, (k, v1, v2))
            for r in readers.get((k, v1), ()):
                if r != w2:
                    link(r, w2, RW, (k, v1, v2))
    for (k, v), rs in readers.items():
        w = writer.get((k, v))
        if w is None:
            continue
        for r in rs:
            if r != w:
                link(w, r, WR, (k, v))
    return {t.id for t in txns if t.type == "info" and any((k, v) in readers for k, v in ewrites[t.id].items())}


def _initial_state(txns: list[Txn], ereads: dict[int, dict[Any, Any]], ewrites: dict[int, dict[Any, Any]],
                   init: Initial) -> dict[Any, dict[tuple[Any, Any], None]]:
    out: dict[Any, dict[tuple[Any, Any], None]] = {}
    for t in txns:
        for kvs in (ewrites[t.id], ereads.get(t.id, {})):
            for k, v in kvs.items():
                i = init(k)
                if v != i:
                    out.setdefault(k, {})[(i, v)] = None
    return out


def _wfr(ok: list[Txn], ereads: dict[int, dict[Any, Any]], ewrites: dict[int, dict[Any, Any]],
         init: Initial) -> dict[Any, dict[tuple[Any, Any], None]]:
    out: dict[Any, dict[tuple[Any, Any], None]] = {}
    for t in ok:
        ws = ewrites[t.id]
        for k, v in ereads[t.id].items():
            if k in ws and ws[k] != v and v != init(k):
                out.setdefault(k, {})[(v, ws[k])] = None
    return out


def _last_first(t: Txn, ereads: dict[int, dict[Any, Any]], ewrites: dict[int, dict[Any, Any]]
                ) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """A txn's last value of each key it touched (its write, else its read) and first (its read, else its write)."""
    rs = ereads.get(t.id, {}) if t.type == "ok" else {}
    ws = ewrites[t.id]
    return {**rs, **ws}, {**ws, **rs}


def _sequential(ok: list[Txn], ereads: dict[int, dict[Any, Any]],
                ewrites: dict[int, dict[Any, Any]]) -> dict[Any, dict[tuple[Any, Any], None]]:
    out: dict[Any, dict[tuple[Any, Any], None]] = {}
    last: dict[tuple[Any, Any], Any] = {}  # (process, key) -> last value seen
    for t in ok:
        final, first = _last_first(t, ereads, ewrites)
        for k, v in first.items():
            prev = last.get((t.process, k), NO_VALUE)
            if prev is not NO_VALUE and prev != v:
                out.setdefault(k, {})[(prev, v)] = None
        for k, v in final.items():
            last[(t.process, k)] = v
    return out


def _linearizable(th: TxnHistory, ereads: dict[int, dict[Any, Any]],
                  ewrites: dict[int, dict[Any, Any]]) -> dict[Any, dict[tuple[Any, Any], None]]:
    txns = th.txns
    ends = {t.id: _last_first(t, ereads, ewrites) for t in txns}
    per_key: dict[Any, list[tuple[int, int]]] = {}
    for kind, tid in th.events:
        for k in ends[tid][1]:
            per_key.setdefault(k, []).append((kind, tid))
    out: dict[Any, dict[tuple[Any, Any], None]] = {}
    for k, events in per_key.items():
        es = out.setdefault(k, {})

        def link(a: int, b: int, k: Any = k, es: dict[tuple[Any, Any], None] = es) -> None:
            v1, v2 = ends[a][0][k], ends[b][1][k]
            if v1 != v2:
                es[(v1, v2)] = None

        realtime_order(events, link)
    return out


def _cycles(edges: Iterable[tuple[Any, Any]]) -> list[list[Any]]:
    """The cyclic components of a small graph of values (each a list of values)."""
    ids: dict[Any, int] = {}
    succ: dict[int, list[int]] = {}
    for a, b in edges:
        ia = ids.setdefault(a, len(ids))
        ib = ids.setdefault(b, len(ids))
        succ.setdefault(ia, []).append(ib)
    back = {i: v for v, i in ids.items()}
    return [[back[i] for i in c] for c in sccs(range(len(ids)), lambda u: succ.get(u, ()))]
