"""The `ssh` backend: the nodes run on real hosts (the Raspberry Pis), reached over SSH.

Rules this module keeps (besides those of harness/backends/base.py and lifecycle.py):

- The cluster file (`spec.cluster_file`, see ssh_config) names the hosts; a
  run of N nodes uses n1..nN. A broken file is one `ClusterConfigError`
  naming the field; an unreachable host one `HostUnreachable` naming the
  node; both before anything is changed on any host (`preflight` checks
  the file before a run directory exists).
- Deploy (see ssh_deploy): the project's wheel is installed into
  `<data_dir>/venv` on every host; the run lives in
  `<data_dir>/runs/<run_id>/` on each (see ssh_processes). Logs are fetched
  into run_dir/nodes/ at the end.
- Everything changed on a host (iptables chain, node pids) is written to the
  run's HostsState before it is done, so `harness cleanup` can undo a
  crashed run.
- Faults: partition = iptables DROP rules in the PICLUSTER chain on each
  destination host (networks.IptablesNetwork over `SshChains`), link faults
  (flaky) = the runtime's packet filter, kill/pause/resume = signals by
  pid, plug = the node's configured power commands run on this machine
  (then the host is waited for, the chain reinstalled and the node
  restarted), cable = the node's configured link commands (a managed
  switch's port off and on), switch = the cluster's commands. A command is a
  program run on this machine or an expect/send script on a console
  (console.py); either way a failure is one RuntimeError naming it. A fault whose
  command is not configured is refused (`NotConfigured`), never faked, and
  is missing from `capabilities`.
- Teardown (lifecycle's, plus, per host in parallel and each on its own):
  the chain flushed and removed, logs fetched, the connection closed, the
  host's record dropped once all of that worked.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from base.cluster import CORE_CAPABILITIES, Capability
from base.spec import TestSpec
from harness.backends import ssh_config
from harness.backends.console import ConsoleError, ConsoleScript, play
from harness.backends.hardware import NotConfigured
from harness.backends.lifecycle import Deployment, Teardown, record_run, run_directory, run_process_cluster
from harness.backends.networks import IptablesNetwork, RuntimeFilter
from harness.backends.node_program import NodeProgram, RuntimeProgram
from harness.backends.process_cluster import HardwareProcessCluster
from harness.backends.ssh_config import NodeHost, SshClusterConfig
from harness.backends.ssh_deploy import build_wheel, home_path, install
from harness.backends.ssh_processes import SshHost, SshProcesses
from harness.backends.ssh_remote import HostUnreachable, Remote
from harness.hosts_state import HostsState
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_transport import Address

__all__ = ["NotConfigured", "SshBackend", "make_backend", "preflight", "ssh_capabilities"]

T = TypeVar("T")


def run_local(argv: list[str], what: str, timeout: float = 120.0) -> None:
    """Run a configured power/switch command on this machine (no shell); an error names it."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"{what} command {argv!r} could not run: {e}") from None
    if r.returncode != 0:
        raise RuntimeError(f"{what} command {argv!r} failed ({r.returncode}): {r.stderr.strip()}")


def run_controller(cmd: ssh_config.Command, what: str, node: NodeHost | None = None) -> None:
    """A configured power/switch/link command: a program run here, or a script played on a console."""
    if isinstance(cmd, ConsoleScript):
        values = {"node": node.node, "host": node.host} if node is not None else {}
        try:
            play(cmd, what, values)
        except ConsoleError as e:
            raise RuntimeError(f"{what}: {e}") from None
        return
    run_local(ssh_config.expand(cmd, node), what)


def ssh_capabilities(config: SshClusterConfig, hosts: list[NodeHost]) -> frozenset[str]:
    """What an ssh cluster can do: the hardware faults need their commands in the cluster file."""
    return CORE_CAPABILITIES | hardware_capabilities(config, hosts)


def hardware_capabilities(config: SshClusterConfig, hosts: list[NodeHost]) -> frozenset[str]:
    caps = set()
    if hosts and all(h.link_down is not None and h.link_up is not None for h in hosts):
        caps.add(Capability.CABLE)
    if hosts and all(h.power_off is not None and h.power_on is not None for h in hosts):
        caps.add(Capability.PLUG)
    if config.switch_off is not None and config.switch_on is not None:
        caps.add(Capability.SWITCH)
    return frozenset(caps)


class SshChains:
    """Our iptables chain on each node's host, over SSH (`networks.Chains`)."""

    parallel = True  # separate machines

    def __init__(self, hosts: dict[str, SshHost]) -> None:
        self.hosts = hosts

    def install(self, node: str) -> None:
        self.hosts[node].remote.chain_install()

    def set_drops(self, node: str, sources: list[str]) -> None:
        self.hosts[node].remote.chain_set([self.hosts[s].ip for s in sources])


class SshHardware:
    """The commands of the cluster file: power plugs, switch ports (cables) and the switch itself."""

    def __init__(self, config: SshClusterConfig, hosts: dict[str, SshHost]) -> None:
        self.config = config
        self.hosts = hosts

    @property
    def capabilities(self) -> frozenset[str]:
        return hardware_capabilities(self.config, [h.host for h in self.hosts.values()])

    def cable(self, node: str, plugged: bool) -> None:
        h = self.hosts[node].host
        if h.link_down is None or h.link_up is None:
            raise NotConfigured(f"{h.where}: no link_down/link_up command in {self.config.source}; "
                                f"the link fault is refused rather than faked")
        run_controller(h.link_up if plugged else h.link_down, f"{node} link_{'up' if plugged else 'down'}", h)

    def switch(self, on: bool) -> None:
        if self.config.switch_off is None or self.config.switch_on is None:
            raise NotConfigured(f"no switch_off/switch_on command in [cluster] of {self.config.source}; "
                                f"the switch fault is refused rather than faked")
        run_controller(self.config.switch_on if on else self.config.switch_off, f"switch_{'on' if on else 'off'}")

    def power(self, node: str, on: bool) -> None:
        host = self.hosts[node]
        h = host.host
        if h.power_off is None or h.power_on is None:
            raise NotConfigured(f"{h.where}: no power_off/power_on command in {self.config.source}; "
                                f"the power fault is refused rather than faked")
        if not on:
            run_controller(h.power_off, f"{node} power_off", h)
            host.remote.close()
            return
        run_controller(h.power_on, f"{node} power_on", h)
        deadline = time.monotonic() + self.config.boot_timeout_s
        while True:  # the host boots: wait until it answers SSH again
            try:
                host.remote.close()
                host.remote.connect()
                return
            except HostUnreachable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)


def resolve(host: NodeHost) -> str:
    try:
        return socket.gethostbyname(host.host)
    except OSError as e:
        raise HostUnreachable(f"{host.where}: cannot resolve {host.host}: {e}") from None


def preflight(spec: TestSpec) -> None:
    """Raise ClusterConfigError (one line naming the field) for a missing or broken cluster file, or one
    that lacks a node the run wants; the CLI calls it before a run, as a usage error."""
    if not spec.cluster_file:
        raise ssh_config.ClusterConfigError("the ssh backend needs a cluster file (--cluster cluster.toml)")
    ssh_config.load(spec.cluster_file).select(list(spec.nodes))


class SshBackend:
    name = "ssh"

    def __init__(self, *, startup_timeout_s: float = 60.0,
                 processes: Callable[..., SshProcesses] = SshProcesses) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.processes = processes
        """How node processes run on the hosts (`harness cluster` runs them under a supervisor there)."""
        self.last_state: HostsState | None = None
        self.last_procs: SshProcesses | None = None

    @staticmethod
    def capabilities(spec: TestSpec) -> frozenset[str]:
        preflight(spec)
        assert spec.cluster_file is not None
        config = ssh_config.load(spec.cluster_file)
        return ssh_capabilities(config, config.select(list(spec.nodes)))

    def run(self, spec: TestSpec, body: Callable[[HardwareProcessCluster], Awaitable[T]],
            program: NodeProgram | None = None) -> T:
        preflight(spec)
        assert spec.cluster_file is not None
        config = ssh_config.load(spec.cluster_file)
        chosen = config.select(list(spec.nodes))
        run_dir = run_directory(spec)
        run_id = f"{run_dir.name}-{int(time.time() * 1000) % 10**9:09d}"
        prog = program or RuntimeProgram.for_spec(spec)

        def deploy(td: Teardown) -> Deployment:
            hosts = {h.node: SshHost(h, Remote(h, known_hosts=config.known_hosts,
                                               accept_new=config.accept_new_host_keys,
                                               timeout_s=config.connect_timeout_s), resolve(h)) for h in chosen}
            state = self.last_state = record_run(td, backend="ssh", run_id=run_id, run_dir=run_dir, marker="")
            procs = self.last_procs = self.processes(hosts, prog, state, config)
            td.push("clean up the hosts", lambda: release_hosts(hosts, procs, state, run_dir))
            with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
                list(pool.map(lambda h: h.remote.connect(), hosts.values()))
                deploy_hosts(hosts, procs, run_id, pool)

            def network(client: ClientEndpoint) -> IptablesNetwork:
                flt = RuntimeFilter(client, carries_grudge=False, alive=procs.alive) if prog.carries_filter else None
                return IptablesNetwork(list(hosts), SshChains(hosts), flt)

            addrs: dict[str, Address] = {n: (h.ip, h.host.port) for n, h in hosts.items()}
            return Deployment(procs=procs, program=prog, addrs=addrs, network=network,
                              hardware=SshHardware(config, hosts),
                              node_addrs={n: (h.host.host, h.host.port) for n, h in hosts.items()})

        return run_process_cluster(spec, body, run_dir=run_dir, deploy=deploy,
                                   startup_timeout_s=self.startup_timeout_s, probe_interval_s=0.1)


def deploy_hosts(hosts: dict[str, SshHost], procs: SshProcesses, run_id: str, pool: ThreadPoolExecutor) -> None:
    """Install the project on every host and make the run's directory and chain there (intent recorded first)."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp))

        def one(node: str) -> None:
            h = hosts[node]
            h.base = home_path(h.remote, h.host.data_dir)
            h.run_base = f"{h.base}/runs/{run_id}"
            procs.record(node)  # intent: chain and pids to come
            h.python = install(h.remote, wheel, h.base)
            h.remote.run(["mkdir", "-p", h.run_base])
            h.remote.chain_install()
            h.remote.chain_set([])

        list(pool.map(one, list(hosts)))


def release_hosts(hosts: dict[str, SshHost], procs: SshProcesses, state: HostsState, run_dir: Path) -> None:
    """Per host, each on its own: chain removed, logs fetched, connection closed, record dropped if all worked."""

    def one(node: str) -> None:
        h = hosts[node]
        if not h.run_base:  # nothing was done on this host
            h.remote.close()
            state.drop_remote(node)
            return
        try:
            h.remote.chain_remove()
            for name in (f"{node}.log", f"{node}.out"):
                h.remote.get(f"{h.run_base}/{name}", run_dir / "nodes" / name)
        except Exception as e:  # the record stays, for `harness cleanup`
            print(f"ssh teardown: {h.host.where}: {e}", file=sys.stderr)
            h.remote.close()
            return
        h.remote.close()
        if node not in procs.unstopped:
            state.drop_remote(node)

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        list(pool.map(one, list(hosts)))


def make_backend() -> SshBackend:
    return SshBackend()


if __name__ == "__main__":  # pragma: no cover
    print("use `harness run SYSTEM --backend ssh --cluster cluster.toml`", file=sys.stderr)
