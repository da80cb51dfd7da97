"""MapReduce on the DFS (Dean & Ghemawat, OSDI 2004): a coordinator, a worker on every node, re-execution.

Input files live in the DFS and are split into one map task per chunk,
scheduled near a replica (splits.py, tasks.py); map output stays on the
worker's own disk, partitioned into R runs by a stable hash (or sampled key
ranges for sort) and fetched by reducers over RPC (worker.py); reduce
output is written to the DFS under a temporary name and atomically renamed.
The coordinator (coordinator.py) tracks every task as idle, in-progress or
completed, pings the workers, re-runs a failed worker's in-progress and
completed map tasks, ignores duplicate completions, starts backup
executions of stragglers near the end of a phase, and survives its own
crash by persisting its task table. Jobs are importable modules (jobs/).
The node glue is node.py; the client library client.py; the CLI cli.py.
"""

from __future__ import annotations

from systems import dfs
from systems.mapreduce.dfs_store import DfsStore
from systems.mapreduce.node import MrNode
from systems.runtime.api import NodeConfig, Runtime

BUGS: dict[str, str] = {
    "no-reexec-maps": "completed map tasks of a failed worker are never re-run: their intermediate data is lost "
    "with the worker and the job cannot finish",
    "non-atomic-output": "reducers write straight to the final output name, piece by piece: readers and crashes "
    "see partial output",
    "double-commit": "a second completion report of a completed map task (a backup's, a late worker's, or the "
    "same report delivered twice) is accepted too: reducers read that output twice",
}

MR_OPTIONS: dict[str, object] = {
    "coordinator": "",
    "workers": [],
    "slots": 1,
    "poll_s": 0.2,
    "mr_rpc_timeout_s": 2.0,
    "dfs_timeout_s": 10.0,
    "report_retry_s": 0.5,
    "ping_interval_s": 0.5,
    "ping_timeout_s": 1.0,
    "worker_timeout_s": 3.0,
    "assign_grace_s": 1.0,
    "backups": True,
    "backup_min_s": 2.0,
    "backup_factor": 2.0,
    "max_task_failures": 4,
    "fetch_failures_to_rerun": 2,
    "keep_jobs": 200,
    "sample_splits": 10,
    "sample_bytes": 65536,
    "corpus_files": 4,
    "corpus_bytes": 120_000,
    "jobs": 8,
}
"""MapReduce's own options (node.py and worker.py say what each does; the last three size the `jobs`
workload and are ignored by the nodes)."""

DFS_OVERRIDES: dict[str, object] = {"chunk_size": 64 * 1024}
"""Small chunks, so a small corpus still makes many map tasks (raise chunk_size for big inputs)."""

DEFAULT_OPTIONS: dict[str, object] = {**dfs.DEFAULT_OPTIONS, **DFS_OVERRIDES, **MR_OPTIONS}
"""One flat namespace: the DFS's options (so DFS faults and checkers read them as they would for the DFS
alone) and MapReduce's own, which never share a name with them."""


async def start_node(rt: Runtime, config: NodeConfig) -> None:
    """Both roles in one process: this node's DFS roles (chunkserver; master on its node), then MapReduce's."""
    options = {**DEFAULT_OPTIONS, **config.options}
    dfs_options = {k: v for k, v in options.items() if k in dfs.DEFAULT_OPTIONS}
    await dfs.start_node(rt, NodeConfig("dfs", (), dfs_options, config.seed))
    nodes = sorted([rt.node_id, *rt.peers])
    store = DfsStore(rt, nodes, options, home=rt.node_id, timeout_s=float(options["dfs_timeout_s"]))
    await MrNode(rt, NodeConfig(config.system, config.bugs, options, config.seed), store).start()


EXPOSED_BY: dict[str, dict[str, object]] = {
    "no-reexec-maps": {"nemesis": ["output-holder-kill"], "options": {"corpus_bytes": 400_000}},
    "non-atomic-output": {"nemesis": ["kill", "pause", "partition"]},
    "double-commit": {"nemesis": ["none"], "options": {"sim": {"duplicate": 0.05}}},
}
"""How the harness exposes each bug (`harness systems` prints it; harness/sweep_exposure.py): a worker holding
map output that reducers still need dies; workers killed, paused or cut off mid-write; a network that delivers
some frames twice (completion reports among them). Taken from tests/test_mapreduce_harness.py."""

SWARM_OPTIONS: dict[str, list[object]] = {
    "corpus_bytes": [120_000, 400_000],
    "sim": [{}, {"duplicate": 0.05}],
}
"""Node options a swarm run may draw: a larger corpus (28 map tasks a job instead of 8, so faults meet more
running and completed tasks), and on sim a network that delivers some frames twice (completion reports among
them), which no fault package deals."""

__all__ = ["BUGS", "DEFAULT_OPTIONS", "EXPOSED_BY", "SWARM_OPTIONS", "MrNode", "start_node"]
