"""Clusters of our own systems for the benchmarks, several at once in one event loop.

`harness.backends.*.run` owns its event loop, so it runs one cluster at a
time; a fair benchmark keeps every contender up at once and alternates
between them. `local_cluster` and `netns_cluster` build the same
`ProcessCluster` the local and netns backends hand the runner (processes,
ping-until-ready, kill/restart) as async context managers.

Rules this module keeps:

- `local_cluster`: nodes listen on free 127.0.0.1 ports. `netns_cluster`:
  one network namespace per node on a bridge of our own (the netns backend's
  plan and commands), nodes on their namespace's address, the client in the
  root namespace reaching them through the bridge (needs root).
- Every pid, namespace and link is recorded in a `HostsState` before it
  exists, so `harness cleanup` undoes a benchmark that was killed; on every
  exit path every node process is stopped and reaped (SIGTERM, then
  SIGKILL, by its pid only), every namespace and link removed, and the data
  directory deleted.
- No network faults: a benchmark's cluster is never partitioned.
- Open nodes (no keys, `RuntimeProgram(auth=False)`), like the etcd and
  MooseFS they race, which run without TLS: bench/bench_rpc.py measures what
  authentication costs per round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import secrets
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from harness.backends.local import HOST, LocalCluster, free_ports
from harness.backends.netns import build_network, make_plan, missing_requirements, teardown
from harness.backends.networks import NoNetworkFaults
from harness.backends.node_program import RuntimeProgram
from harness.backends.processes import LocalProcesses
from harness.hosts_state import HostsState
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_log import JsonLog
from systems.runtime.real_transport import Address


def program(system: str, options: dict[str, Any] | None = None) -> RuntimeProgram:
    """The node program with the system's default options under `options`."""
    defaults = getattr(importlib.import_module(f"systems.{system}"), "DEFAULT_OPTIONS", {})
    return RuntimeProgram(system=system, options={**defaults, **(options or {})}, auth=False)


@contextlib.asynccontextmanager
async def _process_cluster(
    system: str, size: int, options: dict[str, Any] | None, *, python: str, backend: str,
    place: Callable[[list[str], HostsState, Path], tuple[dict[str, Address], Callable[[str], str] | None]],
    release: Callable[[HostsState], Any] | None = None,
) -> AsyncIterator[LocalCluster]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"picluster-bench-{system}-"))
    (run_dir / "nodes").mkdir()
    nodes = [f"n{i}" for i in range(1, size + 1)]
    prog = program(system, options)
    state = HostsState(run_id=f"bench-{backend}-{secrets.token_hex(4)}", backend=backend, run_dir=str(run_dir),
                       marker=prog.marker(str(run_dir)))
    state.save()
    client_log = JsonLog.to_file("client", str(run_dir / "client.log"), min_level="warning")
    client: ClientEndpoint | None = None
    procs: LocalProcesses | None = None
    try:
        addrs, namespace = place(nodes, state, run_dir)
        procs = LocalProcesses(run_dir, prog, state, hosts=dict(addrs), python=python, namespace=namespace)
        procs.write_config(prog.config_files(addrs))
        client = ClientEndpoint(dict(addrs), log=client_log)
        cluster = LocalCluster(nodes, dict(addrs), procs, prog, NoNetworkFaults("a benchmark's cluster"), client,
                               run_dir)
        await cluster.start_all()
        yield cluster
    finally:
        if client is not None:
            await client.close()
        if procs is not None:
            await asyncio.to_thread(procs.stop_all)
        if release is not None:
            await asyncio.to_thread(release, state)
        client_log.close()
        if state.is_empty():
            state.finish()
        shutil.rmtree(run_dir, ignore_errors=True)


def local_cluster(
    system: str, size: int, options: dict[str, Any] | None = None, *, python: str = sys.executable
) -> contextlib.AbstractAsyncContextManager[LocalCluster]:
    """`size` nodes of `system` (n1..nN) as processes on loopback, ready when this yields.

    `python` runs each node (bench/cprofile_node.py puts a profiler in between)."""

    def place(nodes: list[str], state: HostsState, run_dir: Path) -> tuple[dict[str, Address], None]:
        return dict(zip(nodes, ((HOST, p) for p in free_ports(len(nodes))), strict=True)), None

    return _process_cluster(system, size, options, python=python, backend="local", place=place)


def netns_cluster(
    system: str, size: int, options: dict[str, Any] | None = None, *, python: str = sys.executable
) -> contextlib.AbstractAsyncContextManager[LocalCluster]:
    """`size` nodes of `system`, each in a network namespace of its own on a bridge of our own (root)."""
    missing = missing_requirements()
    if missing:
        raise RuntimeError("a netns cluster needs " + "; ".join(missing))

    def place(nodes: list[str], state: HostsState, run_dir: Path) -> tuple[dict[str, Address], Callable[[str], str]]:
        plan = make_plan(nodes)
        build_network(plan, state)
        return {n.node: (n.ip, plan.port) for n in plan.nodes}, lambda node: plan.node(node).netns

    return _process_cluster(system, size, options, python=python, backend="netns", place=place, release=teardown)
