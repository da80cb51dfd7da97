"""Transactions out of a history, checked as they are read, and the order edges between them.

Rules:

- Client ops with f "txn" (or no f at all, as in Elle's own test histories)
  are transactions; nemesis ops and other functions are skipped. An
  invocation pairs with the next completion of its process.
- Bad input is one HistoryError naming where it is (the file's line when
  known, else the op's index), never a guess: a completion with no open
  invocation, a second invocation while one is open, a value that is not a
  list of [f, key, value] micro-ops, a micro-op the workload does not have,
  a read in a list-append txn that is not a list.
- An `ok` txn happened, with its reads as the completion reports them (a
  list-append read of null is the empty list, as in Elle). An `info` txn (or
  one never completed, or completed `info` under another f as Jepsen records
  a crash) may have happened: its writes count if observed, its reads are
  unknown. A `fail` txn did not happen: it is kept apart, to name G1a and
  dirty updates.
- A txn is named T<index of its invocation>; `complete_index` is its
  completion's. Keys and values are made hashable (lists become tuples,
  objects sorted item tuples) once, here.
- Process order links each txn to the next of its process. Real-time order (a
  completed before b was invoked) is kept transitively reduced the way Elle
  does it: each invocation links only from the frontier of completed txns not
  yet known to precede another completed txn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

MOP_FS = {"list-append": ("append", "r"), "rw-register": ("w", "r")}


class HistoryError(ValueError):
    """A history that cannot be checked, with where it broke."""


def hashable(x: Any) -> Any:
    """A hashable stand-in for a JSON value: lists become tuples, objects sorted item tuples."""
    if isinstance(x, list | tuple):
        return tuple(hashable(e) for e in x)
    if isinstance(x, dict):
        return tuple(sorted((k, hashable(v)) for k, v in x.items()))
    return x


@dataclass(slots=True)
class Txn:
    id: int
    """Dense id, 0..n-1, in invocation order (failed txns: -1)."""
    index: int
    """The invocation's history index (its "index" field, else its line position)."""
    process: Any
    type: str
    """"ok", "info" (also for an invocation never completed) or "fail"."""
    mops: list[tuple[str, Any, Any]]
    """(f, key, value), hashable; for ok txns the reads as completed."""
    raw: list[Any]
    """The micro-ops as the history has them, for evidence."""
    invoke_pos: int
    complete_pos: int | None = None
    complete_index: int | None = None
    node: Any = None

    @property
    def name(self) -> str:
        return f"T{self.index}"

    def view(self) -> dict[str, Any]:
        """The txn as evidence: enough to find it in the history."""
        out = {"index": self.index, "process": self.process, "type": self.type, "value": self.raw}
        if self.complete_index is not None:
            out["complete_index"] = self.complete_index
        if self.node is not None:
            out["node"] = self.node
        return out


@dataclass(slots=True)
class TxnHistory:
    txns: list[Txn] = field(default_factory=list)
    """ok and info txns: those that may have happened."""
    failed: list[Txn] = field(default_factory=list)
    events: list[tuple[int, int]] = field(default_factory=list)
    """(kind, txn id) in history order: kind 0 = invoke, 1 = ok completion."""


def _where(op: dict[str, Any], pos: int, lines: Sequence[int] | None) -> str:
    if lines is not None:
        return f"line {lines[pos]}"
    return f"op {op.get('index', pos)}"


def _mops(value: Any, kind: str, completed_ok: bool, where: str) -> tuple[list[tuple[str, Any, Any]], list[Any]]:
    if not isinstance(value, list | tuple):
        raise HistoryError(f"{where}: a txn's value must be a list of [f, key, value] micro-ops, got {value!r}")
    fs = MOP_FS[kind]
    out = []
    for m in value:
        if isinstance(m, list | tuple) and len(m) == 2 and m[0] == "r" and not completed_ok:
            m = [*m, None]  # an invocation's read, as Jepsen sometimes writes it: [:r :x]
        if not isinstance(m, list | tuple) or len(m) != 3:
            raise HistoryError(f"{where}: micro-op {m!r} is not [f, key, value]")
        f, k, v = m
        if f not in fs:
            raise HistoryError(f"{where}: micro-op {f!r} is not one of {kind}'s ({', '.join(fs)}): {m!r}")
        if kind == "list-append" and f == "r" and completed_ok:
            if v is None:
                v = ()
            elif not isinstance(v, list | tuple):
                raise HistoryError(f"{where}: a list-append read must return a list, got {v!r} in {m!r}")
        out.append((f, hashable(k), hashable(v)))
    return out, list(value)


def extract(history: Iterable[dict[str, Any]], kind: str, lines: Sequence[int] | None = None) -> TxnHistory:
    """Pair txn invocations with completions, checking each; see the module rules."""
    if kind not in MOP_FS:
        raise ValueError(f"unknown workload {kind!r}; known: {', '.join(MOP_FS)}")
    out = TxnHistory()
    pending: dict[Any, int] = {}  # process -> staged index awaiting completion
    staged: list[list[Any]] = []  # [invoke pos, invoke op, completion op | None, completion pos | None]
    for pos, op in enumerate(history):
        if not isinstance(op, dict):
            raise HistoryError(f"{_where({}, pos, lines)}: expected an op (a map), got {type(op).__name__}")
        p = op.get("process")
        if p == "nemesis":
            continue
        t = op.get("type")
        # Another function is skipped, unless it is how Jepsen/Knossos record a crash of the open txn
        # (an info completion under its own f, e.g. :crash).
        if op.get("f", "txn") not in ("txn", None) and not (t == "info" and p in pending):
            continue
        if t == "invoke":
            if p in pending:
                raise HistoryError(f"{_where(op, pos, lines)}: process {p!r} invoked a txn while its previous one "
                                   f"(op {staged[pending[p]][1].get('index', staged[pending[p]][0])}) was open")
            staged.append([pos, op, None, None])
            pending[p] = len(staged) - 1
        elif t in ("ok", "fail", "info"):
            if p not in pending:
                where = _where(op, pos, lines)
                raise HistoryError(f"{where}: {t} completion for process {p!r} with no open invocation")
            i = pending.pop(p)
            staged[i][2], staged[i][3] = op, pos
        else:
            raise HistoryError(f"{_where(op, pos, lines)}: type must be invoke, ok, fail or info, got {t!r}")
    events: list[tuple[int, int, int]] = []  # (pos, kind, id)
    for ipos, inv, comp, cpos in staged:
        kind_ = comp.get("type") if comp is not None else "info"
        index = inv.get("index", ipos)
        where = _where(inv, ipos, lines)
        if kind_ == "ok":
            _mops(inv.get("value"), kind, False, where)  # a bad micro-op is named where it first appears
            mops, raw = _mops(comp.get("value"), kind, True, _where(comp, cpos, lines))
        else:
            mops, raw = _mops(inv.get("value"), kind, False, where)
        node = inv.get("node") if comp is None else comp.get("node", inv.get("node"))
        if kind_ == "fail":
            out.failed.append(Txn(-1, index, inv.get("process"), "fail", mops, raw, ipos, cpos,
                                  comp.get("index", cpos), node))
            continue
        t = Txn(len(out.txns), index, inv.get("process"), kind_, mops, raw, ipos, node=node)
        if kind_ == "ok":
            t.complete_pos, t.complete_index = cpos, comp.get("index", cpos)
            events.append((cpos, 1, t.id))
        out.txns.append(t)
        events.append((ipos, 0, t.id))
    events.sort()
    out.events = [(k, tid) for _, k, tid in events]
    return out


Link = Callable[[int, int], None]


def process_order(th: TxnHistory, link: Link) -> None:
    """Link each txn to the next txn of the same process."""
    last: dict[Any, int] = {}
    for t in th.txns:
        prev = last.get(t.process)
        if prev is not None:
            link(prev, t.id)
        last[t.process] = t.id


def realtime_order(events: Iterable[tuple[int, int]], link: Link) -> None:
    """Link a -> b whenever a completed before b was invoked, transitively reduced.

    events: (0, id) for an invocation, (1, id) for an ok completion, in time order.
    """
    frontier: dict[int, None] = {}
    preds: dict[int, tuple[int, ...]] = {}
    for kind, tid in events:
        if kind == 0:
            snapshot = tuple(frontier)
            for f in snapshot:
                link(f, tid)
            preds[tid] = snapshot
        else:
            for p in preds.pop(tid, ()):
                frontier.pop(p, None)
            frontier[tid] = None
