"""Shrinking: delta debugging, the schedule a history shows, refusals, and a failing stale-read run shrunk.

The last test is the whole path: a raft run with the stale-read bug fails under leader-isolate; `harness
shrink` replays it with ever fewer faults, a shorter time limit and fewer clients while it keeps failing,
writes schedule.json, and the replay command it prints fails again, byte for byte the smallest run.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness.rundir import write_test_json
from harness.shrink import CannotShrink, Shrinker, ddmin, live_script, recorded_script
from nemesis.catalog import VOCABULARY

HARNESS = [sys.executable, "-m", "harness.cli"]


def test_ddmin_finds_the_faults_that_matter_and_keeps_their_order() -> None:
    calls: list[list[int]] = []

    def fails(xs: list[int]) -> bool:
        calls.append(xs)
        return {3, 7} <= set(xs)

    assert ddmin(list(range(10)), fails) == [3, 7]
    assert len(calls) < 40
    assert ddmin([1, 2, 3], lambda xs: True) == [], "a failure that needs no fault shrinks to none"
    assert ddmin([5], lambda xs: 5 in xs) == [5]
    assert ddmin(list(range(8)), lambda xs: 6 in xs) == [6]


def nemesis_op(i: int, t: float, f: str, value: Any, package: str, **detail: Any) -> dict[str, Any]:
    return {"index": i, "time": int(t * 1e9), "process": "nemesis", "type": "info", "f": f, "value": value,
            "package": package, **detail}


HISTORY = [
    nemesis_op(0, 1.0, "kill", ["n2"], "kill"),
    nemesis_op(1, 2.5, "restart", ["n2"], "kill"),
    nemesis_op(2, 3.0, "start-partition", {"n1": ["n2"], "n2": ["n1"], "n3": []}, "partition", shape="halves"),
    nemesis_op(3, 4.0, "stop-partition", None, "partition"),
    nemesis_op(4, 5.0, "leave", ["n3"], "membership"),
    nemesis_op(5, 6.0, "join", ["n3"], "membership"),
    nemesis_op(6, 7.0, "pause", ["n1"], "pause"),
]


def test_the_schedule_of_a_history_inflicts_what_was_recorded_and_plays_the_rest_live() -> None:
    script = recorded_script(HISTORY, ("kill", "partition", "membership", "pause"))
    assert script.to_json() == [
        {"package": "kill", "start_s": 1.0, "stop_s": 2.5, "inflict": {"f": "kill", "value": ["n2"]}},
        {"package": "partition", "start_s": 3.0, "stop_s": 4.0,
         "inflict": {"f": "start-partition", "value": {"n1": ["n2"], "n2": ["n1"], "n3": []}, "shape": "halves"}},
        {"package": "membership", "start_s": 5.0, "stop_s": 6.0},
        {"package": "pause", "start_s": 7.0, "stop_s": None, "inflict": {"f": "pause", "value": ["n1"]}},
    ]
    script.check(["n1", "n2", "n3"], VOCABULARY)
    live = live_script(HISTORY, ())
    assert [(f.package, f.start_s, f.stop_s, f.inflict) for f in live.faults] == [
        ("kill", 1.0, 2.5, None), ("partition", 3.0, 4.0, None), ("membership", 5.0, 6.0, None),
        ("pause", 7.0, None, None)]


def fake_run(tmp_path: Path, backend: str, valid: Any) -> Path:
    run_dir = tmp_path / f"{backend}-{valid}"
    run_dir.mkdir()
    spec = TestSpec(system="raft", workload="register", nemesis=("kill",), backend=backend, run_dir=str(run_dir))
    write_test_json(run_dir, spec)
    (run_dir / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in HISTORY))
    (run_dir / "results.json").write_text(json.dumps({"valid": valid, "checkers": {}}))
    return run_dir


def test_only_a_failing_sim_run_shrinks(tmp_path: Path) -> None:
    with pytest.raises(CannotShrink, match="only a sim run"):
        Shrinker(fake_run(tmp_path, "local", False))
    with pytest.raises(CannotShrink, match="did not fail"):
        Shrinker(fake_run(tmp_path, "sim", True))
    proc = subprocess.run([*HARNESS, "shrink", str(fake_run(tmp_path, "sim", "unknown"))], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 64 and "only a failing run shrinks" in proc.stdout, proc.stdout
    proc = subprocess.run([*HARNESS, "shrink", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 64 and "no test.json" in proc.stdout, proc.stdout


@pytest.mark.sim
@pytest.mark.slow
def test_a_failing_stale_read_run_shrinks_to_a_few_faults_that_still_fail_on_replay(tmp_path: Path) -> None:
    from harness.session import check, execute, prepare

    failing = None
    for seed in (2, 3, 5):
        spec = TestSpec(system="raft", workload="register", nemesis=("leader-isolate",), backend="sim", seed=seed,
                        time_limit_s=30.0, nemesis_interval_s=10.0, quiet_s=3.0, bugs=("stale-read",))
        spec = prepare(spec, tmp_path / "runs" / str(seed))
        execute(spec)
        if check(spec.path)["valid"] is False:
            failing = spec.path
            break
    assert failing is not None, "stale-read under leader-isolate should fail on one of three seeds"
    before = sum(1 for line in (failing / "history.jsonl").read_text().splitlines()
                 if json.loads(line).get("f") == "start-partition")
    assert before >= 2, "the original run should have several faults to take away"

    proc = subprocess.run([*HARNESS, "shrink", str(failing)], capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads((failing / "shrink" / "schedule.json").read_text())
    assert 1 <= len(out["faults"]) <= 3, out["faults"]
    assert len(out["faults"]) < before or out["settings"]["time_limit_s"] < 30.0
    assert out["settings"]["concurrency"] <= 5 and out["failing_checkers"] == ["linearizable"]
    assert all(f["package"] == "leader-isolate" for f in out["faults"])
    attempts = [json.loads(line) for line in (failing / "shrink" / "attempts.jsonl").read_text().splitlines()]
    assert len(attempts) == out["runs"] and any(not a["still_fails"] for a in attempts)

    replay = shlex.split(out["replay"])
    assert replay[:2] == ["harness", "run"] and "--schedule" in replay and out["replay"] in proc.stdout
    again = subprocess.run([*HARNESS, *replay[1:], "--results", str(tmp_path / "replay")], capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 1, again.stdout + again.stderr
    run = (tmp_path / "replay" / "latest").resolve()
    assert (run / "history.jsonl").read_bytes() == (failing / "shrink" / "minimal" / "history.jsonl").read_bytes()
    assert json.loads((run / "test.json").read_text())["schedule"] == out["faults"]
