"""Clusters of our own systems for the benchmarks, several at once in one event loop.

`harness.backends.local.LocalBackend.run` owns its event loop, so it runs one
cluster at a time; a fair benchmark keeps every contender up at once and
alternates between them. `local_cluster` builds the same `LocalCluster`
(processes, ports, ping-until-ready, kill/restart) as an async context manager.

Rules this module keeps:

- Nodes listen on free 127.0.0.1 ports; data lives in a temporary directory
  removed on exit.
- Every node process is stopped and reaped on every exit path (SIGTERM, then
  SIGKILL), by its pid only.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from harness.backends.local_procs import NodeProcesses

from harness.backends.local import HOST, LocalCluster, free_ports
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_log import JsonLog


def cluster_doc(system: str, addrs: dict[str, tuple[str, int]], options: dict[str, Any]) -> dict[str, Any]:
    defaults = getattr(importlib.import_module(f"systems.{system}"), "DEFAULT_OPTIONS", {})
    return {
        "system": system,
        "seed": 0,
        "bugs": [],
        "options": {**defaults, **options},
        "nodes": {n: {"host": h, "port": p} for n, (h, p) in addrs.items()},
    }


@contextlib.asynccontextmanager
async def local_cluster(
    system: str, size: int, options: dict[str, Any] | None = None, *, python: str = sys.executable
) -> AsyncIterator[LocalCluster]:
    """`size` nodes of `system` (n1..nN) as local processes, ready when this yields.

    `python` runs each node (bench/cprofile_node.py puts a profiler in between)."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"picluster-bench-{system}-"))
    nodes = [f"n{i}" for i in range(1, size + 1)]
    addrs = dict(zip(nodes, ((HOST, p) for p in free_ports(size)), strict=True))
    cluster_file = run_dir / "cluster.json"
    cluster_file.write_text(json.dumps(cluster_doc(system, addrs, options or {}), indent=2) + "\n")
    (run_dir / "nodes").mkdir()
    procs = NodeProcesses(run_dir, system, cluster_file, python=python)
    client_log = JsonLog.to_file("client", str(run_dir / "client.log"), min_level="warning")
    client = ClientEndpoint(addrs, log=client_log)
    cluster = LocalCluster(nodes, addrs, procs, client, run_dir)
    try:
        await cluster.start_all()
        yield cluster
    finally:
        await client.close()
        await asyncio.to_thread(procs.kill_all)
        client_log.close()
        shutil.rmtree(run_dir, ignore_errors=True)
