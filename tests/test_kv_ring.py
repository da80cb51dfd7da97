"""Properties of the consistent-hashing ring (systems/kv/ring.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from systems.kv.ring import Ring, key_counts, position, std_dev

node_names = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8),
    min_size=2,
    max_size=8,
    unique=True,
)
KEYS = [f"key-{i}" for i in range(3000)]


def test_position_is_stable() -> None:
    # Fixed by SHA-256: the same on every machine, process and PYTHONHASHSEED.
    assert position("k1") == 7690443832738788232
    assert Ring.of(["n1", "n2", "n3"]).preference_list("k1", 3) == Ring.of(["n3", "n2", "n1"]).preference_list(
        "k1", 3
    )


@given(node_names, st.integers(min_value=1, max_value=6), st.text(max_size=12))
@settings(max_examples=60, deadline=None)
def test_preference_list_is_distinct_successors(nodes: list[str], n: int, key: str) -> None:
    ring = Ring.of(nodes, vnodes=8)
    pref = ring.preference_list(key, n)
    assert len(pref) == min(n, len(nodes))
    assert len(set(pref)) == len(pref)
    assert pref == list(ring.walk(key))[: len(pref)]
    assert sorted(ring.walk(key)) == sorted(nodes)
    assert pref[0] == ring.owner(key)


@given(node_names)
@settings(max_examples=40, deadline=None)
def test_shares_are_balanced_with_many_vnodes(nodes: list[str]) -> None:
    ring = Ring.of(nodes, vnodes=128)
    shares = ring.shares()
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    fair = 1 / len(nodes)
    for share in shares.values():
        assert 0.6 * fair < share < 1.6 * fair


@given(node_names)
@settings(max_examples=20, deadline=None)
def test_key_counts_follow_shares(nodes: list[str]) -> None:
    ring = Ring.of(nodes, vnodes=128)
    counts = key_counts(ring, KEYS)
    fair = len(KEYS) / len(nodes)
    assert sum(counts.values()) == len(KEYS)
    assert all(0.5 * fair < c < 1.7 * fair for c in counts.values())


def test_more_vnodes_means_less_spread() -> None:
    nodes = [f"n{i}" for i in range(1, 6)]
    spread = {v: std_dev(Ring.of(nodes, v).shares().values()) for v in (1, 8, 256)}
    assert spread[256] < spread[8] < spread[1]


@given(node_names, st.text(alphabet="xyz", min_size=1, max_size=5))
@settings(max_examples=40, deadline=None)
def test_join_moves_only_keys_to_the_new_node(nodes: list[str], extra: str) -> None:
    ring = Ring.of(nodes, vnodes=64)
    new_node = "new-" + extra
    grown = ring.with_node(new_node)
    moved = [k for k in KEYS[:1000] if ring.owner(k) != grown.owner(k)]
    assert all(grown.owner(k) == new_node for k in moved)
    # About 1/(n+1) of the keys move, never much more.
    assert len(moved) / 1000 < 1.8 / len(grown.nodes)
    # Replica sets change by at most one member: the newcomer in, the last one out.
    for k in KEYS[:200]:
        before, after = ring.preference_list(k, 3), grown.preference_list(k, 3)
        if before != after:
            assert new_node in after
            assert [x for x in after if x != new_node] == before[: len(after) - 1]


@given(node_names.filter(lambda ns: len(ns) >= 3))
@settings(max_examples=40, deadline=None)
def test_leave_moves_only_the_leavers_keys(nodes: list[str]) -> None:
    ring = Ring.of(nodes, vnodes=64)
    leaver = sorted(nodes)[0]
    shrunk = ring.without_node(leaver)
    moved = [k for k in KEYS[:1000] if ring.owner(k) != shrunk.owner(k)]
    assert all(ring.owner(k) == leaver for k in moved)
    assert len(moved) / 1000 < 1.8 / len(ring.nodes)
    for k in KEYS[:200]:
        before, after = ring.preference_list(k, 3), shrunk.preference_list(k, 3)
        if leaver not in before:
            assert before == after
        else:
            assert [x for x in before if x != leaver] == after[: len(before) - 1]


def test_small_clusters() -> None:
    ring = Ring.of(["n1", "n2"], vnodes=4)
    assert sorted(ring.preference_list("k", 3)) == ["n1", "n2"]
    single = Ring.of(["n1"], vnodes=1)
    assert single.shares() == {"n1": 1.0}
    assert Ring.of([], vnodes=4).preference_list("k", 3) == []
