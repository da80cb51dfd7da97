"""Verdicts compose (false beats unknown beats true) and documented weaknesses count as designed."""

from __future__ import annotations

from base.verdict import compose, merge_valid
from harness.checking import effective, stats


def test_merge_valid_worst_wins():
    assert merge_valid([True, True]) is True
    assert merge_valid([True, "unknown"]) == "unknown"
    assert merge_valid(["unknown", False, True]) is False
    assert merge_valid([]) is True


def test_compose_reports_the_worst_verdict():
    out = compose({"a": {"valid": True}, "b": {"valid": False}})
    assert out["valid"] is False


def test_an_expected_failure_counts_as_valid_only_when_it_matches():
    assert effective({"valid": False, "expected": False, "as_designed": True}) is True
    assert effective({"valid": True, "expected": False, "as_designed": False}) is True
    assert effective({"valid": "unknown", "expected": False, "as_designed": False}) == "unknown"


def test_stats_counts_outcomes_and_latency():
    h = [
        {"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "read"},
        {"index": 1, "time": 2_000_000, "process": 0, "type": "ok", "f": "read"},
        {"index": 2, "time": 3_000_000, "process": 1, "type": "invoke", "f": "write"},
        {"index": 3, "time": 9_000_000, "process": 1, "type": "info", "f": "write"},
    ]
    s = stats(h)
    assert s["by_f"]["read"]["ok"] == 1 and s["by_f"]["read"]["p50_ms"] == 2.0
    assert s["by_f"]["write"]["info"] == 1


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    from base.spec import TestSpec
    from harness.rundir import create_run_dir

    spec = TestSpec(system="echo", workload="echo", nemesis=("kill",))
    dirs = {create_run_dir(tmp_path, spec) for _ in range(3)}
    assert len(dirs) == 3
    assert all((d / "nodes").is_dir() for d in dirs)
