"""LocalEngine when a worker dies: only the seed that kills its worker is lost, the sweep goes on.

The tasks here are stand-ins for `run_seed` (module-level, so spawned workers import them): a seed
that SIGKILLs its own worker, as the kernel's OOM killer does, and one that does so only once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from harness.sweep import LocalEngine


def kills_its_worker_on_seed_3(task: dict[str, Any]) -> dict[str, Any]:
    seed = task["spec"]["seed"]
    if seed == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"seed": seed, "verdict": "valid", "worker": os.getpid()}


def kills_its_worker_once(task: dict[str, Any]) -> dict[str, Any]:
    seed = task["spec"]["seed"]
    mark = Path(task["mark_dir"]) / f"died-{seed}"
    if seed == 2 and not mark.exists():
        mark.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return {"seed": seed, "verdict": "valid", "worker": os.getpid()}


def rows(engine: LocalEngine, tasks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    try:
        return {r["seed"]: r for r in engine.run(tasks)}
    finally:
        engine.close()


def test_a_seed_that_kills_its_worker_is_one_error_and_every_other_seed_runs() -> None:
    got = rows(LocalEngine(2, kills_its_worker_on_seed_3), [{"spec": {"seed": s}} for s in range(1, 9)])
    assert sorted(got) == list(range(1, 9))
    assert got[3]["verdict"] == "error" and "BrokenProcessPool" in got[3]["error"], got[3]
    assert "then alone" in got[3]["error"]
    assert all(got[s]["verdict"] == "valid" for s in got if s != 3), got


def test_a_worker_that_died_once_costs_nothing(tmp_path: Path) -> None:
    tasks = [{"spec": {"seed": s}, "mark_dir": str(tmp_path)} for s in range(1, 6)]
    got = rows(LocalEngine(2, kills_its_worker_once), tasks)
    assert (tmp_path / "died-2").exists()  # the worker did die
    assert sorted(got) == [1, 2, 3, 4, 5] and all(r["verdict"] == "valid" for r in got.values()), got


def test_stopping_hands_out_no_more_seeds() -> None:
    engine = LocalEngine(1, kills_its_worker_on_seed_3)
    seen = []
    try:
        for row in engine.run([{"spec": {"seed": s}} for s in (1, 2, 4, 5, 6, 7, 8, 9)]):
            seen.append(row["seed"])
            engine.cancel()
    finally:
        engine.close()
    assert 1 <= len(seen) <= 2, seen  # the first seed, and the one already queued behind it
