"""A DFS run whose re-replication is slow but steady ends valid: the final `settle` waits for it.

Found by `harness run dfs --backend sim --seed 1001 --swarm` (files workload, 3 nodes, goal 3, 64 KiB chunks,
chunkserver-loss): the chunkserver killed last came back with hundreds of stale chunks; the master re-cloned
them onto it one at a time (a clone's target is busy until it is done, the loop runs every `rereplicate_s`),
about 10 chunks a second, and the settle gave up after a fixed 8 s, so dfs-state called the end unhealthy while
the repair was well under way. Here the repair is slowed further (`rereplicate_s=0.5`: two chunks a second), so
under the old fixed bound the run ends invalid, and with the settle waiting while the repair progresses it ends
valid with every chunk at its goal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_dfs_harness import assert_valid_with_faults, dfs_spec, run_case


@pytest.mark.sim
def test_final_settle_waits_for_a_slow_re_replication_on_sim(tmp_path: Path) -> None:
    spec = dfs_spec("sim", 7, ("chunkserver-loss",), "files", nodes=3, time_limit=20.0, interval=4.0,
                    options={"chunk_size": 65536, "rereplicate_s": 0.5})
    results, history, _ = run_case(tmp_path, spec)
    assert_valid_with_faults(results, history, spec, ("kill",))
    settle = next(op["value"] for op in history if op["f"] == "settle" and op["type"] == "ok")
    assert settle["outcome"] == "healthy", settle
    assert settle["waited_s"] > 8.0, settle  # the old fixed bound would have cut this repair short
    assert settle["problems_first"] > settle["problems_last"] == 0, settle
    assert results["checkers"]["dfs-state"]["stats"]["final_reports"] == 3
