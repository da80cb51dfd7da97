"""Healthy DFS through the whole harness (prepare, execute, check): valid under faults on sim with pinned
seeds and on the local backend with real processes, with a report that shows the leases and the replicas.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from base.history import read_history
from base.spec import TestSpec
from harness.session import check, execute, prepare

SMALL_CHUNKS = {"chunk_size": 262144}


def dfs_spec(backend: str, seed: int, nemesis: tuple[str, ...], workload: str = "append", *,
             options: dict[str, Any] | None = None, bugs: tuple[str, ...] = (), time_limit: float = 30.0,
             interval: float = 5.0, nodes: int = 5) -> TestSpec:
    return TestSpec(system="dfs", workload=workload, nemesis=nemesis, backend=backend, node_count=nodes,
                    concurrency=nodes, time_limit_s=time_limit, nemesis_interval_s=interval, quiet_s=5.0,
                    seed=seed, bugs=bugs, options=dict(options or {}))


def replay_command(spec: TestSpec) -> str:
    parts = [f"harness run dfs --backend {spec.backend}", f"--workload {spec.workload}", f"--seed {spec.seed}",
             f"--nemesis {','.join(spec.nemesis)}", f"--nodes {spec.node_count}",
             f"--time-limit {spec.time_limit_s:g}", f"--interval {spec.nemesis_interval_s:g}",
             f"--quiet {spec.quiet_s:g}"]
    parts += [f"--bug {b}" for b in spec.bugs]
    parts += [f"--option {k}={v}" for k, v in sorted(spec.options.items()) if k in ("chunk_size",)]
    return " ".join(parts)


def run_case(root: Path, spec: TestSpec) -> tuple[dict[str, Any], list[dict[str, Any]], Path]:
    s = prepare(spec, root / f"{spec.backend}-{spec.seed}")
    execute(s)
    return check(s.path), read_history(s.path / "history.jsonl").ops, s.path


def assert_valid_with_faults(results: dict[str, Any], history: list[dict[str, Any]], spec: TestSpec,
                             kinds: tuple[str, ...]) -> None:
    verdicts = {name: (r.get("valid"), str(r.get("summary"))[:160]) for name, r in results["checkers"].items()}
    assert results["valid"] is True, f"{verdicts}; replay: {replay_command(spec)}"
    struck = {op["f"] for op in history if op["process"] == "nemesis"}
    assert struck & set(kinds), f"the nemesis never struck ({struck})"
    ok = [op for op in history if op["type"] == "ok" and op["f"] in ("append", "create")]
    assert len(ok) > 20, "too little work got done to mean anything"


@pytest.mark.sim
@pytest.mark.parametrize("seed", [1, 2])
def test_append_survives_partitions_and_kills_on_sim(tmp_path: Path, seed: int) -> None:
    spec = dfs_spec("sim", seed, ("partition", "kill"))
    results, history, run_dir = run_case(tmp_path, spec)
    assert_valid_with_faults(results, history, spec, ("kill", "start-partition"))
    report = (run_dir / "report.html").read_text()
    for section in ("DFS leases over time", "DFS chunks and replicas at the end", "DFS master events"):
        assert section in report
    assert results["checkers"]["dfs-state"]["stats"]["leases"] > 0


@pytest.mark.sim
def test_files_survive_partitions_kills_pauses_and_power_cuts_on_sim(tmp_path: Path) -> None:
    spec = dfs_spec("sim", 3, ("partition", "kill", "pause", "power"), "files", options=SMALL_CHUNKS,
                    time_limit=45.0, interval=4.0)
    results, history, _ = run_case(tmp_path, spec)
    assert_valid_with_faults(results, history, spec, ("kill", "start-partition", "pause", "power-off"))
    stats = results["checkers"]["dfs-files"]["stats"]
    assert stats["closed"] > 10 and stats["reads_ok"] > 10 and stats["listed"]


@pytest.mark.sim
def test_append_survives_corruption_power_cuts_and_lost_chunkservers_on_sim(tmp_path: Path) -> None:
    spec = dfs_spec("sim", 1, ("corrupt", "power", "chunkserver-loss"), time_limit=60.0)
    results, history, _ = run_case(tmp_path, spec)
    assert_valid_with_faults(results, history, spec, ("corrupt", "power-off", "kill"))
    kinds = {e["kind"] for e in results["checkers"]["dfs-state"]["events"]}
    assert {"corrupt-replica", "re-replicated"} <= kinds, kinds  # found the flipped bytes, repaired around them
    assert any(op["f"] == "kill" and op.get("role") == "chunkserver" for op in history)


@pytest.mark.real
@pytest.mark.slow
def test_append_survives_partitions_and_kills_on_local(tmp_path: Path) -> None:
    spec = dfs_spec("local", 1, ("partition", "kill"))
    results, history, _ = run_case(tmp_path, spec)
    assert_valid_with_faults(results, history, spec, ("kill", "start-partition"))


@pytest.mark.real
@pytest.mark.slow
def test_append_survives_corruption_power_cuts_and_lost_chunkservers_on_local(tmp_path: Path) -> None:
    spec = dfs_spec("local", 1, ("corrupt", "power", "chunkserver-loss"), time_limit=60.0)
    results, history, _ = run_case(tmp_path, spec)
    assert_valid_with_faults(results, history, spec, ("corrupt", "power-off", "kill"))


@pytest.mark.sim
def test_same_seed_same_history_under_different_hash_seeds(tmp_path: Path) -> None:
    digests = []
    for hash_seed in ("0", "1"):
        root = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", "dfs", "--backend", "sim", "--seed", "7",
             "--nemesis", "kill,pause,partition", "--time-limit", "30", "--interval", "3",
             "--results", str(root)],
            capture_output=True, text=True, env=env, timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        digests.append(hashlib.sha256((root / "latest" / "history.jsonl").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
