"""Partition shapes: symmetric, complete, and shaped as their names say."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nemesis import grudges

NODES = [f"n{i}" for i in range(1, 6)]


def sees(grudge, node):
    return {m for m in grudge if m != node and m not in grudge[node]} | {node}


@given(st.integers(2, 9), st.integers(0, 2**32), st.sampled_from(grudges.SHAPES))
def test_every_shape_is_symmetric_and_names_every_node(n, seed, shape):
    nodes = [f"n{i}" for i in range(1, n + 1)]
    g = grudges.make(shape, nodes, random.Random(seed))
    assert sorted(g) == sorted(nodes)
    for a, dropped in g.items():
        assert a not in dropped
        for b in dropped:
            assert a in g[b], f"{shape}: {a} drops {b} but not the other way"


def test_halves_split_into_two_components():
    g = grudges.halves(NODES, random.Random(1))
    small = [n for n in NODES if len(sees(g, n)) == 2]
    big = [n for n in NODES if len(sees(g, n)) == 3]
    assert len(small) == 2 and len(big) == 3


def test_isolate_targets_the_given_node():
    g = grudges.isolate(NODES, random.Random(1), target="n3")
    assert g["n3"] == ["n1", "n2", "n4", "n5"]
    assert all(g[n] == ["n3"] for n in NODES if n != "n3")


def test_majorities_ring_gives_every_node_a_majority_but_no_two_the_same():
    g = grudges.majorities_ring(NODES, random.Random(3))
    views = [frozenset(sees(g, n)) for n in NODES]
    assert all(len(v) == 3 for v in views)
    assert len(set(views)) == len(NODES)


def test_bridge_node_sees_everyone_and_the_halves_do_not_see_each_other():
    g = grudges.bridge(NODES, random.Random(2))
    middle = [n for n in NODES if not g[n]]
    assert len(middle) == 1
    others = [n for n in NODES if n != middle[0]]
    assert all(len(sees(g, n)) == 3 for n in others)


def test_unknown_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown partition shape"):
        grudges.make("triangle", NODES, random.Random(0))


def test_the_schedule_deals_every_package_once_per_round():
    from nemesis.schedule import deal

    packages = ["kill", "pause", "partition"]
    dealt = deal(packages, random.Random(4))  # type: ignore[arg-type]
    rounds = [[next(dealt) for _ in packages] for _ in range(20)]
    assert all(sorted(r) == sorted(packages) for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1, "rounds should be shuffled"
