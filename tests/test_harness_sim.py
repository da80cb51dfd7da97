"""The runner and the nemesis on the sim backend: faults recorded and cured, outcomes honest, runs reproducible."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from base.faults import fault_windows
from base.history import pairs, read_history
from base.spec import TestSpec
from harness.session import check, execute, prepare
from nemesis.catalog import VOCABULARY


def run_sim(tmp_path: Path, **kw) -> Path:
    spec = TestSpec(**{"system": "echo", "workload": "echo", "nemesis": ("kill", "pause", "partition"),
                       "backend": "sim", "node_count": 3, "concurrency": 3, "time_limit_s": 40.0,
                       "nemesis_interval_s": 2.0, "quiet_s": 1.0, "seed": 5, **kw})
    spec = prepare(spec, tmp_path)
    execute(spec)
    check(spec.path)
    return spec.path


def test_every_fault_is_recorded_and_cured_by_the_end(tmp_path):
    history = read_history(run_sim(tmp_path) / "history.jsonl").ops
    nemesis = [op for op in history if op["process"] == "nemesis"]
    assert {op["f"] for op in nemesis} >= {"kill", "pause", "start-partition"}
    windows = fault_windows(history, VOCABULARY)
    assert {w.kind for w in windows} >= {"kill", "pause", "partition"}
    assert all(w.cured for w in windows), [w.description for w in windows if not w.cured]
    last_nemesis = nemesis[-1]["index"]
    finals = [op for op in history if op["index"] > last_nemesis and op["process"] != "nemesis"]
    assert finals and all(op["type"] in ("invoke", "ok") for op in finals), "final reads must succeed after heal"


def test_ops_to_a_killed_node_fail_definitely_and_info_retires_the_process(tmp_path):
    history = read_history(run_sim(tmp_path, nemesis=("kill", "pause"), op_timeout_s=0.5) / "history.jsonl").ops
    ps = pairs(history)
    assert any(p.type == "fail" and p.complete.get("error") == "unreachable" for p in ps)
    infos = [p for p in ps if p.type == "info"]
    assert infos, "a pause should make some op time out"
    for p in infos:
        later = [q for q in ps if q.invoke["process"] == p.invoke["process"] and q.invoke["index"] > p.invoke["index"]]
        assert later == [], f"process {p.invoke['process']} was reused after an info"


def test_no_faults_means_no_nemesis_ops(tmp_path):
    history = read_history(run_sim(tmp_path, nemesis=()) / "history.jsonl").ops
    assert [op for op in history if op["process"] == "nemesis"] == []


SYSTEMS_FOR_DETERMINISM = ["echo"]


@pytest.mark.parametrize("system", SYSTEMS_FOR_DETERMINISM)
def test_same_seed_same_history_under_different_hash_seeds(system, tmp_path):
    digests = []
    for hash_seed in ("0", "1"):
        root = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", system, "--backend", "sim", "--seed", "7",
             "--nemesis", "kill,pause,partition", "--time-limit", "30", "--results", str(root)],
            capture_output=True, text=True, env=env, timeout=300,
        )
        assert proc.returncode in (0, 1, 2), proc.stdout + proc.stderr
        digests.append(hashlib.sha256((root / "latest" / "history.jsonl").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
