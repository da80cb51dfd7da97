"""Dotted vector clocks and sibling reconciliation (systems/kv/vclock.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from systems.kv.vclock import (
    Dot,
    Sibling,
    Versioned,
    VersionError,
    concurrent,
    descends,
    join,
    merge,
    merge_all,
    update,
)

REPLICAS = ["a", "b", "c"]

# One step of a random schedule: ("write", coordinator, read-from) or ("sync", src, dst).
steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(REPLICAS), st.sampled_from([*REPLICAS, None])),
        st.tuples(st.just("sync"), st.sampled_from(REPLICAS), st.sampled_from(REPLICAS)),
    ),
    max_size=40,
)


def run_schedule(schedule: list[tuple[str, str, str | None]], *, lww: bool = False) -> tuple[dict, set[int]]:
    """Replicas doing read-union-write adds (as the set workload does) and whole-state syncs."""
    state = {r: Versioned() for r in REPLICAS}
    written: set[int] = set()
    for i, (kind, x, y) in enumerate(schedule):
        if kind == "write":
            read = state[y] if y is not None else Versioned()
            union = sorted({e for v in read.values for e in v} | {i})
            state[x], _ = update(state[x], x, union, read.clock, ts=float(i % 3), last_writer_wins=lww)
            written.add(i)
        else:
            assert y is not None
            state[y] = merge(state[y], state[x], last_writer_wins=lww)
    return state, written


def test_clock_order() -> None:
    assert descends({"a": 2, "b": 1}, {"a": 1})
    assert not descends({"a": 1}, {"a": 1, "b": 1})
    assert concurrent({"a": 1}, {"b": 1})
    assert not concurrent({"a": 2}, {"a": 1})
    assert join({"b": 1}, {"a": 2, "b": 0}) == {"a": 2, "b": 1}
    assert list(join({"b": 1}, {"a": 2})) == ["a", "b"]


def test_concurrent_writes_become_siblings_and_a_write_with_context_supersedes_them() -> None:
    s = Versioned()
    s, w1 = update(s, "a", "x", {})
    s, w2 = update(s, "a", "y", {})  # blind: did not read x
    assert s.values == ["x", "y"]
    assert w1.dot == Dot("a", 1) and w2.dot == Dot("a", 2)
    s, _ = update(s, "b", "xy", s.clock)
    assert s.values == ["xy"]


def test_write_with_stale_context_keeps_the_unseen_sibling() -> None:
    base, _ = update(Versioned(), "a", "v1", {})
    stale_ctx = base.clock
    s, _ = update(base, "a", "v2", base.clock)
    s, _ = update(s, "b", "v3", stale_ctx)  # read v1 only: v2 must survive
    assert sorted(s.values) == ["v2", "v3"]


def test_merge_of_replicas_keeps_concurrent_and_drops_obsolete() -> None:
    a, _ = update(Versioned(), "a", "from-a", {})
    b, _ = update(Versioned(), "b", "from-b", {})
    m = merge(a, b)
    assert m.values == ["from-a", "from-b"]
    c, _ = update(m, "c", "both", m.clock)
    assert merge(a, c).values == ["both"]
    assert merge(c, b).values == ["both"]


def test_lww_keeps_one_and_loses_the_other() -> None:
    a, _ = update(Versioned(), "a", "early", {}, ts=1.0)
    b, _ = update(Versioned(), "b", "late", {}, ts=2.0)
    assert merge(a, b, last_writer_wins=True).values == ["late"]
    assert merge(b, a, last_writer_wins=True).values == ["late"]


def test_encoding_round_trip_and_rejects_garbage() -> None:
    s, _ = update(Versioned(), "a", [1, 2], {"b": 3}, ts=4.5)
    assert Versioned.decode(s.encode()) == s
    with pytest.raises(VersionError):
        Versioned.decode({"s": [["v", 1, 2]], "c": {}})
    with pytest.raises(VersionError):
        Versioned.decode([1, 2])
    with pytest.raises(VersionError):
        Sibling.decode(["v", "a", "x", {}, 0.0])


@given(steps)
@settings(max_examples=200, deadline=None)
def test_no_add_is_lost_and_replicas_converge(schedule: list[tuple[str, str, str | None]]) -> None:
    state, written = run_schedule(schedule)
    everything = merge_all(state.values())
    seen = {e for v in everything.values for e in v}
    assert seen == written
    # Any order of merging gives the same result (commutative, associative, idempotent).
    assert merge_all(reversed(list(state.values()))) == everything
    assert merge(everything, everything) == everything
    for s in state.values():
        assert merge(s, everything) == everything
    # No dot is ever issued twice.
    dots = [d for s in state.values() for d in s.dots()]
    by_dot = {}
    for s in state.values():
        for sib in s.siblings:
            assert by_dot.setdefault((sib.dot.node, sib.dot.counter), sib.value) == sib.value
    assert len(by_dot) <= len(dots)


def test_lww_loses_adds_on_a_schedule_with_concurrent_writers() -> None:
    schedule = [("write", "a", None), ("write", "b", None), ("sync", "a", "b"), ("sync", "b", "a")]
    state, written = run_schedule(schedule, lww=True)
    seen = {e for v in merge_all(state.values(), last_writer_wins=True).values for e in v}
    assert seen < written
    state, written = run_schedule(schedule)
    assert {e for v in merge_all(state.values()).values for e in v} == written
