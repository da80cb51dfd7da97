"""The transaction dependency graph and its strongly connected components.

Rules:

- Nodes are dense txn ids. An edge a -> b carries a bitmask of relations
  (WW, WR, RW, PROCESS, REALTIME); the first evidence given for each
  (a, b, relation) is kept for the explanation, later ones are dropped.
  Self-edges are never stored.
- Strongly connected components are found with an iterative Tarjan over the
  adjacency dicts, restricted to a set of nodes and a relation mask, so a
  projection (say, ww and wr edges only) costs one pass and no copy; a
  component is non-trivial when it has two or more nodes, or one node with an
  edge to itself (only composed graphs have those).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

WW, WR, RW, PROCESS, REALTIME = 1, 2, 4, 8, 16
DEPS = WW | WR | RW
ALL = DEPS | PROCESS | REALTIME
NAMES = {WW: "ww", WR: "wr", RW: "rw", PROCESS: "process", REALTIME: "realtime"}
BY_NAME = {v: k for k, v in NAMES.items()}


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

    def rel_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(NAMES.values(), 0)
        for o in self.out:
            for bits in o.values():
                for r, name in NAMES.items():
                    if bits & r:
                        counts[name] += 1
        return counts

    def successors(self, mask: int, members: set[int] | None = None) -> Callable[[int], Iterable[int]]:
        out = self.out
        if members is None:
            return lambda u: [v for v, bits in out[u].items() if bits & mask]
        return lambda u: [v for v, bits in out[u].items() if bits & mask and v in members]


def sccs(nodes: Iterable[int], succ: Callable[[int], Iterable[int]]) -> list[list[int]]:
    """Non-trivial strongly connected components (iterative Tarjan), each sorted, by least node."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    found: list[list[int]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[int, Iterator[int]]] = [(root, iter(succ(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        self_loop: set[int] = set()
        while work:
            u, it = work[-1]
            advanced = False
            for v in it:
                if v == u:
                    self_loop.add(u)
                elif v not in index:
                    index[v] = low[v] = counter
                    counter += 1
                    stack.append(v)
                    on_stack.add(v)
                    work.append((v, iter(succ(v))))
                    advanced = True
                    break
                elif v in on_stack and index[v] < low[u]:
                    low[u] = index[v]
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                if low[u] < low[parent]:
                    low[parent] = low[u]
            if low[u] == index[u]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == u:
                        break
                if len(comp) > 1 or u in self_loop:
                    comp.sort()
                    found.append(comp)
    found.sort(key=lambda c: c[0])
    return found
