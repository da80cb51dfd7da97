"""The heartbeat system end to end through the harness: the same command passes without a bug and fails with each.

The command is the one a user types, `harness run heartbeat --nemesis
kill,pause,partition`, with every default (5 nodes, 30 s, a fault every
~5-10 s, 5 s quiet): on `sim` over several seeds (in-process, so it is fast)
and on `local` with real processes on loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness.session import check, execute, prepare

NEMESIS = ("kill", "pause", "partition")
HARNESS = [sys.executable, "-m", "harness.cli"]


def sim_run(tmp_path: Path, seed: int, bugs: tuple[str, ...] = ()) -> dict[str, Any]:
    spec = TestSpec(system="heartbeat", workload="view", nemesis=NEMESIS, backend="sim", seed=seed, bugs=bugs)
    spec = prepare(spec, tmp_path)
    execute(spec)
    return check(spec.path)


def assert_caught(results: dict[str, Any], bug: str) -> None:
    hb = results["checkers"]["heartbeat"]
    assert results["valid"] is False and hb["valid"] is False, hb["summary"]
    counts = hb["violation_counts"]
    if bug == "fixed-timeout":
        assert counts["false_dead"] >= 5, counts  # flapping in steady state, not one unlucky view
        assert counts["missed_detections"] == 0
    else:
        assert counts["false_dead"] + counts["unrecognised_restarts"] >= 1, counts
    for ev in hb["false_dead"] + hb["unrecognised_restarts"] + hb["missed_detections"]:
        assert ev["observer"] and ev["subject"] and ev["why"]


@pytest.mark.sim
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sim_passes_without_a_bug(tmp_path: Path, seed: int) -> None:
    results = sim_run(tmp_path, seed)
    hb = results["checkers"]["heartbeat"]
    assert results["valid"] is True, hb["summary"]
    assert hb["views"] > 300
    for kill in hb["kills"]:
        assert kill["first_s"] is not None and kill["first_s"] < 2.0, kill
    for restart in hb["restarts"]:
        assert restart["new_incarnation"] > restart["old_incarnation"], restart


@pytest.mark.sim
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("bug", ["fixed-timeout", "no-incarnation"])
def test_sim_catches_each_bug(tmp_path: Path, seed: int, bug: str) -> None:
    assert_caught(sim_run(tmp_path, seed, (bug,)), bug)


def harness_run(
    root: Path, *args: str, timeout: float = 240, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    proc = subprocess.run(
        [*HARNESS, "run", "heartbeat", "--nemesis", ",".join(NEMESIS), "--results", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("run directory "):
            return proc, Path(line.removeprefix("run directory ").strip())
    raise AssertionError(f"no run directory in output:\n{proc.stdout}\n{proc.stderr}")


@pytest.mark.sim
def test_the_cli_command_on_sim_exits_0_then_1_with_a_bug(tmp_path: Path) -> None:
    ok, ok_dir = harness_run(tmp_path, "--backend", "sim", "--seed", "4")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad, _ = harness_run(tmp_path, "--backend", "sim", "--seed", "4", "--bug", "no-incarnation")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    report = (ok_dir / "report.html").read_text()
    assert "who thought whom" in report and "<svg" in report


@pytest.mark.sim
def test_a_sim_run_reproduces_byte_for_byte_under_any_hash_seed(tmp_path: Path) -> None:
    digests = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc, run_dir = harness_run(tmp_path / hash_seed, "--backend", "sim", "--seed", "9", env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        digests.append(hashlib.sha256((run_dir / "history.jsonl").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.real
def test_local_passes_without_a_bug(tmp_path: Path) -> None:
    proc, run_dir = harness_run(tmp_path, "--seed", "101")  # a seed whose schedule has kill, pause and partition
    results = json.loads((run_dir / "results.json").read_text())
    assert proc.returncode == 0, results["checkers"]["heartbeat"]["summary"] + proc.stderr
    hb = results["checkers"]["heartbeat"]
    assert hb["views"] > 300 and hb["kills"], hb["summary"]


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("bug", ["fixed-timeout", "no-incarnation"])
def test_local_catches_each_bug(tmp_path: Path, bug: str) -> None:
    proc, run_dir = harness_run(tmp_path, "--seed", "101", "--bug", bug)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert_caught(json.loads((run_dir / "results.json").read_text()), bug)
