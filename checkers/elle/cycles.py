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


# A search state: (last edge was rw, rw edges so far capped at 2, two rw adjacent so far, extra seen, wr seen).
State = tuple[bool, int, bool, bool, bool]


def _step(spec: Spec, s: State, r: int) -> State | None:
    last_rw, n_rw, adj, extra, wr = s
    if r == RW:
        if spec.rw == "single" and n_rw >= 1:
            return None
        if spec.rw == "nonadjacent" and last_rw:
            return None
        return (True, min(2, n_rw + 1), adj or last_rw, extra, wr)
    return (False, n_rw, adj, extra or r == spec.extra, wr or r == WR)


def _closes(spec: Spec, s: State, first_rw: bool) -> bool:
    last_rw, n_rw, adj, extra, wr = s
    if spec.extra and not extra:
        return False
    if spec.need_wr and not wr:
        return False
    match spec.rw:
        case "none":
            return True
        case "single":
            return n_rw == 1
        case "nonadjacent":
            return n_rw >= 2 and not (last_rw and first_rw)
        case _:
            return n_rw >= 2 and (adj or (last_rw and first_rw))


def _uses(bits: int, allowed: int) -> list[int]:
    usable = bits & allowed
    return [r for r in (WW, WR, RW, PROCESS, REALTIME) if usable & r]


def _from_edge(g: DepGraph, comp: set[int], spec: Spec, a: int, b: int, deadline: Deadline) -> list[Step] | None:
    """Shortest cycle a -> b -> ... -> a through the anchor edge a -> b (used as spec.anchor)."""
    start = _step(spec, (False, 0, False, False, False), spec.anchor)
    assert start is not None
    first_rw = spec.anchor == RW
    allowed = spec.allowed
    prev: dict[tuple[int, State], tuple[int, State, int] | None] = {(b, start): None}
    queue = deque([(b, start)])
    expanded = 0
    out = g.out
    while queue:
        u, s = queue.popleft()
        expanded += 1
        if expanded % 2048 == 0 and deadline.passed():
            return None
        for v, bits in out[u].items():
            if v not in comp or not bits & allowed:
                continue
            for r in _uses(bits, allowed):
                ns = _step(spec, s, r)
                if ns is None:
                    continue
                if v == a:
                    if _closes(spec, ns, first_rw):
                        steps = _walk(prev, (u, s))
                        cycle = [Step(a, b, spec.anchor), *steps, Step(u, a, r)]
                        if len({st.a for st in cycle}) == len(cycle):
                            return cycle
                    continue
                if (v, ns) not in prev:
                    prev[(v, ns)] = (u, s, r)
                    queue.append((v, ns))
    return None


def _walk(prev: dict[tuple[int, State], tuple[int, State, int] | None], end: tuple[int, State]) -> list[Step]:
    steps: list[Step] = []
    cur = end
    while (p := prev[cur]) is not None:
        pu, ps, r = p
        steps.append(Step(pu, cur[0], r))
        cur = (pu, ps)
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
