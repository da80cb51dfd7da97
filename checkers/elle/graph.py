"""The transaction dependency graph, its strongly connected components, and cycle search.

Rules:

- Nodes are dense txn ids. An edge a -> b carries a bitmask of relations
  (WW, WR, RW, PROCESS, REALTIME); the first evidence given for each
  (a, b, relation) is kept for the explanation, later ones are dropped.
  Self-edges are never stored.
- Cycles are searched only inside non-trivial strongly connected components
  (found with networkx), so an acyclic history costs one linear pass.
- A search is (required relation, allowed relations): for an edge a -> b that
  has the required relation, a breadth-first search finds the shortest path
  b -> ... -> a through allowed edges inside the component; the edge and the
  path form the cycle. Each edge of a cycle is labelled with its relation of
  highest priority among those the search allowed (ww, wr, rw, process,
  realtime), so a cycle is named by the weakest model it refutes.
- Each search tries at most `max_attempts` edges per component and stops at
  the deadline; `exhausted` records that the search was cut short.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx

WW, WR, RW, PROCESS, REALTIME = 1, 2, 4, 8, 16
DEPS = WW | WR | RW
NAMES = {WW: "ww", WR: "wr", RW: "rw", PROCESS: "process", REALTIME: "realtime"}
PRIORITY = (WW, WR, RW, PROCESS, REALTIME)


def best_rel(bits: int) -> int:
    """The highest-priority relation among bits."""
    for r in PRIORITY:
        if bits & r:
            return r
    raise ValueError("no relation")


@dataclass(frozen=True, slots=True)
class Step:
    """One edge of a cycle: a precedes b because of rel."""

    a: int
    b: int
    rel: int


class DepGraph:
    def __init__(self, n: int) -> None:
        self.n = n
        self.out: list[dict[int, int]] = [{} for _ in range(n)]
        self.why: dict[tuple[int, int, int], tuple[Any, ...]] = {}

    def link(self, a: int, b: int, rel: int, why: tuple[Any, ...] | None = None) -> None:
        if a == b:
            return
        o = self.out[a]
        bits = o.get(b, 0)
        if not bits & rel:
            o[b] = bits | rel
            if why is not None:
                self.why[(a, b, rel)] = why

    def edge_count(self) -> int:
        return sum(len(o) for o in self.out)

    def edges(self) -> Iterator[tuple[int, int]]:
        for a, o in enumerate(self.out):
            for b in o:
                yield a, b

    def components(self) -> list[list[int]]:
        """Non-trivial strongly connected components, each sorted, in order of their least node."""
        g = nx.DiGraph()
        g.add_edges_from(self.edges())
        comps = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
        comps.sort(key=lambda c: c[0])
        return comps


class Deadline:
    def __init__(self, at: float, clock: Any) -> None:
        self.at = at
        self.clock = clock
        self.hit = False

    def passed(self) -> bool:
        if not self.hit and self.clock() > self.at:
            self.hit = True
        return self.hit


def shortest_path(
    g: DepGraph, src: int, dst: int, allowed: int, members: set[int], deadline: Deadline
) -> list[int] | None:
    """Nodes of a shortest path src -> dst using only allowed edges inside members."""
    prev: dict[int, int] = {src: src}
    queue = deque([src])
    steps = 0
    while queue:
        u = queue.popleft()
        for v, bits in g.out[u].items():
            if bits & allowed and v in members and v not in prev:
                prev[v] = u
                if v == dst:
                    path = [v]
                    while path[-1] != src:
                        path.append(prev[path[-1]])
                    path.reverse()
                    return path
                queue.append(v)
        steps += 1
        if steps % 4096 == 0 and deadline.passed():
            return None
    return None


def cycle_steps(g: DepGraph, nodes: list[int], first_allowed: int, allowed: int) -> list[Step]:
    """Label the edges of the closed walk nodes[0] -> ... -> nodes[-1] -> nodes[0]."""
    steps = []
    n = len(nodes)
    for i in range(n):
        a, b = nodes[i], nodes[(i + 1) % n]
        mask = first_allowed if i == 0 else allowed
        steps.append(Step(a, b, best_rel(g.out[a][b] & mask)))
    return steps


def search(
    g: DepGraph,
    comp: list[int],
    required: int,
    allowed: int,
    deadline: Deadline,
    max_attempts: int = 32,
) -> Iterator[list[Step]]:
    """Cycles through an edge carrying `required`, closed by a path of `allowed` edges."""
    members = set(comp)
    attempts = 0
    for a in comp:
        for b, bits in g.out[a].items():
            if not bits & required or b not in members:
                continue
            if attempts >= max_attempts or deadline.passed():
                return
            attempts += 1
            path = shortest_path(g, b, a, allowed, members, deadline)
            if path is not None:
                yield cycle_steps(g, [a, *path[:-1]], required | allowed, allowed)
