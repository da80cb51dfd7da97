"""The `netns` backend: one Linux network namespace per node, a bridge as the switch, real faults.

Rules this module keeps (besides those of harness/backends/base.py):

- Needs root, `ip` (iproute2) and `iptables`; otherwise `run` raises
  `NetnsUnavailable` naming what is missing, before touching anything.
- The network comes from netns_net's plan (per-run token, free /24 from
  198.18.0.0/15). Every namespace and link is written to the run's
  HostsState *before* it is created (see harness/hosts_state), so
  `harness cleanup` can undo a run whose harness died.
- Nodes run as `ip netns exec NS python -m systems.<system> ...` (ip execs
  the python in place: the pid we hold is the node's), listening on their
  namespace's address, port 7000. The harness's client endpoint lives in
  the root namespace and reaches them over the bridge's address; partitions
  never cut it (only node addresses are ever in a DROP rule), link and
  switch faults do, as a real cable and a real switch would.
- Faults: partition = iptables DROP rules in each node's PICLUSTER chain
  (heal flushes the chains), `link_down/link_up` = the node's bridge-side
  veth down/up, `switch_off/switch_on` = the bridge down/up, kill/pause =
  SIGKILL/SIGSTOP by pid (as the local backend), power_off/power_on = kill
  and restart, set_links (flaky) = the
  runtime's packet filter through the control channel. `heal` also brings
  every link and the switch back up.
- With capture on (`NetnsBackend(capture=True)`, or PICLUSTER_CAPTURE=1 in
  the environment for `make_backend()`), every frame crossing the bridge is
  written to run_dir/capture.pcap (see netns_capture).
- Teardown on every exit path (return, exception, Ctrl-C, SIGTERM): node
  processes are continued, stopped and reaped, then every namespace (with
  its veth end and iptables chain) and the bridge are deleted, and the
  state record is emptied. Ctrl-C and SIGTERM are ignored while teardown
  runs, so a second Ctrl-C cannot leave half a network behind. A SIGTERM
  during the run ends it with SystemExit(143) after teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from base.cluster import CORE_CAPABILITIES, Capability, Grudge
from harness.backends import netns_net as net
from harness.backends.local import LocalCluster, _cluster_doc
from harness.backends.local_procs import NodeProcesses
from harness.backends.netns_capture import BridgeCapture
from harness.backends.netns_signals import signals_ignored, terminate_as_exit
from harness.hosts_state import HostsState
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_log import JsonLog

T = TypeVar("T")


class NetnsUnavailable(RuntimeError):
    """The machine cannot run the netns backend (not root, a tool missing); the message says which."""


class NetnsError(RuntimeError):
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


class NetnsProcesses(NodeProcesses):
    """Node processes started inside their namespaces; every pid goes into the hosts state."""

    def __init__(self, run_dir: Path, system: str, cluster_file: Path, plan: net.NetPlan,
                 state: HostsState, python: str = sys.executable) -> None:
        super().__init__(run_dir, system, cluster_file, python=python)
        self.plan = plan
        self.state = state

    def command(self, node: str) -> list[str]:
        return ["ip", "netns", "exec", self.plan.node(node).netns, *super().command(node)]

    def start(self, node: str) -> subprocess.Popen[bytes]:
        proc = super().start(node)
        self.state.add_pid(proc.pid)
        return proc

    def kill(self, node: str, timeout_s: float = 10.0) -> int | None:
        pid = self.pid(node)
        rc = super().kill(node, timeout_s)
        if pid is not None:
            self.state.drop_pid(pid)
        return rc

    def kill_all(self, grace_s: float = 1.0) -> None:
        super().kill_all(grace_s)
        for pid in list(self.state.pids):
            if pid not in {p.pid for p in self.procs.values()}:
                self.state.drop_pid(pid)


class NetnsCluster(LocalCluster):
    """`Cluster` over namespaces: LocalCluster's process control, real network faults."""

    capabilities = CORE_CAPABILITIES | {Capability.CABLE, Capability.SWITCH, Capability.PLUG, Capability.CORRUPT}

    def __init__(self, plan: net.NetPlan, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.plan = plan
        self.ipt_grudge: Grudge = {}
        self.links_down: set[str] = set()
        self.switch_is_off = False
        self._net_lock = asyncio.Lock()

    async def _sh_all(self, cmds: list[list[str]]) -> None:
        def go() -> None:
            for c in cmds:
                sh(c)

        await asyncio.to_thread(go)

    async def partition(self, grudge: Grudge) -> None:
        for dst, srcs in grudge.items():
            self._check(dst)
            for s in srcs:
                self._check(s)
        new = {dst: sorted(set(srcs)) for dst, srcs in grudge.items() if srcs}
        async with self._net_lock:
            cmds: list[list[str]] = []
            for node in self.nodes:
                if new.get(node, []) != self.ipt_grudge.get(node, []):
                    cmds += net.partition_rules(self.plan, node, new.get(node, []))
            self.ipt_grudge = new
            await self._sh_all(cmds)

    async def heal(self) -> None:
        await self.partition({})
        for node in sorted(self.links_down):
            await self.link_up(node)
        await self.switch_on()
        await super().heal()  # the runtime filter's link faults (flaky)

    async def link_down(self, node: str) -> None:
        self._check(node)
        async with self._net_lock:
            await self._sh_all([net.link_set(self.plan, node, up=False)])
            self.links_down.add(node)

    async def link_up(self, node: str) -> None:
        self._check(node)
        async with self._net_lock:
            if node in self.links_down:
                await self._sh_all([net.link_set(self.plan, node, up=True)])
                self.links_down.discard(node)

    async def switch_off(self) -> None:
        async with self._net_lock:
            await self._sh_all([net.switch_set(self.plan, on=False)])
            self.switch_is_off = True

    async def switch_on(self) -> None:
        async with self._net_lock:
            if self.switch_is_off:
                await self._sh_all([net.switch_set(self.plan, on=True)])
                self.switch_is_off = False

    async def power_off(self, node: str) -> None:
        """A namespace has no plug of its own: its node's every process is killed (SIGKILL)."""
        await self.kill(node)

    async def power_on(self, node: str) -> None:
        await self.restart(node)

    def rules(self, node: str) -> str:
        """The node's PICLUSTER chain as `iptables -S` prints it (for tests and post-mortems)."""
        return sh(net.ipt(self.plan.node(node), "-S", net.CHAIN)).stdout


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

    def run(self, spec: Any, body: Callable[[NetnsCluster], Awaitable[T]]) -> T:
        preflight(spec)
        given = getattr(spec, "run_dir", "")
        run_dir = (Path(given) if given else Path(tempfile.mkdtemp(prefix="picluster-"))).resolve()
        (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
        nodes = list(spec.nodes)
        plan = make_plan(nodes)
        cluster_file = run_dir / "cluster.json"
        state = HostsState(run_id=plan.prefix, backend="netns", run_dir=str(run_dir), marker=str(cluster_file))
        self.last_state, self.last_plan = state, plan
        (run_dir / "netns-plan.json").write_text(json.dumps(_plan_doc(plan), indent=2) + "\n")
        addrs = {n.node: (n.ip, plan.port) for n in plan.nodes}
        procs = NetnsProcesses(run_dir, spec.system, cluster_file, plan, state, python=self.python)
        capture: BridgeCapture | None = None
        with terminate_as_exit():
            try:
                state.save()
                build_network(plan, state)
                if self.capture:
                    capture = self.last_capture = BridgeCapture(plan.bridge, run_dir / "capture.pcap")
                    capture.start()
                cluster_file.write_text(json.dumps(_cluster_doc(spec, addrs), indent=2) + "\n")
                return asyncio.run(self._main(spec, body, run_dir, plan, addrs, procs))
            except asyncio.CancelledError:
                raise SystemExit(128 + signal.SIGTERM) from None
            finally:
                with signals_ignored():
                    if capture is not None:
                        capture.stop()
                    procs.kill_all()
                    teardown(state)

    async def _main(
        self,
        spec: Any,
        body: Callable[[NetnsCluster], Awaitable[T]],
        run_dir: Path,
        plan: net.NetPlan,
        addrs: dict[str, tuple[str, int]],
        procs: NetnsProcesses,
    ) -> T:
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()
        assert main_task is not None
        installed = False
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
            installed = True
        client_log = JsonLog.to_file("client", str(run_dir / "client.log"), min_level="info")
        client = ClientEndpoint(addrs, seed=getattr(spec, "seed", 0), log=client_log)
        cluster = NetnsCluster(plan, list(spec.nodes), addrs, procs, client, run_dir,
                               startup_timeout_s=self.startup_timeout_s)
        try:
            await cluster.start_all()
            return await body(cluster)
        finally:
            for node in sorted(cluster._paused):
                procs.signal(node, signal.SIGCONT)
            cluster._paused.clear()
            await client.close()
            client_log.close()
            if installed:
                loop.remove_signal_handler(signal.SIGTERM)


def _plan_doc(plan: net.NetPlan) -> dict[str, Any]:
    return {
        "prefix": plan.prefix, "subnet": plan.subnet, "bridge": plan.bridge, "bridge_ip": plan.bridge_ip,
        "port": plan.port,
        "nodes": {n.node: {"netns": n.netns, "veth_host": n.veth_host, "veth_ns": n.veth_ns, "ip": n.ip}
                  for n in plan.nodes},
    }


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
    from harness.hosts_state import cleanup_state

    return cleanup_state(state)


def preflight(spec: Any) -> None:
    """Raise NetnsUnavailable (one line) if this machine cannot run the spec; the CLI may call it before a run."""
    missing = missing_requirements()
    if missing:
        raise NetnsUnavailable("the netns backend needs " + "; ".join(missing))


def make_backend() -> NetnsBackend:
    return NetnsBackend()
