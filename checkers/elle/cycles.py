"""Finding and naming cycles in the dependency graph, as Elle does.

Rules:

- Cycle-existence first (Elle's "-cycle-exists" anomalies): for each model
  (read-uncommitted … strict-serializable) the graph is projected to the
  edges that model cannot have in a cycle (e.g. ww+wr for read-committed;
  ww+wr extended by one rw step for snapshot isolation) and a non-trivial
  strongly connected component there proves the model violated, even if no
  particular cycle is found in time. A model already ruled out by a stronger
  finding is skipped.
- Then, in each strongly connected component of the whole graph, one cycle of
  each anomaly type (CYCLE_TYPES, worst first in Elle's order), skipping types
  implied by one already found there. A type is a spec: the relations its
  cycle may use, how many read-write edges (none, exactly one, two or more
  never adjacent, two or more some adjacent) and whether it needs a wr edge
  or a process / real-time edge. A search starts from one edge of the rarest
  required relation and runs a breadth-first search back to its start over
  (txn, state) pairs, the state tracking what the spec counts; so the cycle
  found is a shortest one for that start, and its name (cycle_type of its
  edge labels) is the spec's by construction.
- Each type tries at most `max_starts` start edges per component, and stops
  at the deadline; a search cut short is a "cycle-search-timeout" anomaly
  naming the type it was looking for, which makes the verdict "unknown"
  unless something else already made it False.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from checkers.elle import anomalies as A
from checkers.elle.graph import NAMES, PROCESS, REALTIME, RW, WR, WW, DepGraph, sccs


class Deadline:
    def __init__(self, at: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.at = at
        self.clock = clock
        self.hit = False

    def passed(self) -> bool:
        if not self.hit and self.clock() > self.at:
            self.hit = True
        return self.hit


@dataclass(frozen=True, slots=True)
class Step:
    """One edge of a cycle: a precedes b because of rel."""

    a: int
    b: int
    rel: int


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    rels: int
    """Relations usable freely (ww, wr)."""
    rw: str
    """"none", "single", "nonadjacent" or "adjacent" (two or more, some adjacent)."""
    need_wr: bool = False
    extra: int = 0
    """PROCESS or REALTIME: usable, and needed at least once."""

    @property
    def allowed(self) -> int:
        return self.rels | (0 if self.rw == "none" else RW) | self.extra

    @property
    def anchor(self) -> int:
        if self.rw != "none":
            return RW
        if self.need_wr:
            return WR
        return self.extra or WW


def _specs() -> dict[str, Spec]:
    base = [
        Spec("G0", WW, "none"),
        Spec("G1c", WW | WR, "none", need_wr=True),
        Spec("G-single-item", WW | WR, "single"),
        Spec("G-nonadjacent-item", WW | WR, "nonadjacent"),
        Spec("G2-item", WW | WR, "adjacent"),
    ]
    out = {s.name: s for s in base}
    for extra, suffix in ((PROCESS, "-process"), (REALTIME, "-realtime")):
        for s in base:
            out[s.name + suffix] = Spec(s.name + suffix, s.rels, s.rw, s.need_wr, extra)
    return out


SPECS = _specs()

# (canonical model, relations whose cycles it forbids, relations one extra step of which it also forbids)
EXISTS: list[tuple[str, int, int]] = [
    ("PL-1", WW, 0),
    ("PL-2", WW | WR, 0),
    ("PL-SI", WW | WR, RW),
    ("PL-2.99", WW | WR | RW, 0),
    ("PL-3", WW | WR | RW, 0),
    ("strong-session-PL-1", WW | PROCESS, 0),
    ("strong-session-PL-2", WW | WR | PROCESS, 0),
    ("strong-session-snapshot-isolation", WW | WR | PROCESS, RW),
    ("strong-session-serializable", WW | WR | RW | PROCESS, 0),
    ("strong-PL-1", WW | REALTIME, 0),
    ("strong-PL-2", WW | WR | REALTIME, 0),
    ("strong-snapshot-isolation", WW | WR | REALTIME, RW),
    ("PL-SS", WW | WR | RW | REALTIME, 0),
]


def cycle_exists(g: DepGraph, present: int, names: Callable[[list[int]], list[str]]) -> list[dict[str, Any]]:
    """Elle's cycle-existence cases, one per model whose forbidden subgraph has a cycle (smallest component)."""
    whole = sccs(range(g.n), g.successors(present))
    members = {v for c in whole for v in c}
    if not members:
        return []
    found: list[dict[str, Any]] = []
    impossible: set[str] = set()
    for model, rels, ext in EXISTS:
        if model in impossible or (rels | ext) & ~present & (PROCESS | REALTIME):
            continue
        succ = _extension(g, rels, ext, members) if ext else g.successors(rels, members)
        comps = sccs(sorted(members), succ)
        if not comps:
            continue
        smallest = min(comps, key=len)
        spec = [NAMES[r] for r in NAMES if r & rels]
        subgraph: Any = ["union", *spec] if not ext else ["extension", ["union", *spec], ["union", NAMES[ext]]]
        found.append({
            "type": f"{model}-cycle-exists", "not": A.friendly(model), "subgraph": subgraph,
            "scc_size": len(smallest), "scc": names(smallest),
        })
        impossible |= A._reach(A._MODEL_IMPLIED_BY, [model])
    return found


def _extension(g: DepGraph, rels: int, ext: int, members: set[int]) -> Callable[[int], list[int]]:
    """A U (A;B): a step of `rels`, optionally followed by one step of `ext`."""
    out = g.out

    def succ(u: int) -> list[int]:
        nxt: dict[int, None] = {}
        for v, bits in out[u].items():
            if bits & rels and v in members:
                nxt[v] = None
                for w, bits2 in out[v].items():
                    if bits2 & ext and w in members:
                        nxt[w] = None
        return list(nxt)

    return succ


def search(g: DepGraph, members: set[int], spec: Spec, deadline: Deadline, max_starts: int = 64) -> list[Step] | None:
    """A cycle matching spec inside members, or None (also when cut short: check deadline.hit)."""
    allowed = spec.allowed
    sub = sccs(sorted(members), g.successors(allowed, members))
    if not sub:
        return None
    if spec.rw in ("single", "nonadjacent") and not sccs(sorted(members), _extension(g, spec.rels | spec.extra, RW,
                                                                                       members)):
        return None  # no cycle where every rw edge follows another relation (Elle's SI subgraph): none of these
    comp_of = {v: i for i, c in enumerate(sub) for v in c}
    starts = 0
    for comp in sub:
        for a in comp:
            for b, bits in g.out[a].items():
                if not bits & spec.anchor or comp_of.get(b) != comp_of[a]:
                    continue
                if starts >= max_starts or deadline.passed():
                    return None
                starts += 1
                found = _from_edge(g, set(comp), spec, a, b, deadline)
                if found is not None:
                    return found
    return None


# A search state, packed in 6 bits: last edge was rw (1), rw edges so far capped at 2 (2, 4), two rw edges
# adjacent so far (8), extra relation seen (16), wr seen (32).
_LAST, _ONE, _TWO, _ADJ, _EXTRA, _WR = 1, 2, 4, 8, 16, 32
_RELS = (WW, WR, RW, PROCESS, REALTIME)


def _next(spec: Spec, s: int, r: int) -> int:
    """The state after taking an edge as relation r, or -1 when the spec forbids it."""
    n_rw = 2 if s & _TWO else (1 if s & _ONE else 0)
    if r == RW:
        if spec.rw == "single" and n_rw >= 1:
            return -1
        if spec.rw == "nonadjacent" and s & _LAST:
            return -1
        adj = _ADJ if s & (_ADJ | _LAST) else 0
        return _LAST | (_TWO if n_rw >= 1 else _ONE) | adj | (s & (_EXTRA | _WR))
    out = s & ~_LAST
    if r == spec.extra:
        out |= _EXTRA
    if r == WR:
        out |= _WR
    return out


def _closes(spec: Spec, s: int, first_rw: bool) -> bool:
    if spec.extra and not s & _EXTRA:
        return False
    if spec.need_wr and not s & _WR:
        return False
    wrap = bool(s & _LAST) and first_rw
    match spec.rw:
        case "none":
            return True
        case "single":
            return bool(s & _ONE)
        case "nonadjacent":
            return bool(s & _TWO) and not wrap
        case _:
            return bool(s & _TWO) and (bool(s & _ADJ) or wrap)


def _tables(spec: Spec) -> tuple[list[list[tuple[int, int]]], list[bool]]:
    """For each state and edge bitmask (0..31): the (relation, next state) moves; and which states close a cycle."""
    allowed = spec.allowed
    moves = []
    for s in range(64):
        row = []
        for bits in range(32):
            row.append([(r, n) for r in _RELS if bits & allowed & r and (n := _next(spec, s, r)) >= 0])
        moves.append(row)
    return moves, [_closes(spec, s, spec.anchor == RW) for s in range(64)]


_TABLES: dict[str, Any] = {}


def _from_edge(g: DepGraph, comp: set[int], spec: Spec, a: int, b: int, deadline: Deadline) -> list[Step] | None:
    """Shortest cycle a -> b -> ... -> a through the anchor edge a -> b (used as spec.anchor)."""
    if spec.name not in _TABLES:
        _TABLES[spec.name] = _tables(spec)
    moves, closes = _TABLES[spec.name]
    start = _next(spec, 0, spec.anchor)
    allowed = spec.allowed
    prev: dict[int, tuple[int, int]] = {b << 6 | start: (-1, 0)}
    queue = deque([b << 6 | start])
    expanded = 0
    out = g.out
    while queue:
        key = queue.popleft()
        u, s = key >> 6, key & 63
        expanded += 1
        if expanded & 2047 == 0 and deadline.passed():
            return None
        row = moves[s]
        for v, bits in out[u].items():
            if not bits & allowed or v not in comp:
                continue
            for r, ns in row[bits & 31]:
                if v == a:
                    if closes[ns]:
                        steps = _walk(prev, key)
                        cycle = [Step(a, b, spec.anchor), *steps, Step(u, a, r)]
                        if len({st.a for st in cycle}) == len(cycle):
                            return cycle
                    continue
                nk = v << 6 | ns
                if nk not in prev:
                    prev[nk] = (key, r)
                    queue.append(nk)
    return None


def _walk(prev: dict[int, tuple[int, int]], end: int) -> list[Step]:
    steps: list[Step] = []
    cur = end
    while (p := prev[cur])[0] != -1:
        pk, r = p
        steps.append(Step(pk >> 6, cur >> 6, r))
        cur = pk
    steps.reverse()
    return steps


def label(steps: Iterable[Step]) -> str:
    return A.cycle_type([NAMES[s.rel] for s in steps])


def find_cycles(
    g: DepGraph,
    present: int,
    deadline: Deadline,
    report: Callable[[str, list[Step]], None],
    timeout: Callable[[str, int, list[str]], None],
    max_starts: int = 64,
) -> int:
    """One cycle per anomaly type per component of the graph (edges of `present` relations); returns components."""
    types = [t for t in A.depth_order(SPECS) if not SPECS[t].extra & ~present]
    comps = sccs(range(g.n), g.successors(present))
    for comp in comps:
        members = set(comp)
        redundant: set[str] = set()
        searched: list[str] = []
        found_here: list[str] = []
        for t in types:
            if t in redundant:
                continue
            if deadline.passed():
                timeout(t, len(comp), [x for x in searched if x not in found_here])
                return len(comps)
            steps = search(g, members, SPECS[t], deadline, max_starts)
            if deadline.hit and steps is None:
                timeout(t, len(comp), [x for x in searched if x not in found_here])
                return len(comps)
            searched.append(t)
            if steps is not None:
                assert label(steps) == t, (label(steps), t)
                found_here.append(t)
                report(t, steps)
                redundant |= A.implied_anomalies([t])
    return len(comps)
