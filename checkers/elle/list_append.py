"""What list-append transactions reveal: dependencies and non-cycle anomalies.

Rules (Elle, section 4 — list-append is the richly traceable case):

- Appended values are assumed unique per key; the txn that appended (k, v)
  is its writer. A second append of the same (k, v) makes the history
  ambiguous and is reported as a warning, keeping the first writer.
- Every ok read of a key is a prefix of the key's version order. The longest
  read is taken as that order; a read that is not a prefix of it is an
  incompatible-order anomaly and gives no edges. A read holding an element
  twice is a duplicate-appends anomaly; an element nobody wrote is a
  garbage-read, one only a failed txn wrote is G1a (aborted read).
- Within a txn, a read must show what the txn's earlier reads and appends
  imply (internal consistency).
- Edges, from the version order and each txn's external reads (its first read
  of a key, before it appends to that key):
  ww  writer(v_i) -> writer(v_i+1) for consecutive elements of the order;
  wr  writer(last element read) -> reader;
  rw  reader -> writer(the element that follows what it read).
- A read whose last element is not the writer's final append to that key is
  G1b (intermediate read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checkers.elle.graph import RW, WR, WW, DepGraph
from checkers.elle.history import Txn, TxnHistory

Report = Callable[[str, dict[str, Any]], None]


def _h(x: Any) -> Any:
    """A hashable stand-in for a JSON value."""
    if isinstance(x, list):
        return tuple(_h(e) for e in x)
    if isinstance(x, dict):
        return tuple(sorted((k, _h(v)) for k, v in x.items()))
    return x


def _read_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [_h(value)]
    try:
        hash(tuple(value))  # the common case: every element is already hashable
        return value
    except TypeError:
        return [_h(e) for e in value]


def _internal(t: Txn, report: Report) -> tuple[list[tuple[Any, list[Any]]], list[tuple[Any, list[Any]]]]:
    """Check t's reads against its own earlier ops; return its (external reads, all reads) as (key, list)."""
    known: dict[Any, list[Any]] = {}
    suffix: dict[Any, list[Any]] = {}
    external: list[tuple[Any, list[Any]]] = []
    reads: list[tuple[Any, list[Any]]] = []
    for f, k, v in t.mops:
        k = _h(k)
        if f == "append":
            if k in known:
                known[k].append(_h(v))
            else:
                suffix.setdefault(k, []).append(_h(v))
        elif f == "r":
            got = _read_list(v)
            reads.append((k, got))
            if k in known:
                if got != known[k]:
                    report("internal", {"op": t.view(), "key": k, "expected": known[k], "read": got})
            elif k in suffix:
                own = suffix[k]
                if got[-len(own) :] != own:
                    report(
                        "internal",
                        {"op": t.view(), "key": k, "expected": ["...", *own], "read": got},
                    )
            else:
                external.append((k, got))
            known[k] = list(got)
    return external, reads


def infer(th: TxnHistory, g: DepGraph, report: Report, warn: Callable[[str], None]) -> None:
    txns = th.txns
    writer: dict[tuple[Any, Any], int] = {}
    final_append: dict[tuple[int, Any], Any] = {}
    for t in txns:
        for f, k, v in t.mops:
            if f == "append":
                kv = (_h(k), _h(v))
                if kv in writer:
                    warn(f"{k!r}: value {v!r} appended by both T{txns[writer[kv]].index} and {t.name}")
                else:
                    writer[kv] = t.id
                final_append[(t.id, kv[0])] = kv[1]
    failed: dict[tuple[Any, Any], Txn] = {}
    for t in th.failed:
        for f, k, v in t.mops:
            if f == "append":
                failed.setdefault((_h(k), _h(v)), t)

    # Internal consistency, external reads, and every ok read by key.
    reads_by_key: dict[Any, list[tuple[int, list[Any]]]] = {}
    external: list[tuple[int, Any, list[Any]]] = []
    for t in txns:
        if t.type != "ok":
            continue
        ext, reads = _internal(t, report)
        for k, got in ext:
            external.append((t.id, k, got))
        for k, got in reads:
            reads_by_key.setdefault(k, []).append((t.id, got))

    # Version orders.
    order: dict[Any, list[Any]] = {}
    bad_reads: set[tuple[int, Any]] = set()
    for k, reads in reads_by_key.items():
        longest = max(reads, key=lambda r: len(r[1]))
        lo = longest[1]
        order[k] = lo
        incompatible_reported = False
        duplicate_reported = False
        to_vet = [(longest[0], lo)]
        for tid, got in reads:
            if not duplicate_reported and len(set(got)) != len(got):
                duplicate_reported = True
                seen: set[Any] = set()
                dup = next(e for e in got if e in seen or seen.add(e))
                report("duplicate-appends", {"op": txns[tid].view(), "key": k, "element": dup, "read": got})
            if lo[: len(got)] != got:
                bad_reads.add((tid, k))
                to_vet.append((tid, got))
                if not incompatible_reported:
                    incompatible_reported = True
                    report(
                        "incompatible-order",
                        {
                            "key": k,
                            "values": [got, lo],
                            "ops": [txns[tid].view(), txns[longest[0]].view()],
                        },
                    )
        vetted: set[Any] = set()
        for tid, got in to_vet:
            for e in got:
                if (k, e) in writer or e in vetted:
                    continue
                vetted.add(e)
                if (k, e) in failed:
                    report(
                        "G1a",
                        {"op": txns[tid].view(), "writer": failed[(k, e)].view(), "key": k, "element": e},
                    )
                else:
                    report("garbage-read", {"op": txns[tid].view(), "key": k, "element": e})

    # ww: consecutive elements of each order.
    for k, lo in order.items():
        prev_w = None
        prev_e = None
        for e in lo:
            w = writer.get((k, e))
            if w is not None and prev_w is not None:
                g.link(prev_w, w, WW, (k, prev_e, e))
            prev_w, prev_e = w, e

    # wr and rw from external reads; G1b.
    for tid, k, got in external:
        if got:
            last = got[-1]
            w = writer.get((k, last))
            if w is not None and w != tid:
                g.link(w, tid, WR, (k, last))
                fin = final_append.get((w, k))
                if fin != last:
                    report(
                        "G1b",
                        {"op": txns[tid].view(), "writer": txns[w].view(), "key": k, "element": last},
                    )
        if (tid, k) in bad_reads:
            continue
        lo = order.get(k, [])
        if len(got) < len(lo):
            nxt = lo[len(got)]
            w = writer.get((k, nxt))
            if w is not None:
                g.link(tid, w, RW, (k, got[-1] if got else None, nxt))
