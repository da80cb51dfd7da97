"""Transactions out of a picluster history, and the order edges between them.

Rules:

- Only client ops with f "txn" count; nemesis ops and other functions are
  skipped. An invocation pairs with the next completion of its process.
- An `ok` txn happened, with its reads as the completion reports them. An
  `info` txn (or one never completed) may have happened: its writes count if
  someone observed them, its reads are unknown. A `fail` txn did not happen:
  it is kept apart, only so that reading its writes can be called G1a.
- A txn is named T<index of its invocation>, so a reader can find it in the
  history; `pos` is its position among the history lines.
- Process order links each txn of a process to its next one. Real-time order
  (a completed before b was invoked) is kept transitively reduced the way Elle
  does it: each invocation links only from the frontier of completed txns not
  yet known to precede another completed txn, so the edge count grows with
  concurrency times txns, never quadratically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Mop = list[Any]


@dataclass(slots=True)
class Txn:
    id: int
    """Dense id, 0..n-1, in invocation order."""
    index: int
    """The invocation's history index (the "index" field, else its line position)."""
    process: Any
    type: str
    """"ok" or "info" (also for an invocation that never completed)."""
    mops: list[Mop]
    invoke_pos: int
    complete_pos: int | None = None
    complete_index: int | None = None

    @property
    def name(self) -> str:
        return f"T{self.index}"

    def view(self) -> dict[str, Any]:
        """The txn as evidence: enough to find it in the history."""
        return {"index": self.index, "process": self.process, "type": self.type, "value": self.mops}


@dataclass(slots=True)
class TxnHistory:
    txns: list[Txn] = field(default_factory=list)
    """ok and info txns: those that may have happened."""
    failed: list[Txn] = field(default_factory=list)
    events: list[tuple[int, int]] = field(default_factory=list)
    """(kind, txn id) in history order: kind 0 = invoke, 1 = ok completion."""


class MalformedTxn(ValueError):
    """A txn op whose value is not a list of micro-ops."""


def _mops(value: Any, where: int) -> list[Mop]:
    if not isinstance(value, list) or not all(type(m) is list and len(m) == 3 for m in value):
        raise MalformedTxn(f"op {where}: a txn's value must be a list of [f, key, value] micro-ops")
    return value


def extract(history: Iterable[dict[str, Any]]) -> TxnHistory:
    """Pair txn invocations with completions; see the module rules."""
    out = TxnHistory()
    pending: dict[Any, int] = {}  # process -> id of its ok/info txn awaiting completion
    staged: list[tuple[int, dict[str, Any], dict[str, Any] | None, int | None]] = []
    for pos, op in enumerate(history):
        if op.get("process") == "nemesis" or op.get("f") != "txn":
            continue
        p = op.get("process")
        if op.get("type") == "invoke":
            staged.append((pos, op, None, None))
            pending[p] = len(staged) - 1
        elif p in pending:
            i = pending.pop(p)
            staged[i] = (staged[i][0], staged[i][1], op, pos)
    # Second pass: ids in invocation order, events in history order.
    event_list: list[tuple[int, int, int]] = []  # (pos, kind, id)
    for ipos, inv, comp, cpos in staged:
        kind = comp.get("type") if comp is not None else "info"
        index = inv.get("index", ipos)
        if kind == "fail":
            out.failed.append(Txn(-1, index, inv.get("process"), "fail", _mops(inv.get("value"), index), ipos))
            continue
        if kind == "ok":
            assert comp is not None and cpos is not None
            t = Txn(len(out.txns), index, inv.get("process"), "ok", _mops(comp.get("value"), index), ipos)
            t.complete_pos = cpos
            t.complete_index = comp.get("index", cpos)
            event_list.append((cpos, 1, t.id))
        else:
            t = Txn(len(out.txns), index, inv.get("process"), "info", _mops(inv.get("value"), index), ipos)
        out.txns.append(t)
        event_list.append((ipos, 0, t.id))
    event_list.sort()
    out.events = [(kind, tid) for _, kind, tid in event_list]
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
