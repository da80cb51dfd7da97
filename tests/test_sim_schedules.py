"""Pinned sim schedules: a given seed gives the same history and message journal as when recorded.

The simulator is made faster only by changes that keep its schedule: same
seed, same order of every timer, task step, send, delivery and drop, so the
same history.jsonl and the same journal digest (sim.json: every record and
every payload). Each case here is a short harness run on sim (faults on, a
few virtual seconds) whose SHA-256 of history.jsonl and journal digest were
recorded in tests/data/sim_schedules.json. A failure means the schedule
moved. If you changed the simulator, that is a bug (compare against the
previous checkout with `bench/bench_sim.py --against DIR --identity
SYSTEM:NEMESIS` to find where). If you deliberately changed a system, its
workload or a nemesis, the new behaviour is a new schedule: re-record with
`.venv/bin/python tests/test_sim_schedules.py --record` and say so in the
commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness import registry
from harness.session import execute, prepare

RECORDED = Path(__file__).parent / "data" / "sim_schedules.json"

CASES: list[tuple[str, tuple[str, ...], int]] = [
    (system, nemesis, seed)
    for system, nemesis in [
        ("raft", ("partition", "kill")),
        ("raft", ("flaky", "pause")),
        ("kv", ("partition", "kill")),
        ("heartbeat", ("partition", "kill")),
        ("dfs", ("partition", "kill")),
        ("dfs", ("corrupt", "power", "chunkserver-loss")),
    ]
    for seed in (1, 2)
]


def case_id(system: str, nemesis: tuple[str, ...], seed: int) -> str:
    return f"{system}:{','.join(nemesis)}:{seed}"


def schedule_of(system: str, nemesis: tuple[str, ...], seed: int, root: Path) -> dict[str, str]:
    """A short sim run under the harness (faults every 2 virtual s); what it wrote, hashed."""
    spec = TestSpec(system=system, workload=registry.default_workload(system), nemesis=nemesis, backend="sim",
                    seed=seed, time_limit_s=10.0, nemesis_interval_s=2.0, quiet_s=2.0)
    spec = prepare(spec, root)
    execute(spec)
    run_dir = spec.path
    return {
        "history": hashlib.sha256((run_dir / "history.jsonl").read_bytes()).hexdigest(),
        "journal": json.loads((run_dir / "sim.json").read_text())["digest"],
    }


@pytest.mark.sim
@pytest.mark.parametrize(("system", "nemesis", "seed"), CASES, ids=[case_id(*c) for c in CASES])
def test_the_schedule_is_the_recorded_one(tmp_path: Path, system: str, nemesis: tuple[str, ...],
                                          seed: int) -> None:
    recorded: dict[str, Any] = json.loads(RECORDED.read_text())
    got = schedule_of(system, nemesis, seed, tmp_path)
    assert got == recorded[case_id(system, nemesis, seed)], (
        "the sim schedule moved (see this module's docstring: a bug if the simulator changed; "
        "re-record only for a deliberate change of a system, workload or nemesis)"
    )


def test_every_case_is_recorded_and_nothing_else() -> None:
    assert set(json.loads(RECORDED.read_text())) == {case_id(*c) for c in CASES}


def record() -> None:
    with tempfile.TemporaryDirectory(prefix="picluster-sim-schedules-") as tmp:
        pinned = {case_id(*c): schedule_of(*c, Path(tmp)) for c in CASES}
    RECORDED.write_text(json.dumps(pinned, indent=2, sort_keys=True) + "\n")
    print(f"recorded {len(pinned)} schedules in {RECORDED}")


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    record()
