"""The seed sweeps: many short sim runs of raft under partition, kill and pause (and under the
leader-targeting faults), every one valid.

Each run is the real harness path (prepare, execute, check) with its own seed; a failing seed is
printed with the one command that replays it. Runs go to a small process pool (sim is single-core).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness.session import check, execute, prepare

pytestmark = [pytest.mark.sim, pytest.mark.slow]

SEEDS = range(1, 201)
NEMESIS = ("partition", "kill", "pause")
SETTINGS: dict[str, Any] = {"node_count": 3, "concurrency": 3, "time_limit_s": 10.0, "nemesis_interval_s": 2.0,
                            "quiet_s": 2.0}


def replay_command(seed: int, nemesis: tuple[str, ...] = NEMESIS, s: dict[str, Any] = SETTINGS) -> str:
    return (f"harness run raft --backend sim --seed {seed} --nemesis {','.join(nemesis)} --nodes {s['node_count']} "
            f"--time-limit {s['time_limit_s']:g} --interval {s['nemesis_interval_s']:g} --quiet {s['quiet_s']:g}")


LEADER_NEMESIS = ("figure8", "voter-crash", "leader-churn", "leader-isolate")
LEADER_SETTINGS: dict[str, Any] = {"node_count": 5, "concurrency": 5, "time_limit_s": 40.0,
                                   "nemesis_interval_s": 10.0, "quiet_s": 3.0}


def one_run(args: tuple[int, str], nemesis: tuple[str, ...] = NEMESIS,
            settings: dict[str, Any] = SETTINGS) -> tuple[int, Any, dict[str, Any]]:
    seed, root = args
    # A seed's run may end before the deck dealt every package; what happened must still be valid.
    spec = TestSpec(system="raft", workload="register", nemesis=nemesis, backend="sim", seed=seed,
                    allow_no_faults=True, **settings)
    s = prepare(spec, Path(root) / str(seed))
    execute(s)
    results = check(s.path)
    bad = {name: r.get("summary") for name, r in results["checkers"].items() if r.get("valid") is not True}
    return seed, results["valid"], bad


def test_two_hundred_seeds_of_partition_kill_pause_are_all_valid(tmp_path: Path) -> None:
    workers = max(1, min(4, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) as pool:
        outcomes = list(pool.map(one_run, [(seed, str(tmp_path)) for seed in SEEDS]))
    failing = [(seed, bad) for seed, valid, bad in outcomes if valid is not True]
    for seed, bad in failing:
        print(f"seed {seed} invalid: {bad}\n  replay: {replay_command(seed)}")
    assert not failing, f"{len(failing)} of {len(SEEDS)} seeds invalid: {[s for s, _ in failing]}"


def one_leader_run(args: tuple[int, str]) -> tuple[int, Any, dict[str, Any]]:
    return one_run(args, LEADER_NEMESIS, LEADER_SETTINGS)


def test_forty_seeds_of_the_leader_faults_are_all_valid(tmp_path: Path) -> None:
    """Healthy Raft under the faults that catch the planted bugs (nemesis/leaders.py)."""
    workers = max(1, min(4, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) as pool:
        outcomes = list(pool.map(one_leader_run, [(seed, str(tmp_path)) for seed in range(1, 41)]))
    failing = [(seed, bad) for seed, valid, bad in outcomes if valid is not True]
    for seed, bad in failing:
        print(f"seed {seed} invalid: {bad}\n  replay: {replay_command(seed, LEADER_NEMESIS, LEADER_SETTINGS)}")
    assert not failing, f"{len(failing)} of 40 seeds invalid: {[s for s, _ in failing]}"
