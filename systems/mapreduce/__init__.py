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

from systems.mapreduce.node import MrNode
from systems.runtime.api import NodeConfig, Runtime

BUGS: dict[str, str] = {
    "no-reexec-maps": "completed map tasks of a failed worker are never re-run: their intermediate data is lost "
    "with the worker and the job cannot finish",
    "non-atomic-output": "reducers write straight to the final output name, piece by piece: readers and crashes "
    "see partial output",
    "double-commit": "a second completion of a completed map task is accepted too: reducers read both outputs "
    "and count them twice",
}

DEFAULT_OPTIONS: dict[str, object] = {
    "coordinator": "",
    "workers": [],
    "slots": 1,
    "poll_s": 0.2,
    "rpc_timeout_s": 2.0,
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
}


async def start_node(rt: Runtime, config: NodeConfig) -> None:
    raise NotImplementedError("the DFS store is wired in when systems/dfs lands")


__all__ = ["BUGS", "DEFAULT_OPTIONS", "MrNode", "start_node"]
