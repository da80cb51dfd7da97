"""The DFS under disk faults (EIO, a full disk, slow fsyncs) through the whole harness on sim.

The rule: a chunkserver never acknowledges what it failed to persist; under the runtime's one fail-stop
rule its node stops at the failed disk operation (README, "Fail-stop"), comes back over what it synced,
and the master replaces what it lost, so a replica whose bytes may differ from its peers' serves no reader.
Seed 1 once handed readers torn records: a primary whose own disk was full kept its lease and its old
length while its secondaries applied each batch, so every retry was placed at the same offset again and
the secondaries overwrote the middle of their chunk (a short record over a long one left the long one's
tail as garbage).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dfs_harness import assert_valid_with_faults, dfs_spec, run_case  # the same spec, runner and verdict

DISK_FAULTS = ("disk-eio", "disk-full", "slow-fsync")


@pytest.mark.sim
def test_a_replica_whose_disk_failed_never_hands_out_torn_data_on_sim(tmp_path: Path) -> None:
    spec = dfs_spec("sim", 1, DISK_FAULTS, nodes=4)
    results, history, run_dir = run_case(tmp_path, spec)
    assert_valid_with_faults(results, history, spec, ("disk-fault",))
    stats = results["checkers"]["dfs-append"]["stats"]
    assert stats["appends_info"] > 0, "no append met a failed disk: the case no longer tests the failure"
    failed = [json.loads(line) for log in sorted((run_dir / "nodes").glob("*.log"))
              for line in log.read_text().splitlines() if '"node-failed"' in line]
    assert any("injected disk fault" in e["reason"] for e in failed), failed  # the node stopped at the fault
    kinds = {e["kind"] for e in results["checkers"]["dfs-state"]["events"]}
    assert {"chunkserver-dead", "re-replicated"} <= kinds, kinds  # the master saw it gone and replaced its chunks
