"""MapReduce through the whole harness: valid runs under faults, and every planted bug caught.

Sim runs reproduce from their seed; each bug test names the fault that
exposes the bug and the checker that must catch it, and tries a few seeds
(the first that exposes it ends the test), and a bug that no seed exposes
fails the test. The bugs' controls are the valid runs: the same faults
without the bug end valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness.session import check, execute, prepare

pytestmark = pytest.mark.slow

BIGGER = {"corpus_bytes": 400_000}
"""A larger corpus makes 28 map tasks a job, so faults meet more running tasks."""


def run(tmp_path: Path, *, nemesis: tuple[str, ...], seed: int, bugs: tuple[str, ...] = (), backend: str = "sim",
        options: dict[str, Any] | None = None, time_limit_s: float = 30.0) -> dict[str, Any]:
    spec = TestSpec(system="mapreduce", workload="jobs", nemesis=nemesis, backend=backend, node_count=5,
                    concurrency=5, time_limit_s=time_limit_s, seed=seed, bugs=bugs, options=dict(options or {}))
    spec = prepare(spec, tmp_path / f"{backend}-{seed}-{'+'.join(bugs) or 'ok'}")
    execute(spec)
    return {**check(spec.path), "run_dir": str(spec.path)}


def summaries(results: dict[str, Any]) -> dict[str, str]:
    return {name: f"{r.get('valid')}: {r.get('summary', '')[:120]}" for name, r in results["checkers"].items()}


@pytest.mark.sim
def test_sim_run_under_kill_pause_partition_is_valid_and_reports_the_timeline(tmp_path: Path) -> None:
    results = run(tmp_path, nemesis=("kill", "pause", "partition"), seed=1)
    assert results["valid"] is True, summaries(results)
    assert results["checkers"]["outputs"]["verified_jobs"], "no job output was verified"
    html = (Path(results["run_dir"]) / "report.html").read_text()
    assert "MapReduce tasks per worker" in html and "<svg" in html.split("MapReduce tasks per worker")[1]


@pytest.mark.sim
def test_sim_runs_under_the_mapreduce_faults_are_valid(tmp_path: Path) -> None:
    for nemesis, seed in [(("output-holder-kill",), 1), (("coordinator-kill", "pause"), 2)]:
        results = run(tmp_path, nemesis=nemesis, seed=seed, options=BIGGER)
        assert results["valid"] is True, (nemesis, summaries(results))


@pytest.mark.sim
def test_sim_runs_under_the_dfs_faults_underneath_are_valid_on_mapreduce_and_on_the_dfs(tmp_path: Path) -> None:
    """Every DFS fault under running jobs: the jobs' outputs and the DFS's own state (one lease at a time,
    versions never back, every chunk healthy at the end) both hold. A fault that never took effect would
    make the verdict invalid, so each of them hit."""
    for nemesis, seed in [(("master-kill", "chunkserver-loss"), 1), (("master-isolate", "corrupt", "power"), 2)]:
        results = run(tmp_path, nemesis=nemesis, seed=seed, options=BIGGER)
        assert results["valid"] is True, (nemesis, summaries(results))
        assert results["checkers"]["dfs-state"]["valid"] is True, (nemesis, summaries(results))
        assert results["checkers"]["outputs"]["verified_jobs"], (nemesis, "no job output was verified")


def caught(tmp_path: Path, bug: str, nemesis: tuple[str, ...], checker: str, seeds: tuple[int, ...],
           options: dict[str, Any] | None = None) -> dict[str, Any]:
    seen = {}
    for seed in seeds:
        results = run(tmp_path, nemesis=nemesis, seed=seed, bugs=(bug,), options=options)
        seen[seed] = summaries(results)
        if results["checkers"][checker]["valid"] is False:
            assert results["valid"] is False
            return results
    pytest.fail(f"{bug} went unnoticed by {checker}: {seen}")


@pytest.mark.sim
def test_no_reexec_maps_is_caught_when_a_worker_holding_needed_map_output_dies(tmp_path: Path) -> None:
    results = caught(tmp_path, "no-reexec-maps", ("output-holder-kill",), "jobs", seeds=(1, 2, 3), options=BIGGER)
    assert "never finished" in results["checkers"]["jobs"]["summary"]


@pytest.mark.sim
def test_non_atomic_output_is_caught_by_a_reader_seeing_partial_partitions(tmp_path: Path) -> None:
    results = caught(tmp_path, "non-atomic-output", ("kill", "pause", "partition"), "outputs", seeds=(1, 2, 3))
    assert any(b["why"] == "partial output visible" for b in results["checkers"]["outputs"]["bad"])


DUPLICATING = {"sim": {"duplicate": 0.05}}
"""A network that delivers 5% of the frames between nodes twice: completion reports among them."""


@pytest.mark.sim
def test_duplicated_messages_change_nothing_without_the_bug(tmp_path: Path) -> None:
    """Duplicated task requests get the same answer, duplicated reports are ignored: exact counts, right output."""
    results = run(tmp_path, nemesis=(), seed=1, options=DUPLICATING)
    assert results["valid"] is True, summaries(results)


@pytest.mark.sim
def test_double_commit_is_caught_by_output_counted_twice(tmp_path: Path) -> None:
    results = caught(tmp_path, "double-commit", (), "outputs", seeds=(1, 2, 3), options=DUPLICATING)
    assert any(b["why"] == "wrong output visible" for b in results["checkers"]["outputs"]["bad"])


@pytest.mark.real
def test_local_run_under_kill_pause_partition_is_valid(tmp_path: Path) -> None:
    results = run(tmp_path, nemesis=("kill", "pause", "partition"), seed=1, backend="local")
    assert results["valid"] is True, summaries(results)
