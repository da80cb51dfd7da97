"""Every planted DFS bug caught by the whole harness (prepare, execute, check), on sim with pinned seeds,
and no-version and no-checksum also on the local backend with real processes and real files.

Each bug gets the fault that exposes it and a short, bounded list of seeds; the test passes when one
seed's run is judged invalid by the checker that should see it (checkers read only the history), and
prints the command that replays that run. The same faults on the healthy system stay valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_dfs_harness import dfs_spec, replay_command, run_case  # the same spec, replay line and runner

BUG_CASES: dict[str, dict[str, Any]] = {
    # A chunkserver that was down while its chunks moved on comes back; its stale replica is handed out.
    "no-version": {"nemesis": ("chunkserver-loss",), "checker": "dfs-append", "seeds": (1, 2, 3)},
    # A byte flipped on one replica's disk is served, never noticed, never repaired.
    "no-checksum": {"nemesis": ("corrupt",), "checker": "dfs-append", "seeds": (1, 2, 3)},
    # The primary acknowledges before its secondaries applied; on lossy links they never do.
    "early-ack": {"nemesis": ("flaky",), "checker": "dfs-append", "seeds": (1, 2, 3)},
    # A client complaining about a primary cut off from its secondaries makes the master grant a second lease
    # at once, while the first primary (still reachable by the master and the clients) holds its own.
    "lease-overlap": {"nemesis": ("partition",), "checker": "dfs-state", "seeds": (4, 5, 6, 1, 2, 3)},
}

LOCAL_BUGS = ("no-version", "no-checksum")


def catch(tmp_path: Path, backend: str, bug: str) -> None:
    case = BUG_CASES[bug]
    seen = {}
    for seed in case["seeds"]:
        spec = dfs_spec(backend, seed, case["nemesis"], bugs=(bug,))
        results, _, _ = run_case(tmp_path, spec)
        verdict = results["checkers"][case["checker"]]
        seen[seed] = {name: r.get("valid") for name, r in results["checkers"].items()}
        if results["valid"] is False and verdict["valid"] is False:
            print(f"--bug {bug} caught by {case['checker']} ({verdict['summary'][:140]}); replay: "
                  f"{replay_command(spec)}")
            return
    pytest.fail(f"--bug {bug} went unnoticed by {case['checker']} on {backend} with seeds {case['seeds']}: {seen}")


@pytest.mark.sim
@pytest.mark.parametrize("bug", sorted(BUG_CASES))
def test_the_harness_catches_the_bug_on_sim(tmp_path: Path, bug: str) -> None:
    catch(tmp_path, "sim", bug)


@pytest.mark.sim
@pytest.mark.parametrize("nemesis", sorted({case["nemesis"] for case in BUG_CASES.values()}))
def test_the_healthy_dfs_survives_the_same_faults(tmp_path: Path, nemesis: tuple[str, ...]) -> None:
    spec = dfs_spec("sim", 1, nemesis)
    results, history, _ = run_case(tmp_path, spec)
    verdicts = {name: (r.get("valid"), str(r.get("summary"))[:120]) for name, r in results["checkers"].items()}
    assert results["valid"] is True, f"{verdicts}; replay: {replay_command(spec)}"
    assert [op for op in history if op["process"] == "nemesis"], "the nemesis never struck"


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("bug", LOCAL_BUGS)
def test_the_harness_catches_the_bug_on_local(tmp_path: Path, bug: str) -> None:
    catch(tmp_path, "local", bug)
