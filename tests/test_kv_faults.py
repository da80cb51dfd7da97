"""Faults aimed at a key's replicas, the set workload's key choice, and the bug sweep.

Every planted KV bug must be caught by whole harness runs over a small fixed
list of seeds, and the correct store must pass on the very same seeds.
"""

from __future__ import annotations

import random
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness.session import check, execute, prepare
from nemesis.catalog import PACKAGES
from nemesis.ring_faults import cut_off, parse_view, split_off
from systems.kv import BUGS, DEFAULT_OPTIONS
from systems.kv.ring import Ring
from workloads.kv import remote_keys, spread_keys

NODES = ["n1", "n2", "n3", "n4", "n5"]
SEEDS = (1, 2, 3)


def run(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    spec = TestSpec(
        **{"system": "kv", "workload": "set", "nemesis": ("cut-replicas",), "backend": "sim",
           "time_limit_s": 30.0, "rate": 50.0, "seed": 1, **kw}
    )
    spec = prepare(spec, tmp_path)
    execute(spec)
    return check(spec.path)


def sides(grudge: dict[str, list[str]]) -> set[frozenset[str]]:
    """The connected components of a grudge (each node with everyone it does not drop)."""
    return {frozenset({n, *(m for m in grudge if m not in grudge[n])}) for n in grudge}


# -- pure parts


def test_packages_are_discovered() -> None:
    assert {"cut-replicas", "split-replicas", "membership"} <= set(PACKAGES)


def test_cut_off_puts_the_replicas_alone_on_one_side() -> None:
    grudge = cut_off(NODES, ["n2", "n4", "n5"])
    assert grudge is not None
    assert sides(grudge) == {frozenset({"n2", "n4", "n5"}), frozenset({"n1", "n3"})}
    assert all(n in grudge[m] for n in grudge for m in grudge[n])  # symmetric
    assert cut_off(NODES, NODES) is None  # nothing left outside


def test_split_off_parts_the_first_replica_from_the_others() -> None:
    for seed in range(20):
        grudge = split_off(NODES, ["n3", "n1", "n5"], random.Random(seed))
        assert grudge is not None
        (lone,) = [s for s in sides(grudge) if "n3" in s]
        (rest,) = [s for s in sides(grudge) if "n3" not in s]
        assert {"n1", "n5"} <= rest and len(lone) == 2  # n3 and one of the two non-replicas
    assert split_off(NODES, ["n1"], random.Random(0)) is None


def test_parse_view_takes_the_ring_of_the_first_good_answer_and_every_key() -> None:
    view = parse_view(
        [None, {"members": NODES, "vnodes": 8, "n": 3, "keys": ["b"]}, {"members": ["x"], "keys": ["a", 5]}]
    )
    assert view is not None and view.members == tuple(NODES) and view.keys == ("a", "b")
    assert view.replicas("a") == Ring.of(NODES, 8).preference_list("a", 3)
    assert parse_view([{"members": NODES, "vnodes": 8, "n": 3, "keys": []}]) is None
    assert parse_view([]) is None


def test_set_keys_cover_every_replica_set_of_five_nodes() -> None:
    keys = spread_keys(NODES, {})
    ring = Ring.of(NODES, int(DEFAULT_OPTIONS["vnodes"]))
    sets = {frozenset(ring.preference_list(k, 3)) for k in keys}
    assert sets == {frozenset(c) for c in combinations(NODES, 3)}
    assert len(keys) == 10
    # Too many replica sets to cover (8 nodes): the plain first keys.
    assert spread_keys([f"n{i}" for i in range(1, 9)], {}) == [f"set{i}" for i in range(8)]
    remote = remote_keys(NODES, {}, keys)
    assert all(len(ks) == 4 and all(n not in ring.preference_list(k, 3) for k in ks) for n, ks in remote.items())


# -- whole harness runs


@pytest.mark.sim
def test_correct_store_is_valid_when_a_keys_replicas_are_cut_off(tmp_path: Path) -> None:
    for seed in SEEDS:
        results = run(tmp_path / str(seed), seed=seed)
        assert results["valid"] is True, (seed, {k: v["summary"] for k, v in results["checkers"].items()})


@pytest.mark.sim
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_every_bug_is_caught_on_every_seed_when_a_keys_replicas_are_cut_off(tmp_path: Path, bug: str) -> None:
    missed = []
    for seed in SEEDS:
        results = run(tmp_path / str(seed), seed=seed, bugs=(bug,))
        s = results["checkers"]["set"]
        if not (results["valid"] is False and s["valid"] is False):
            missed.append((seed, s["summary"]))
    assert not missed, f"{bug} not caught: {missed}"


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_every_bug_is_caught_by_random_partitions_and_kills_within_four_seeds(tmp_path: Path, bug: str) -> None:
    """`harness run kv --nemesis partition,kill`: random faults catch each bug less often, but they do."""
    summaries = []
    for seed in (1, 2, 3, 4):
        results = run(tmp_path / str(seed), seed=seed, nemesis=("partition", "kill"), bugs=(bug,))
        if results["valid"] is False and results["checkers"]["set"]["valid"] is False:
            break
        summaries.append(results["checkers"]["set"]["summary"])
    else:
        pytest.fail(f"{bug} not caught: {summaries}")
    for s in range(1, seed + 1):
        ok = run(tmp_path / f"ok{s}", seed=s, nemesis=("partition", "kill"))
        assert ok["valid"] is True, (s, {k: v["summary"] for k, v in ok["checkers"].items()})


@pytest.mark.real
@pytest.mark.slow
def test_on_loopback_every_bug_is_caught_and_the_correct_store_passes(tmp_path: Path) -> None:
    """Real processes: timing is not reproducible, so each bug gets up to two runs to show."""
    local = {"backend": "local", "time_limit_s": 20.0, "quiet_s": 3.0}
    # An interval of 3 s fits all three packages in 20 s (each fault takes 3-6 s), so each one strikes.
    ok = run(tmp_path / "ok", nemesis=("partition", "kill", "cut-replicas"), nemesis_interval_s=3.0, **local)
    assert ok["valid"] is True, {k: v["summary"] for k, v in ok["checkers"].items()}
    missed = []
    for bug in sorted(BUGS):
        summaries = []
        for seed in (1, 2):
            results = run(tmp_path / f"{bug}-{seed}", seed=seed, bugs=(bug,), **local)
            if results["valid"] is False and results["checkers"]["set"]["valid"] is False:
                break
            summaries.append(results["checkers"]["set"]["summary"])
        else:
            missed.append((bug, summaries))
    assert not missed, missed
