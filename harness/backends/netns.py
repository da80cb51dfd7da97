"""The `netns` backend: one Linux network namespace per node, a bridge as the switch, real faults.

Rules this module keeps (besides those of harness/backends/base.py and lifecycle.py):

- Needs root, `ip` (iproute2) and `iptables`; otherwise `run` (and
  `preflight`) raise `NetnsUnavailable` naming what is missing, before
  touching anything.
- The network comes from netns_commands' plan (per-run token, free /24
  from 198.18.0.0/15). Every namespace and link is written to the run's
  HostsState *before* it is created (see harness/hosts_state), so `harness
  cleanup` can undo a run whose harness died; so is every node pid.
- Nodes run as `ip netns exec NS <program>` (ip execs the program in place:
  the pid we hold is the node's), listening on their namespace's address,
  port 7000. The harness's client endpoint lives in the root namespace and
  reaches them over the bridge's address; partitions never cut it (only
  node addresses are ever in a DROP rule), cable and switch faults do, as a
  real cable and a real switch would.
- Faults: partition = iptables DROP rules in each node's PICLUSTER chain
  (networks.IptablesNetwork over `NamespaceChains`), link faults (flaky) =
  the runtime's packet filter, cable = the node's bridge-side veth down/up,
  switch = the bridge down/up, plug = every process of the namespace
  SIGKILLed (a namespace has no power of its own), then restarted.
- With capture on (`NetnsBackend(capture=True)`, or PICLUSTER_CAPTURE=1 in
  the environment for `make_backend()`), every frame crossing the bridge is
  written to run_dir/capture.pcap (see netns_capture).
- Teardown (lifecycle's, plus): the capture stopped, then every namespace
  (with its veth end and iptables chain) and the bridge deleted, and the
  state record emptied.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from base.cluster import CORE_CAPABILITIES, Capability
from base.spec import TestSpec
from harness.backends import netns_commands as net
from harness.backends.base import SetupError
from harness.backends.lifecycle import Deployment, Teardown, record_run, run_directory, run_process_cluster
from harness.backends.netns_capture import BridgeCapture
from harness.backends.networks import IptablesNetwork, RuntimeFilter
from harness.backends.node_program import NodeProgram, RuntimeProgram
from harness.backends.process_cluster import HardwareProcessCluster
from harness.backends.processes import LocalProcesses
from harness.hosts_state import HostsState, cleanup_state
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_transport import Address

T = TypeVar("T")

CAPABILITIES = CORE_CAPABILITIES | {Capability.CABLE, Capability.SWITCH, Capability.PLUG, Capability.CORRUPT}


class NetnsUnavailable(SetupError):
    """The machine cannot run the netns backend (not root, a tool missing); the message says which."""


class NetnsError(SetupError):
    """A network command failed; the message quotes it and its stderr."""


def missing_requirements() -> list[str]:
    """What keeps this machine from running the netns backend (empty when it can)."""
    out = []
    if os.geteuid() != 0:
        out.append("root (the netns backend creates namespaces and iptables rules)")
    for tool, pkg in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            out.append(f"the `{tool}` command (Debian package {pkg})")
    return out


def preflight(spec: TestSpec) -> None:
    """Raise NetnsUnavailable (one line) if this machine cannot run the spec; the CLI calls it before a run."""
    missing = missing_requirements()
    if missing:
        raise NetnsUnavailable("the netns backend needs " + "; ".join(missing))


def sh(argv: list[str], *, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def make_plan(nodes: list[str], token: str | None = None) -> net.NetPlan:
    token = token or secrets.token_hex(3)[:5]
    routes = sh(["ip", "-o", "-4", "route", "show", "table", "all"]).stdout.splitlines()
    addrs = sh(["ip", "-o", "-4", "addr", "show"]).stdout.splitlines()
    used = net.used_networks(routes, addrs)
    subnet: ipaddress.IPv4Network = net.pick_subnet(used, int(token, 16) % len(net.CANDIDATES))
    return net.make_plan(token, nodes, subnet)


def build_network(plan: net.NetPlan, state: HostsState) -> None:
    """Create the bridge and one wired namespace per node, recording each before creating it."""
    state.add_link(plan.bridge)
    for c in net.bridge_up(plan):
        sh(c)
    for n in plan.nodes:
        state.add_netns(n.netns)
        sh(["ip", "netns", "add", n.netns])
        state.add_link(n.veth_host)
        sh(net.veth_add(n))
        for c in net.node_up(plan, n):
            sh(c)


def teardown(state: HostsState) -> list[str]:
    """Delete every namespace and link the state records (processes must be gone already)."""
    return cleanup_state(state)


def rules(plan: net.NetPlan, node: str) -> str:
    """The node's PICLUSTER chain as `iptables -S` prints it (for tests and post-mortems)."""
    return sh(net.ipt(plan.node(node), "-S", net.CHAIN)).stdout


class NamespaceChains:
    """Our iptables chain inside each node's namespace (`networks.Chains`)."""

    parallel = False  # one machine: the commands go one at a time

    def __init__(self, plan: net.NetPlan) -> None:
        self.plan = plan

    def install(self, node: str) -> None:
        n = self.plan.node(node)
        sh(net.ipt(n, "-N", net.CHAIN), check=False)
        if sh(net.ipt(n, "-C", "INPUT", "-j", net.CHAIN), check=False).returncode != 0:
            sh(net.ipt(n, "-I", "INPUT", "-j", net.CHAIN))

    def set_drops(self, node: str, sources: list[str]) -> None:
        for c in net.partition_rules(self.plan, node, sources):
            sh(c)


class NetnsHardware:
    """Cables are the veths' bridge ends, the switch is the bridge; a namespace has no power of its own."""

    capabilities = frozenset({Capability.CABLE, Capability.SWITCH, Capability.PLUG})

    def __init__(self, plan: net.NetPlan) -> None:
        self.plan = plan

    def cable(self, node: str, plugged: bool) -> None:
        sh(net.link_set(self.plan, node, up=plugged))

    def switch(self, on: bool) -> None:
        sh(net.switch_set(self.plan, on=on))

    def power(self, node: str, on: bool) -> None:
        return None  # the cluster kills the namespace's node process (Processes.lost) and restarts it


def _plan_doc(plan: net.NetPlan) -> dict[str, Any]:
    return {
        "prefix": plan.prefix, "subnet": plan.subnet, "bridge": plan.bridge, "bridge_ip": plan.bridge_ip,
        "port": plan.port,
        "nodes": {n.node: {"netns": n.netns, "veth_host": n.veth_host, "veth_ns": n.veth_ns, "ip": n.ip}
                  for n in plan.nodes},
    }


class NetnsBackend:
    name = "netns"

    def __init__(self, *, startup_timeout_s: float = 20.0, python: str = sys.executable,
                 capture: bool | None = None) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.python = python
        self.capture = capture if capture is not None else os.environ.get("PICLUSTER_CAPTURE", "") in ("1", "yes")
        self.last_capture: BridgeCapture | None = None
        self.last_state: HostsState | None = None
        self.last_plan: net.NetPlan | None = None

    @staticmethod
    def capabilities(spec: TestSpec) -> frozenset[str]:
        return CAPABILITIES

    def run(self, spec: TestSpec, body: Callable[[HardwareProcessCluster], Awaitable[T]],
            program: NodeProgram | None = None) -> T:
        preflight(spec)
        run_dir = run_directory(spec)
        prog = program or RuntimeProgram.for_spec(spec)
        nodes = list(spec.nodes)

        def deploy(td: Teardown) -> Deployment:
            plan = self.last_plan = make_plan(nodes)
            state = self.last_state = record_run(td, backend="netns", run_id=plan.prefix, run_dir=run_dir,
                                                 marker=prog.marker(str(run_dir)))
            (run_dir / "netns-plan.json").write_text(json.dumps(_plan_doc(plan), indent=2) + "\n")
            td.push("remove the namespaces and the bridge", lambda: _report(teardown(state)))
            build_network(plan, state)
            if self.capture:
                capture = self.last_capture = BridgeCapture(plan.bridge, run_dir / "capture.pcap")
                capture.start()
                td.push("stop the capture", capture.stop)
            addrs: dict[str, Address] = {n.node: (n.ip, plan.port) for n in plan.nodes}
            procs = LocalProcesses(run_dir, prog, state, hosts=addrs, python=self.python,
                                   namespace=lambda node: plan.node(node).netns)

            def network(client: ClientEndpoint) -> IptablesNetwork:
                flt = RuntimeFilter(client, carries_grudge=False, alive=procs.alive) if prog.carries_filter else None
                return IptablesNetwork(nodes, NamespaceChains(plan), flt)

            return Deployment(procs=procs, program=prog, addrs=addrs, network=network,
                              hardware=NetnsHardware(plan))

        return run_process_cluster(spec, body, run_dir=run_dir, deploy=deploy,
                                   startup_timeout_s=self.startup_timeout_s)


def _report(lines: list[str]) -> None:
    failed = [line for line in lines if line.startswith("FAILED")]
    if failed:
        raise RuntimeError("; ".join(failed) + " (`harness cleanup` will try again)")


def make_backend() -> NetnsBackend:
    return NetnsBackend()
