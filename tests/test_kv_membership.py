"""Membership under load: nodes leave the ring and join again while clients run.

`harness run kv --nemesis membership,partition` must keep every
acknowledged add, record each leave and join as nemesis ops, and end with
the whole ring back; the report must cope with those op names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from base.faults import fault_windows
from base.history import read_history
from base.spec import TestSpec
from harness.session import check, execute, prepare
from nemesis.catalog import VOCABULARY

SEEDS = (1, 2)


def run(tmp_path: Path, **kw: Any) -> tuple[dict[str, Any], Path]:
    spec = TestSpec(
        **{"system": "kv", "workload": "set", "nemesis": ("membership", "partition"), "backend": "sim",
           "time_limit_s": 30.0, "rate": 50.0, "nemesis_interval_s": 4.0, "seed": 1, **kw}
    )
    spec = prepare(spec, tmp_path)
    execute(spec)
    return check(spec.path), spec.path


@pytest.mark.sim
def test_leave_and_join_under_load_keep_every_acknowledged_add(tmp_path: Path) -> None:
    for seed in SEEDS:
        results, path = run(tmp_path / str(seed), seed=seed)
        checks = results["checkers"]
        assert results["valid"] is True, (seed, {k: v["summary"] for k, v in checks.items()})
        assert checks["set"]["lost_count"] == 0 and checks["set"]["acknowledged"] > 500
        assert checks["convergence"]["valid"] is True
        ops = read_history(path / "history.jsonl").ops
        nemesis = [op for op in ops if op["process"] == "nemesis"]
        leaves = [op["value"] for op in nemesis if op["f"] == "leave"]
        joins = [op["value"] for op in nemesis if op["f"] == "join"]
        assert leaves and leaves == joins, (leaves, joins)  # every node that left came back
        finals = [op for op in ops if op.get("final") and op["f"] == "dump" and op["type"] == "ok"]
        assert all(len(op["value"]["members"]) == 5 for op in finals)
        windows = fault_windows(ops, VOCABULARY)
        assert sorted(w.nodes for w in windows if w.kind == "leave") == sorted(tuple(v) for v in leaves)
        assert (path / "report.html").read_text().count("<svg") >= 1


@pytest.mark.sim
def test_a_lost_add_under_membership_changes_is_still_caught(tmp_path: Path) -> None:
    # The checker must still reject when the store loses adds while the ring changes.
    results, _ = run(tmp_path, bugs=("lww-clock",))
    assert results["valid"] is False
    assert results["checkers"]["set"]["lost_count"] > 0, results["checkers"]["set"]["summary"]


@pytest.mark.sim
def test_membership_and_ring_faults_reproduce_from_the_seed(tmp_path: Path) -> None:
    kw = {"nemesis": ("membership", "cut-replicas", "split-replicas"), "time_limit_s": 12.0, "seed": 4,
          "nemesis_interval_s": 2.0}
    _, a = run(tmp_path / "a", **kw)
    _, b = run(tmp_path / "b", **kw)
    ha, hb = (a / "history.jsonl").read_text(), (b / "history.jsonl").read_text()
    assert ha == hb and '"leave"' in ha and "start-partition" in ha
