"""Partition shapes as grudges: pure functions of a node list and an RNG.

A grudge maps each node to the sorted list of nodes whose traffic it drops
(inbound), so `{"n1": ["n3"], "n3": ["n1"]}` cuts the link n1 <-> n3 both
ways. Every shape here is symmetric, leaves each node connected to itself,
and lists every node of the cluster as a key (an empty list when it drops
nothing), so a history shows the whole picture.

Shapes (Jepsen's names):
- halves: a random split into two halves, the smaller side first;
- isolate: one node (a chosen one, e.g. the leader, or a random one) cut from all;
- majorities-ring: every node sees a majority, but no two nodes the same one;
- bridge: two halves that can both talk to one bridge node in the middle.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

Grudge = dict[str, list[str]]

SHAPES = ("halves", "isolate", "majorities-ring", "bridge")


def from_components(nodes: Iterable[str], components: list[set[str]]) -> Grudge:
    """Each node drops everyone not in its own component."""
    nodes = sorted(nodes)
    comp_of = {n: i for i, comp in enumerate(components) for n in comp}
    return {n: [m for m in nodes if m != n and comp_of.get(m) != comp_of.get(n)] for n in nodes}


def from_visibility(nodes: Iterable[str], sees: dict[str, set[str]]) -> Grudge:
    """Each node drops everyone it does not see (visibility must be symmetric)."""
    nodes = sorted(nodes)
    return {n: [m for m in nodes if m != n and m not in sees[n]] for n in nodes}


def halves(nodes: list[str], rng: random.Random) -> Grudge:
    shuffled = sorted(nodes)
    rng.shuffle(shuffled)
    k = len(shuffled) // 2
    return from_components(nodes, [set(shuffled[:k]), set(shuffled[k:])])


def isolate(nodes: list[str], rng: random.Random, target: str | None = None) -> Grudge:
    target = target if target in nodes else rng.choice(sorted(nodes))
    return from_components(nodes, [{target}, set(nodes) - {target}])


def majorities_ring(nodes: list[str], rng: random.Random) -> Grudge:
    """Arrange nodes on a shuffled ring; each sees itself and its nearest neighbours up to a majority."""
    ring = sorted(nodes)
    rng.shuffle(ring)
    n = len(ring)
    majority = n // 2 + 1
    reach = (majority - 1) // 2  # neighbours on each side
    sees: dict[str, set[str]] = {node: {node} for node in ring}
    for i, node in enumerate(ring):
        for d in range(1, reach + 1):
            for j in (i - d, i + d):
                other = ring[j % n]
                sees[node].add(other)
                sees[other].add(node)
    return from_visibility(nodes, sees)


def bridge(nodes: list[str], rng: random.Random) -> Grudge:
    shuffled = sorted(nodes)
    rng.shuffle(shuffled)
    middle = shuffled[0]
    rest = shuffled[1:]
    k = len(rest) // 2
    left, right = set(rest[:k]), set(rest[k:])
    sees = {n: ({n, middle} | (left if n in left else right)) for n in rest}
    sees[middle] = set(nodes)
    return from_visibility(nodes, sees)


def make(shape: str, nodes: list[str], rng: random.Random, target: str | None = None) -> Grudge:
    if shape == "halves":
        return halves(nodes, rng)
    if shape == "isolate":
        return isolate(nodes, rng, target)
    if shape == "majorities-ring":
        return majorities_ring(nodes, rng)
    if shape == "bridge":
        return bridge(nodes, rng)
    raise ValueError(f"unknown partition shape {shape!r}; known: {', '.join(SHAPES)}")


def is_cut(grudge: Grudge) -> bool:
    """True when the grudge drops anything at all."""
    return any(grudge.values())
