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
  txn still to be placed needs, most urgent first: a writer is due by its own
  completion or by the earliest completion of a txn that reads what it
  writes, whichever comes first. At a dead end it learns one ordering
  constraint from the conflict (see _conflict) and goes back to a snapshot
  taken before the txns involved were placed (at most MAX_RESTARTS times), so
  the work stays linear when dead ends are few and local. A greedy failure
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
MAX_RESTARTS = 10_000
SNAPSHOT_EVERY = 2048
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


def _version(replay: _Replay, v: Any) -> Any:
    """Which write a required state shows: the value (register) or the last element (list, None if empty)."""
    return (v[-1] if v else None) if replay.list else v


def _greedy(txns: list[Txn], ids: list[int], preds: dict[int, int], succ: dict[int, list[int]],
            replay: _Replay, deadline: Deadline) -> Witness:
    """The greedy search with learning: at a dead end it learns one ordering constraint from the conflict and
    goes back to the last snapshot taken before the txns involved were placed (snapshots every SNAPSHOT_EVERY
    placements, or n/16); when no constraint is left to learn, it takes back the latest guess that had another
    option."""
    succ = {t: list(bs) for t, bs in succ.items()}
    search = _Greedy(txns, ids, dict(preds), succ, replay)
    learned: list[tuple[int, int]] = []
    snapshots = [(0, search.snapshot(), 0)]  # (txns placed, state, constraints learned by then)
    decisions: list[tuple[list[tuple[int, int]], int, int, int]] = []  # (options, chosen, learned, snapshots)

    def back_to(first: int) -> None:
        while snapshots[-1][0] > first:
            snapshots.pop()
        _, snap, known = snapshots[-1]
        search.restore(snap)
        for x, y in learned[known:]:  # constraints the snapshot predates
            search.constrain(x, y)

    def learn(edge: tuple[int, int]) -> None:
        a, b = edge
        learned.append(edge)
        succ[a].append(b)
        back_to(min(search.pos.get(a, INFINITY), search.pos.get(b, INFINITY)))

    every = max(SNAPSHOT_EVERY, len(ids) // 16)  # a snapshot copies O(n): at most ~16 of them keeps it linear
    steps = 0
    while not search.done():
        steps += 1
        if steps % 1024 == 0 and deadline.passed():
            return Witness(False, False, None, "the search for a serial order was cut short by the time limit")
        if search.step():
            if len(search.order) - snapshots[-1][0] >= every:
                snapshots.append((len(search.order), search.snapshot(), len(learned)))
            continue
        if len(learned) >= MAX_RESTARTS:
            break
        options = [c for c in search.conflicts() if c not in learned]
        if options:
            decisions.append((options, 0, len(learned), len(snapshots)))
            learn(options[0])
            continue
        while decisions and decisions[-1][1] + 1 >= len(decisions[-1][0]):
            decisions.pop()
        if not decisions:
            break
        options, chosen, n, n_snapshots = decisions.pop()
        for a, b in learned[n:]:
            succ[a].remove(b)
        del learned[n:]
        del snapshots[n_snapshots:]
        back_to(INFINITY)
        decisions.append((options, chosen + 1, n, n_snapshots))
        learn(options[chosen + 1])
    if not search.done():
        left = len(ids) - len(search.order)
        return Witness(False, False, None, f"the greedy search for a serial order got stuck with {left} of "
                       f"{len(ids)} txns left (too many to search them all)")
    tail = f" (after learning {len(learned)} ordering constraint(s) from dead ends)" if learned else ""
    return Witness(True, False, search.order, f"a serial order of all {len(ids)} txns replays every read{tail}")


class _Greedy:
    """The state of one greedy search, with snapshots to go back to."""

    def __init__(self, txns: list[Txn], ids: list[int], indeg: dict[int, int], succ: dict[int, list[int]],
                 replay: _Replay) -> None:
        self.txns, self.ids, self.indeg, self.succ, self.replay = txns, ids, indeg, succ, replay
        self.needs = {t: _needs(txns[t], replay) for t in ids}
        self.writes = {t: _writes(txns[t]) for t in ids}
        self.want: dict[tuple[Any, Any], int] = {}  # (key, state) -> txns yet to place that need it
        for t in ids:
            for k, v in self.needs[t].items():
                self.want[(k, v)] = self.want.get((k, v), 0) + 1
        due = {t: txns[t].complete_pos if txns[t].complete_pos is not None else INFINITY for t in ids}
        self.due = due
        # A writer is as urgent as the earliest deadline of the txns that must read what it writes: the value
        # has to be there by then (and a write with no reader waits for its own deadline).
        first_reader: dict[tuple[Any, Any], int] = {}
        for t in ids:
            for k, v in self.needs[t].items():
                version = (k, _version(replay, v))
                first_reader[version] = min(first_reader.get(version, INFINITY), due[t])
        self.urgency = {}
        for t in ids:
            installs = {k: v for f, k, v in txns[t].mops if f != "r"}
            self.urgency[t] = min([due[t], *(first_reader.get((k, v), INFINITY) for k, v in installs.items())])
        self.ready_readers: dict[Any, set[int]] = {}  # key -> ready txns that need a state of it
        self.mismatched: dict[int, int] = {}  # ready txn -> how many of its needs the state does not meet
        self.readonly: list[int] = []
        self.writers: list[tuple[int, int, int]] = []  # heap of (urgency, invoke position, id) of runnable writers
        self.order: list[int] = []
        self.pos: dict[int, int] = {}
        self.installed_by: dict[tuple[Any, Any], int] = {}  # (key, version) -> the placed txn that wrote it
        self.last_writer: dict[Any, int] = {}
        for t in ids:
            if indeg[t] == 0:
                self._ready(t)

    def snapshot(self) -> tuple[Any, ...]:
        return (dict(self.replay.state), dict(self.indeg), dict(self.want), {k: set(v) for k, v in
                self.ready_readers.items() if v}, dict(self.mismatched), list(self.readonly), list(self.writers),
                len(self.order), dict(self.installed_by), dict(self.last_writer))

    def restore(self, snap: tuple[Any, ...]) -> None:
        (state, indeg, want, ready_readers, mismatched, readonly, writers, n, installed_by, last_writer) = snap
        self.replay.state = dict(state)
        self.indeg, self.want = dict(indeg), dict(want)
        self.ready_readers = {k: set(v) for k, v in ready_readers.items()}
        self.mismatched, self.readonly, self.writers = dict(mismatched), list(readonly), list(writers)
        for t in self.order[n:]:
            del self.pos[t]
        del self.order[n:]
        self.installed_by, self.last_writer = dict(installed_by), dict(last_writer)

    def constrain(self, a: int, b: int) -> None:
        """Count the edge a -> b (already in succ) in b's predecessors, as if it had always been there."""
        if a in self.pos:
            return
        self.indeg[b] += 1
        if b in self.mismatched:  # no longer ready; stale queue entries are skipped
            del self.mismatched[b]
            for k in self.needs[b]:
                self.ready_readers.get(k, set()).discard(b)

    def done(self) -> bool:
        return len(self.order) == len(self.ids)

    def _runnable(self, t: int) -> None:
        if self.writes[t]:
            heapq.heappush(self.writers, (self.urgency[t], self.txns[t].invoke_pos, t))
        else:
            self.readonly.append(t)

    def _ready(self, t: int) -> None:
        n = 0
        for k, v in self.needs[t].items():
            self.ready_readers.setdefault(k, set()).add(t)
            if self.replay.get(k) != v:
                n += 1
        self.mismatched[t] = n
        if n == 0:
            self._runnable(t)

    def _place(self, t: int) -> None:
        replay, needs = self.replay, self.needs
        del self.mismatched[t]
        for k, v in needs[t].items():
            self.ready_readers[k].discard(t)
            self.want[(k, v)] -= 1
        before = {k: replay.get(k) for k in self.writes[t]}
        replay.apply(self.txns[t])
        self.pos[t] = len(self.order)
        self.order.append(t)
        for k in self.writes[t]:
            new = replay.get(k)
            self.installed_by[(k, _version(replay, new))] = t
            self.last_writer[k] = t
            old = before[k]
            for r in self.ready_readers.get(k, ()):
                need = needs[r][k]
                was, now = need == old, need == new
                if was and not now:
                    self.mismatched[r] += 1
                elif now and not was:
                    self.mismatched[r] -= 1
                    if self.mismatched[r] == 0:
                        self._runnable(r)
        for b in self.succ[t]:
            self.indeg[b] -= 1
            if self.indeg[b] == 0:
                self._ready(b)

    def _safe(self, t: int) -> bool:
        for k in self.writes[t]:
            cur = (k, self.replay.get(k))
            mine = 1 if self.needs[t].get(k, _ABSENT) == cur[1] else 0
            if self.want.get(cur, 0) > mine:
                return False
        return True

    def _fits(self, t: int) -> bool:
        return t in self.mismatched and self.mismatched[t] == 0 and self.replay.runs(self.txns[t])

    def step(self) -> bool:
        """Place one txn (a read-only one that fits, else the most urgent safe writer); False at a dead end."""
        while self.readonly:
            t = self.readonly.pop()
            if self._fits(t):
                self._place(t)
                return True
        chosen = None
        stash = []
        while self.writers:
            item = heapq.heappop(self.writers)
            if not self._fits(item[2]):
                continue  # placed already, or no longer matching: it is queued again when it matches again
            if self._safe(item[2]):
                chosen = item[2]
                break
            stash.append(item)
        if chosen is None and stash:
            chosen = stash.pop(0)[2]
        for item in stash:
            heapq.heappush(self.writers, item)
        if chosen is None:
            return False
        self._place(chosen)
        return True

    def conflicts(self) -> list[tuple[int, int]]:
        rev: dict[int, list[int]] = {}
        for a, bs in self.succ.items():
            for b in bs:
                rev.setdefault(b, []).append(a)
        return _conflicts(sorted(self.mismatched, key=lambda t: self.due[t]), self.needs, self.replay,
                          self.installed_by, self.last_writer, rev)


def _conflicts(stuck: list[int], needs: dict[int, dict[Any, Any]], replay: _Replay,
               installed_by: dict[tuple[Any, Any], int], last_writer: dict[Any, int],
               rev: dict[int, list[int]]) -> list[tuple[int, int]]:
    """What to learn from a dead end, best first: a ready txn r needs key k as writer w left it, but w2 wrote
    k since.

    If w2 must precede r (it is r's ancestor), it must precede w as well: w2 -> w. Otherwise either r goes
    before w2 (tried first) or w2 before w. A learned edge only steers the search; the replay still checks
    every read.
    """
    for r in stuck:
        for k, v in needs[r].items():
            if replay.get(k) == v:
                continue
            w2 = last_writer.get(k)
            if w2 is None:
                continue
            w = installed_by.get((k, _version(replay, v)))
            before = [(w2, w)] if w is not None and w != w2 else []
            if _reaches(rev, r, w2):
                return before
            return [(r, w2), *before]
    return []


def _reaches(rev: dict[int, list[int]], start: int, target: int, limit: int = 200_000) -> bool:
    """Is target an ancestor of start (following rev, the predecessor lists)?"""
    seen = {start}
    todo = [start]
    while todo and len(seen) < limit:
        for p in rev.get(todo.pop(), ()):
            if p == target:
                return True
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return False
