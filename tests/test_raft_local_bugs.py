"""A planted Raft bug caught on the local backend: real processes, real sockets, real fsync.

stale-read needs only a deposed leader that keeps answering: `leader-isolate`
makes one, whatever the machine's timing, so a couple of seeds suffice. (The
other bugs are caught in sim, tests/test_raft_harness_bugs.py; `no-fsync` on
local too, by the power fault's lost unsynced writes, and `lease-read` by
`clock-isolate`: tests/test_disk_faults.py and tests/test_clock_faults.py;
`commit-old-term` and `double-vote` need event orders the simulator can
replay exactly.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from base.spec import TestSpec
from harness.session import check, execute, prepare

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_stale_read_is_caught_on_local(tmp_path: Path) -> None:
    seen = {}
    for seed in (2, 3, 5):
        spec = TestSpec(system="raft", workload="register", nemesis=("leader-isolate",), backend="local",
                        node_count=5, concurrency=5, time_limit_s=30.0, nemesis_interval_s=8.0, quiet_s=3.0,
                        seed=seed, bugs=("stale-read",))
        spec = prepare(spec, tmp_path / str(seed))
        execute(spec)
        results = check(spec.path)
        lin = results["checkers"]["linearizable"]
        seen[seed] = lin["summary"][:100]
        if lin["valid"] is False:
            assert results["valid"] is False
            return
    pytest.fail(f"stale-read went unnoticed on local: {seen}")
