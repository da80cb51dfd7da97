"""A serial order that explains every read: the proof behind a "valid" verdict.

Cycle search finds anomalies; it cannot prove their absence, because version
orders (above all of registers) are only partly known. So a serializable-class
verdict of True needs a witness: an order of the transactions, respecting
every inferred dependency and the real-time / process order the model asks
for, whose serial replay gives every ok read exactly the value it returned.

Rules:

- Which txns: every ok txn, and every info txn one of whose writes some read
  observed (it must have happened). Info txns nobody observed are left out:
  their writes reached no read, so leaving them out never hurts. Failed txns
  never happened.
- Replay: list-append appends to a key's list and a read must equal it;
  rw-register writes set a key and a read must equal it (the key's initial
  value before any write). An info txn's reads are unknown and not checked.
- Up to EXHAUSTIVE txns the search tries every order the constraints allow
  (memoized on the set placed and the state reached), so "no order" is a
  proof. Beyond that it is greedy and linear: it places first any ready txn
  that only reads and whose reads match the current state (that never hurts),
  then, among ready writers whose reads match, one that overwrites no value a
  txn still to be placed needs, earliest completion first. A greedy failure
  proves nothing.
- Bounded by the deadline; a search cut short proves nothing either.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from checkers.elle.cycles import Deadline
from checkers.elle.graph import DepGraph
from checkers.elle.history import Txn

EXHAUSTIVE = 16
INFINITY = 1 << 62


@dataclass(slots=True)
class Witness:
    found: bool
    exhaustive: bool
    """True when the whole space was searched: `found` False then proves there is no order."""
    order: list[int] | None
    reason: str


class _Replay:
    """The store's state under a serial replay, for one workload."""

    def __init__(self, kind: str, initial: Callable[[Any], Any]) -> None:
        self.list = kind == "list-append"
        self.initial = initial
        self.state: dict[Any, Any] = {}

    def get(self, k: Any) -> Any:
        if self.list:
            return self.state.get(k, ())
        return self.state.get(k, self.initial(k))

    def runs(self, t: Txn) -> bool:
        """Would t's reads match if it ran now?"""
        local: dict[Any, Any] = {}
        check = t.type == "ok"
        for f, k, v in t.mops:
            cur = local[k] if k in local else self.get(k)
            if f == "r":
                if check and cur != v:
                    return False
            elif self.list:
                local[k] = (*cur, v)
            else:
                local[k] = v
        return True

    def apply(self, t: Txn) -> dict[Any, Any]:
        """Run t; returns the previous values of the keys it wrote (to undo)."""
        undo: dict[Any, Any] = {}
        for f, k, v in t.mops:
            if f == "r":
                continue
            if k not in undo:
                undo[k] = self.state.get(k, _ABSENT)
            self.state[k] = (*self.get(k), v) if self.list else v
        return undo

    def undo(self, undo: dict[Any, Any]) -> None:
        for k, v in undo.items():
            if v is _ABSENT:
                self.state.pop(k, None)
            else:
                self.state[k] = v

    def key(self) -> tuple[Any, ...]:
        return tuple(sorted(((repr(k), v) for k, v in self.state.items()), key=lambda kv: kv[0]))


_ABSENT = object()


def _writes(t: Txn) -> set[Any]:
    return {k for f, k, _ in t.mops if f != "r"}


def _needs(t: Txn, replay: _Replay) -> dict[Any, Any]:
    """The state of each key t's reads require when it starts (ok txns only)."""
    if t.type != "ok":
        return {}
    own: dict[Any, int] = {}
    out: dict[Any, Any] = {}
    for f, k, v in t.mops:
        if f == "r":
            if k not in out:
                if replay.list:
                    n = own.get(k, 0)
                    out[k] = v[: len(v) - n] if n <= len(v) else v
                elif k not in own:
                    out[k] = v
        else:
            own[k] = own.get(k, 0) + 1
    return out


def find(txns: list[Txn], include: set[int], g: DepGraph, mask: int, kind: str,
         initial: Callable[[Any], Any], deadline: Deadline) -> Witness:
    """A serial order of the included txns (see the module rules)."""
    ids = sorted(include)
    preds: dict[int, int] = dict.fromkeys(ids, 0)
    succ: dict[int, list[int]] = {i: [] for i in ids}
    for a in ids:
        for b, bits in g.out[a].items():
            if bits & mask and b in preds:
                succ[a].append(b)
                preds[b] += 1
    replay = _Replay(kind, initial)
    if len(ids) <= EXHAUSTIVE:
        return _exhaustive(txns, ids, preds, succ, replay, deadline)
    return _greedy(txns, ids, preds, succ, replay, deadline)


def _exhaustive(txns: list[Txn], ids: list[int], preds: dict[int, int], succ: dict[int, list[int]],
                replay: _Replay, deadline: Deadline) -> Witness:
    failed: set[tuple[frozenset[int], tuple[Any, ...]]] = set()
    placed: list[int] = []
    indeg = dict(preds)
    cut = False

    def dfs() -> bool:
        nonlocal cut
        if len(placed) == len(ids):
            return True
        if deadline.passed():
            cut = True
            return False
        memo = (frozenset(placed), replay.key())
        if memo in failed:
            return False
        for t in ids:
            if indeg[t] or t in placed or not replay.runs(txns[t]):
                continue
            undo = replay.apply(txns[t])
            placed.append(t)
            for b in succ[t]:
                indeg[b] -= 1
            if dfs():
                return True
            for b in succ[t]:
                indeg[b] += 1
            placed.pop()
            replay.undo(undo)
            if cut:
                return False
        failed.add(memo)
        return False

    if dfs():
        return Witness(True, True, list(placed), f"a serial order of all {len(ids)} txns replays every read")
    if cut:
        return Witness(False, False, None, "the search for a serial order was cut short by the time limit")
    return Witness(False, True, None, f"no order of these {len(ids)} txns allowed by the dependencies replays "
                   "every read (searched them all)")


def _greedy(txns: list[Txn], ids: list[int], preds: dict[int, int], succ: dict[int, list[int]],
            replay: _Replay, deadline: Deadline) -> Witness:
    needs = {t: _needs(txns[t], replay) for t in ids}
    writes = {t: _writes(txns[t]) for t in ids}
    want: dict[tuple[Any, Any], int] = {}  # (key, state) -> txns yet to place that need it
    for t in ids:
        for k, v in needs[t].items():
            want[(k, v)] = want.get((k, v), 0) + 1
    indeg = dict(preds)
    due = {t: txns[t].complete_pos if txns[t].complete_pos is not None else INFINITY for t in ids}
    ready_readers: dict[Any, set[int]] = {}  # key -> ready txns that need a state of it
    mismatched: dict[int, int] = {}  # ready txn -> how many of its needs the state does not meet
    readonly: list[int] = []
    writers: list[tuple[int, int, int]] = []  # heap of (due, invoke position, id) of runnable writers
    order: list[int] = []

    def runnable(t: int) -> None:
        if writes[t]:
            heapq.heappush(writers, (due[t], txns[t].invoke_pos, t))
        else:
            readonly.append(t)

    def becomes_ready(t: int) -> None:
        n = 0
        for k, v in needs[t].items():
            ready_readers.setdefault(k, set()).add(t)
            if replay.get(k) != v:
                n += 1
        mismatched[t] = n
        if n == 0:
            runnable(t)

    for t in ids:
        if indeg[t] == 0:
            becomes_ready(t)

    def place(t: int) -> None:
        del mismatched[t]
        for k in needs[t]:
            ready_readers[k].discard(t)
            want[(k, needs[t][k])] -= 1
        before = {k: replay.get(k) for k in writes[t]}
        replay.apply(txns[t])
        order.append(t)
        for k in writes[t]:
            old, new = before[k], replay.get(k)
            for r in ready_readers.get(k, ()):
                need = needs[r][k]
                was, now = need == old, need == new
                if was and not now:
                    mismatched[r] += 1
                elif now and not was:
                    mismatched[r] -= 1
                    if mismatched[r] == 0:
                        runnable(r)
        for b in succ[t]:
            indeg[b] -= 1
            if indeg[b] == 0:
                becomes_ready(b)

    def safe(t: int) -> bool:
        for k in writes[t]:
            cur = (k, replay.get(k))
            mine = 1 if needs[t].get(k, _ABSENT) == cur[1] else 0
            if want.get(cur, 0) > mine:
                return False
        return True

    steps = 0
    while len(order) < len(ids):
        steps += 1
        if steps % 1024 == 0 and deadline.passed():
            return Witness(False, False, None, "the search for a serial order was cut short by the time limit")
        while readonly:
            t = readonly.pop()
            if t in mismatched and mismatched[t] == 0 and replay.runs(txns[t]):
                place(t)
        if len(order) == len(ids):
            break
        chosen = None
        stash = []
        while writers:
            item = heapq.heappop(writers)
            t = item[2]
            if t not in mismatched or mismatched[t] or not replay.runs(txns[t]):
                continue  # placed already, or no longer matching: it is re-queued when it matches again
            if safe(t):
                chosen = t
                break
            stash.append(item)
        if chosen is None and stash:
            chosen = stash.pop(0)[2]
        for item in stash:
            heapq.heappush(writers, item)
        if chosen is None:
            stuck = len(ids) - len(order)
            return Witness(False, False, None, f"the greedy search for a serial order got stuck with {stuck} of "
                           f"{len(ids)} txns left (too many to search them all)")
        place(chosen)
    return Witness(True, False, order, f"a serial order of all {len(ids)} txns replays every read")
