"""Just-in-time linearization (Lowe) over a frontier of configurations, for one independent part.

The history is read once, event by event. A configuration is (state, the
`ok` ops linearized ahead of their return, the unknown-outcome ops used); the
frontier holds every configuration reachable so far. A call only makes its op
pending. At the return of op o, each configuration linearizes o, after any
sequence of pending ops it needs first (the closure); ops that could also go
after o are left for a later closure. Nothing is lost by this laziness: an op
linearized later than needed is still pending then. The history is
linearizable iff the frontier is never empty.

Rules kept, with the same reductions as the WGL search (search.py): a legal
pending read-only op is linearized at once with no alternatives; a total
unknown-outcome op that would change nothing is never tried; of
interchangeable unknown-outcome ops only the earliest called unused one is
tried; a configuration is dropped when another with the same state and
ahead-set used a subset of its unknown-outcome ops (dominance), both in the
frontier and inside a closure. Dominance also counts subsumption
(`model.stronger`): an unused write of v can stand in for an unused cas to
v, so a configuration that kept the write dominates one that kept the cas.

It complements the depth-first search: its cost grows with the number of
configurations alive at once, not with how far back a dead end is, so it
decides long histories with a violation late in them, where the depth-first
search must revisit every earlier choice. It is weak where many ops are
pending at once (the closure orders them all).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from checkers.linearizable.models import ILLEGAL, Model, Operation
from checkers.linearizable.search import Progress, entry_bytes, stuck_after

Path = tuple[int, Any] | None  # (op, parent path): a persistent list, newest first


def _path_list(path: Path) -> list[int]:
    out = []
    while path is not None:
        out.append(path[0])
        path = path[1]
    out.reverse()
    return out


def _admit(table: dict[tuple[Any, int], list[tuple[int, Path]]], key: tuple[Any, int], used: int,
           path: Path, better: Any) -> bool:
    """Record (used, path) under key unless a recorded entry is at least as good; drop the ones it beats."""
    lst = table.get(key)
    if lst is None:
        table[key] = [(used, path)]
        return True
    for u, _ in lst:
        if u & used == u or better(u, used):
            return False
    lst[:] = [(u, p) for u, p in lst if not (u & used == used or better(used, u))]
    lst.append((used, path))
    return True


class JitSearch:
    """Resumable frontier search; same interface as search.Search."""

    def __init__(self, model: Model, ops: list[Operation]) -> None:
        self.model = model
        self.ops = ops
        n = len(ops)
        self.fns = [model.compile(op) for op in ops]
        self.read_only = [model.read_only(op) for op in ops]
        self.noop_skip = [op.info and model.total(op) for op in ops]
        self.bits = [1 << i for i in range(n)]
        events: list[tuple[int, int, int]] = []  # (position, 0 return | 1 call, op)
        for i, op in enumerate(ops):
            events.append((op.call, 1, i))
            if not op.info and op.ret is not None:
                events.append((op.ret, 0, i))
        events.sort()
        self.events = events
        self.progress = Progress(best_state=model.init())
        self.result: bool | None = None
        self._size = 0
        self._gen: Iterator[int] | None = self._search()
        self._budget = 0
        self._frontier: dict[tuple[Any, int], list[tuple[int, Path]]] | None = None

    def memory_bytes(self) -> int:
        # An entry here (configuration, path node, pending stack slot) costs about twice a DFS memo entry
        # (measured against RSS on Porcupine's c50-bad key "0").
        return 2 * self._size * entry_bytes(sys.getsizeof(self.progress.best_state), len(self.ops))

    def drop_cache(self) -> None:
        self._gen = None

    def stuck_ops(self) -> list[int]:
        return stuck_after(self.ops, self.progress.best_prefix)

    def run(self, max_steps: int) -> bool | None:
        if self.result is not None or self._gen is None:
            return self.result
        self._budget = max_steps
        for _ in self._gen:  # it yields whenever the budget is spent, and ends when decided
            break
        self.progress.cache_entries = self._size
        if self._frontier is not None:
            self._record(self._frontier)
        return self.result

    def _search(self) -> Iterator[int]:
        fns, read_only, noop_skip, bits, ops = self.fns, self.read_only, self.noop_skip, self.bits, self.ops
        progress = self.progress
        frontier: dict[tuple[Any, int], list[tuple[int, Path]]] = {(self.model.init(), 0): [(0, None)]}
        pending: list[int] = []  # ok ops called and not returned, in call order
        # Unknown-outcome ops called so far, by class (f, argument): (members in call order, their bits).
        # Reduction 4 keeps the used members of a class a prefix of it.
        classes: list[tuple[list[int], int]] = []
        class_index: dict[tuple[str, Any], int] = {}
        class_of = {i: (op.f, op.arg) for i, op in enumerate(ops) if op.info}
        parent_of: list[int] = []  # class -> the class that subsumes it, or -1
        parent_keys: list[Any] = []
        kids: dict[int, list[int]] = {}
        stronger = {i: self.model.stronger(op) for i, op in enumerate(ops) if op.info}
        stronger = {i: k for i, k in stronger.items() if k is not None}

        groups: list[tuple[int, tuple[int, ...]]] = []  # (class, the classes it subsumes), top-level classes
        vectors: dict[int, tuple[int, ...]] = {}  # used set -> how many of each class it used

        def better(ub: int, ua: int) -> bool:
            """Can a configuration that used `ub` do whatever one that used `ua` can (subsumption)?"""
            if not kids or ub.bit_count() > ua.bit_count():
                return False
            vb = vectors.get(ub)
            if vb is None:
                vb = vectors[ub] = tuple((ub & m).bit_count() for _, m in classes)
            va = vectors.get(ua)
            if va is None:
                va = vectors[ua] = tuple((ua & m).bit_count() for _, m in classes)
            for p, ch in groups:
                surplus = va[p] - vb[p]
                if surplus < 0:
                    return False
                for c in ch:
                    d = vb[c] - va[c]
                    if d > 0:
                        surplus -= d
                        if surplus < 0:
                            return False
            return True

        steps = 0
        for _, is_call, o in self.events:
            if is_call:
                if ops[o].info:
                    c = class_of[o]
                    if c not in class_index:
                        ci = class_index[c] = len(classes)
                        classes.append(([], 0))
                        parent_of.append(class_index.get(stronger.get(o), -1))
                        if parent_of[ci] >= 0:
                            kids.setdefault(parent_of[ci], []).append(ci)
                        for cj, pk in enumerate(parent_keys):
                            if pk == c:
                                parent_of[cj] = ci
                                kids.setdefault(ci, []).append(cj)
                        parent_keys.append(stronger.get(o))
                    members, mask = classes[class_index[c]]
                    members.append(o)
                    classes[class_index[c]] = (members, mask | bits[o])
                    vectors.clear()
                    groups[:] = [(ci, tuple(kids.get(ci, ()))) for ci in range(len(classes)) if parent_of[ci] < 0]
                else:
                    pending.append(o)
                continue
            bo = bits[o]
            if len(vectors) > 100_000:
                vectors.clear()
            new: dict[tuple[Any, int], list[tuple[int, Path]]] = {}
            seen: dict[tuple[Any, int], list[tuple[int, Path]]] = {}
            for (state0, ahead0), lst in frontier.items():
                for used0, path0 in lst:
                    if ahead0 & bo:
                        _admit(new, (state0, ahead0 & ~bo), used0, path0, better)
                        steps += 1
                        if steps >= self._budget:
                            progress.steps += steps
                            steps = 0
                            yield 0
                        continue
                    stack = [(state0, ahead0, used0, path0)]
                    while stack:
                        state, ahead, used, path = stack.pop()
                        steps += 1
                        if steps >= self._budget:
                            progress.steps += steps
                            steps = 0
                            self._size = (sum(map(len, frontier.values())) + sum(map(len, seen.values()))
                                          + sum(map(len, new.values())) + len(stack))
                            yield 0
                        forced = -1
                        for x in pending:
                            if read_only[x] and not ahead & bits[x] and fns[x](state) is not ILLEGAL:
                                forced = x
                                break
                        if forced >= 0:
                            nxt_path = (forced, path)
                            if forced == o:
                                _admit(new, (state, ahead), used, nxt_path, better)
                            elif _admit(seen, (state, ahead | bits[forced]), used, nxt_path, better):
                                stack.append((state, ahead | bits[forced], used, nxt_path))
                            continue
                        for x in pending:
                            bx = bits[x]
                            if ahead & bx or read_only[x]:
                                continue
                            ns = fns[x](state)
                            if ns is ILLEGAL:
                                continue
                            if x == o:
                                _admit(new, (ns, ahead), used, (x, path), better)
                            elif _admit(seen, (ns, ahead | bx), used, (x, path), better):
                                stack.append((ns, ahead | bx, used, (x, path)))
                        for members, mask in classes:
                            k = (used & mask).bit_count()  # the used ones are the first k called
                            if k == len(members):
                                continue
                            x = members[k]
                            ns = fns[x](state)
                            if ns is ILLEGAL or (noop_skip[x] and ns == state):
                                continue
                            bx = bits[x]
                            if _admit(seen, (ns, ahead), used | bx, (x, path), better):
                                stack.append((ns, ahead, used | bx, (x, path)))
            pending.remove(o)
            if not new:
                progress.steps += steps
                self.result = False
                return
            frontier = new
            self._frontier = frontier
        progress.steps += steps
        self.result = True

    def _record(self, frontier: dict[tuple[Any, int], list[tuple[int, Path]]]) -> None:
        """The progress so far: one configuration's linearization (they are all equally far along)."""
        for (state, _), lst in frontier.items():
            for _, path in lst:
                p = _path_list(path)
                if len(p) >= len(self.progress.best_prefix):
                    self.progress.best_prefix = p
                    self.progress.best_state = state
                return
