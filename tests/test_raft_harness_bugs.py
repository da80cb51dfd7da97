"""Every planted Raft bug caught by the whole harness (prepare, execute, check) on the sim backend.

Each bug gets the faults it needs (nemesis/leaders.py) and a short, bounded list of seeds; the test
passes when one seed's run is judged invalid by the checker that should see it (checkers read only the
history), and prints the command that replays that run. The same faults on healthy Raft stay valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from base.history import read_history
from base.spec import TestSpec
from harness.session import check, execute, prepare

pytestmark = pytest.mark.sim

BUG_CASES: dict[str, dict[str, Any]] = {
    # A deposed leader, cut off but still answering its clients' reads from local state.
    "stale-read": {"nemesis": ("leader-isolate",), "nodes": 5, "time_limit": 30.0, "interval": 10.0,
                   "checker": "linearizable", "seeds": (2, 3, 5, 6, 8)},
    # A crash of every node loses what was written but never synced.
    "no-fsync": {"nemesis": ("power", "kill"), "nodes": 5, "time_limit": 20.0, "interval": 5.0,
                 "checker": "linearizable", "seeds": (1, 2, 3)},
    # Figure 8: an old-term entry committed by counting replicas, then overwritten. With max_batch 1
    # the new leader's own entry travels in its own message, so the old ones can be counted alone.
    "commit-old-term": {"nemesis": ("figure8",), "nodes": 5, "time_limit": 40.0, "interval": 20.0,
                        "options": {"max_batch": 1}, "checker": "raft-safety", "seeds": (1, 2, 3, 4, 6)},
    # A leader whose clock runs slow, cut off, keeps serving reads on its lease (nemesis/clock.py).
    "lease-read": {"nemesis": ("clock-isolate",), "nodes": 5, "time_limit": 20.0, "interval": 6.0,
                   "checker": "linearizable", "seeds": (1, 2, 3)},
    # A voter that forgets its vote in a restart elects two candidates of one term.
    "double-vote": {"nemesis": ("voter-crash",), "nodes": 3, "time_limit": 40.0, "interval": 12.0,
                    "checker": "raft-safety", "seeds": (3, 6, 7, 1, 2)},
}


def case_spec(case: dict[str, Any], seed: int, bugs: tuple[str, ...]) -> TestSpec:
    return TestSpec(system="raft", workload="register", nemesis=case["nemesis"], backend="sim",
                    node_count=case["nodes"], concurrency=case["nodes"], time_limit_s=case["time_limit"],
                    nemesis_interval_s=case["interval"], quiet_s=3.0, seed=seed, bugs=bugs,
                    options=dict(case.get("options", {})))


def replay_command(spec: TestSpec) -> str:
    parts = ["harness run raft --backend sim", f"--seed {spec.seed}", f"--nemesis {','.join(spec.nemesis)}",
             f"--nodes {spec.node_count}", f"--time-limit {spec.time_limit_s:g}",
             f"--interval {spec.nemesis_interval_s:g}", f"--quiet {spec.quiet_s:g}"]
    parts += [f"--bug {b}" for b in spec.bugs]
    parts += [f"--option {k}={v}" for k, v in sorted(spec.options.items()) if k in {"max_batch"}]
    return " ".join(parts)


def run_case(tmp_path: Path, spec: TestSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    s = prepare(spec, tmp_path / str(spec.seed))
    execute(s)
    return check(s.path), read_history(s.path / "history.jsonl").ops


@pytest.mark.parametrize("bug", sorted(BUG_CASES))
def test_the_harness_catches_the_bug(tmp_path: Path, bug: str) -> None:
    case = BUG_CASES[bug]
    seen = {}
    for seed in case["seeds"]:
        spec = case_spec(case, seed, (bug,))
        results, _ = run_case(tmp_path, spec)
        verdict = results["checkers"][case["checker"]]
        seen[seed] = {name: r.get("valid") for name, r in results["checkers"].items()}
        if results["valid"] is False and verdict["valid"] is False:
            print(f"--bug {bug} caught by {case['checker']} ({verdict['summary'][:120]}); replay: "
                  f"{replay_command(spec)}")
            return
    pytest.fail(f"--bug {bug} went unnoticed by {case['checker']} with seeds {case['seeds']}: {seen}")


@pytest.mark.parametrize("nemesis", ["leader-isolate", "figure8", "voter-crash", "leader-churn"])
def test_healthy_raft_survives_the_leader_faults(tmp_path: Path, nemesis: str) -> None:
    nodes = 3 if nemesis == "voter-crash" else 5
    case = {"nemesis": (nemesis,), "nodes": nodes, "time_limit": 40.0, "interval": 15.0}
    spec = case_spec(case, 1, ())
    results, history = run_case(tmp_path, spec)
    verdicts = {name: r.get("valid") for name, r in results["checkers"].items()}
    assert results["valid"] is True, f"{verdicts}; replay: {replay_command(spec)}"
    faults = [op for op in history if op["process"] == "nemesis" and op["f"] in ("kill", "start-partition")]
    assert len(faults) >= 2, "the nemesis never struck"


def test_stale_read_surfaces_as_a_real_time_anomaly_in_list_append(tmp_path: Path) -> None:
    """Read-only transactions are served like reads, so a deposed leader's stale answer breaks
    strict serializability, and Elle names the cycle (G-single or another real-time cycle)."""
    seen = {}
    for seed in (2, 3, 4, 6):
        spec = TestSpec(system="raft", workload="list-append", nemesis=("leader-isolate",), backend="sim",
                        node_count=5, concurrency=5, time_limit_s=30.0, nemesis_interval_s=10.0, quiet_s=3.0,
                        seed=seed, bugs=("stale-read",))
        results, _ = run_case(tmp_path, spec)
        elle = results["checkers"]["elle"]
        seen[seed] = elle["summary"][:100]
        if elle["valid"] is False:
            assert any("G-single" in a or "realtime" in a for a in elle["anomalies"]), elle["anomalies"].keys()
            assert "strict-serializable" in elle["not"] + elle["also_not"]  # Elle: weakest ruled out, then the rest
            print(f"stale-read caught by elle: {elle['summary'][:120]}; replay: "
                  f"{replay_command(spec).replace('harness run raft', 'harness run raft --workload list-append')}")
            return
    pytest.fail(f"stale-read went unnoticed by elle under list-append: {seen}")
