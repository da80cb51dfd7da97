"""The `local` backend: one OS process per node on this machine, faults without root.

Rules this module keeps (besides those of harness/backends/base.py and lifecycle.py):

- Nodes listen on loopback ports that were free a moment before; their
  config (run_dir/cluster.json: system, seed, bugs, the spec's options,
  nodes) comes from the node program (node_program.RuntimeProgram). A node
  that exits saying its port was taken makes the lifecycle start the whole
  cluster again on fresh ports.
- Processes are `processes.LocalProcesses`; every node pid is recorded in
  the run's HostsState (run_dir/hosts-state.json and the well-known
  directory) while it lives, so `harness cleanup` can remove the nodes of a
  harness that was killed.
- Faults: kill/pause by signal, partition and link faults in the nodes' own
  packet filters (networks.FilterNetwork), bytes flipped in the nodes' files
  (LocalProcesses.corrupt_file). Capabilities: kill, pause, partition,
  links, corrupt.
- A program without a packet filter of ours (an external one: etcd) is
  partitioned, as root, by iptables rules that match each node's cgroup
  (cgroup_partitions.CgroupChains, set up before the first node starts and
  removed after the last one stopped); without root it gets no network
  faults, and the registry refuses partitions before the run.
"""

from __future__ import annotations

import secrets
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from base.cluster import CORE_CAPABILITIES, Capability
from base.spec import TestSpec
from harness.backends import cgroup_partitions
from harness.backends.lifecycle import Deployment, Teardown, record_run, run_directory, run_process_cluster
from harness.backends.networks import FilterNetwork, IptablesNetwork, Network, NoNetworkFaults, RuntimeFilter
from harness.backends.node_program import NodeProgram, RuntimeProgram
from harness.backends.process_cluster import NodeStartError, ProcessCluster
from harness.backends.processes import LocalProcesses
from harness.hosts_state import HostsState
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_transport import Address

__all__ = ["HOST", "LocalBackend", "LocalCluster", "NodeStartError", "free_ports"]

T = TypeVar("T")

HOST = "127.0.0.1"

LocalCluster = ProcessCluster
"""The local backend's cluster is the shared process cluster, with the runtime filter as its network."""


def free_ports(n: int, host: str = HOST) -> list[int]:
    """n distinct ports that were free on `host` a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LocalBackend:
    name = "local"

    def __init__(self, *, startup_timeout_s: float = 20.0, python: str = sys.executable) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.python = python
        self.last_pids: list[int] = []
        """Every node pid started by the last `run` (all reaped once it returns)."""
        self.last_state: HostsState | None = None

    @staticmethod
    def capabilities(spec: TestSpec) -> frozenset[str]:
        """What a local cluster for this spec can do (known before anything starts)."""
        return CORE_CAPABILITIES | {Capability.CORRUPT}

    def run(self, spec: TestSpec, body: Callable[[ProcessCluster], Awaitable[T]],
            program: NodeProgram | None = None) -> T:
        run_dir = run_directory(spec)
        prog = program or RuntimeProgram.for_spec(spec)
        holder: list[LocalProcesses] = []

        def deploy(teardown: Teardown) -> Deployment:
            state = record_run(teardown, backend="local", run_id=f"local-{secrets.token_hex(4)}", run_dir=run_dir,
                               marker=prog.marker(str(run_dir)))
            self.last_state = state
            nodes = list(spec.nodes)
            addrs: dict[str, Address] = dict(zip(nodes, ((HOST, p) for p in free_ports(len(nodes))), strict=True))
            chains = self._cgroup_chains(prog, state, nodes, teardown)
            procs = LocalProcesses(run_dir, prog, state, hosts=addrs, python=self.python,
                                   wrap=chains.wrap if chains else None)
            holder.append(procs)

            def readdress() -> dict[str, Address]:
                fresh = dict(zip(nodes, ((HOST, p) for p in free_ports(len(nodes))), strict=True))
                procs.hosts.update(fresh)
                return fresh

            def network(client: ClientEndpoint) -> Network:
                if chains is not None:
                    return IptablesNetwork(nodes, chains, None)
                if not prog.carries_filter:
                    return NoNetworkFaults("the nodes have no packet filter of their own: partitions need root "
                                           "here (" + "; ".join(cgroup_partitions.missing()) + ") or the netns backend")
                return FilterNetwork(nodes, RuntimeFilter(client, carries_grudge=True, alive=procs.alive))

            return Deployment(procs=procs, program=prog, addrs=dict(addrs), network=network, readdress=readdress)

        try:
            return run_process_cluster(spec, body, run_dir=run_dir, deploy=deploy,
                                       startup_timeout_s=self.startup_timeout_s)
        finally:
            self.last_pids = list(holder[0].started_pids) if holder else []

    @staticmethod
    def _cgroup_chains(prog: NodeProgram, state: HostsState, nodes: list[str],
                       teardown: Teardown) -> cgroup_partitions.CgroupChains | None:
        """Cgroups and chains for a filterless program when this machine can make them, else None."""
        endpoints = getattr(prog, "endpoints", None)
        if prog.carries_filter or endpoints is None or cgroup_partitions.missing():
            return None
        chains = cgroup_partitions.CgroupChains(state.run_id, nodes, endpoints, state)
        teardown.push("remove the cgroups and iptables chains", lambda: _report(chains.remove()))
        chains.prepare()
        return chains


def _report(lines: list[str]) -> None:
    failed = [line for line in lines if line.startswith("FAILED")]
    if failed:
        raise RuntimeError("; ".join(failed) + " (`harness cleanup` will try again)")


def make_backend() -> LocalBackend:
    return LocalBackend()
