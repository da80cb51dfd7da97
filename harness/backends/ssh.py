"""The `ssh` backend: the nodes run on real hosts (the Raspberry Pis), reached over SSH.

Rules this module keeps (besides those of harness/backends/base.py):

- The cluster file (`spec.cluster_file`, see ssh_config) names the hosts; a
  run of N nodes uses n1..nN. A broken file is one `ClusterConfigError`
  naming the field; an unreachable host one `HostUnreachable` naming the
  node; both before anything is changed on any host.
- Deploy (see ssh_deploy): the project's wheel is installed into
  `<data_dir>/venv` on every host; the run lives in
  `<data_dir>/runs/<run_id>/` (cluster.json, data/<node>, <node>.log,
  <node>.out, <node>.pid). A node is started detached (`setsid`, stdio to
  files) so it outlives the SSH session; its pid is read back from its pid
  file. Logs are fetched into run_dir/nodes/ at the end.
- Everything changed on a host (iptables chain, node pids) is written to the
  run's HostsState before it is done, so `harness cleanup` can undo a
  crashed run; a remote pid is only ever signalled while its command line
  still carries this run's cluster file path.
- Faults: partition = iptables DROP rules in the PICLUSTER chain on each
  destination host (heal flushes it), kill/pause/resume = signals by pid,
  set_links (flaky) = the runtime's packet filter through the control
  channel, power_off/power_on = the node's configured commands run on this
  machine (then the host is waited for, the chain reinstalled and the node
  restarted), link_down/link_up = the node's configured commands (a managed
  switch's port off and on), switch_off/switch_on = the cluster's commands. A
  fault whose command is not configured is refused (`NotConfigured`), never
  faked.
- Teardown on every exit path: switch and links back on, powered-off hosts back on,
  paused nodes continued, chains flushed and removed, nodes stopped (TERM,
  then KILL), logs fetched, connections closed, the state record emptied.
  Ctrl-C and SIGTERM are ignored while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from base.cluster import CORE_CAPABILITIES, Capability, Grudge, LinkFault
from harness.backends import ssh_config
from harness.backends.local import _cluster_doc
from harness.backends.netns_signals import signals_ignored, terminate_as_exit
from harness.backends.ssh_config import NodeHost, SshClusterConfig
from harness.backends.ssh_deploy import build_wheel, home_path, install
from harness.backends.ssh_remote import CHAIN, HostUnreachable, Remote, script
from harness.hosts_state import HostsState
from systems.runtime.api import RpcError
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_log import JsonLog

T = TypeVar("T")


class NotConfigured(RuntimeError):
    """A power or switch fault was asked for but the cluster file gives no command for it."""


class NodeStartError(RuntimeError):
    pass


@dataclass
class SshNode:
    host: NodeHost
    remote: Remote
    ip: str
    base: str = ""
    run_base: str = ""
    python: str = ""
    pid: int | None = None
    paused: bool = False
    powered_off: bool = False
    pids: list[int] = field(default_factory=list)

    @property
    def cluster_path(self) -> str:
        return f"{self.run_base}/cluster.json"


def run_local(argv: list[str], what: str, timeout: float = 120.0) -> None:
    """Run a configured power/switch command on this machine (no shell); an error names it."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"{what} command {argv!r} could not run: {e}") from None
    if r.returncode != 0:
        raise RuntimeError(f"{what} command {argv!r} failed ({r.returncode}): {r.stderr.strip()}")


class SshCluster:
    """`Cluster` over SSH hosts. All blocking SSH work runs in worker threads."""

    def __init__(self, config: SshClusterConfig, nodes: dict[str, SshNode], client: ClientEndpoint,
                 run_dir: Path, state: HostsState, *, system: str, startup_timeout_s: float = 60.0) -> None:
        self.config = config
        self.nodes = list(nodes)
        self.by_id = nodes
        self.client = client
        self.run_dir = run_dir
        self.state = state
        self.system = system
        self.startup_timeout_s = startup_timeout_s
        self.grudge: Grudge = {}
        self.links: dict[tuple[str, str], LinkFault] = {}
        self.version = 0
        self.switch_is_off = False
        self.links_down: set[str] = set()

    @property
    def capabilities(self) -> frozenset[str]:
        """The core faults, plus cable, plug and switch where the cluster file gives their commands."""
        return ssh_capabilities(self.config, [n.host for n in self.by_id.values()])

    def _node(self, node: str) -> SshNode:
        if node not in self.by_id:
            raise ValueError(f"unknown node {node!r} (nodes: {', '.join(self.nodes)})")
        return self.by_id[node]

    # -- queries ------------------------------------------------------------------------------
    def is_up(self, node: str) -> bool:
        return self._node(node).pid is not None

    def pid(self, node: str) -> int | None:
        return self._node(node).pid

    # -- processes (blocking halves) ----------------------------------------------------------
    def start_blocking(self, node: str) -> int:
        n = self._node(node)
        pidfile = f"{n.run_base}/{node}.pid"
        cmd = script(
            "mkdir -p {data} && cd {run} && rm -f {pidfile} && "
            "(setsid sh -c 'echo $$ > \"$0\"; exec \"$@\"' {pidfile} {py} -m {module} --cluster {cluster} "
            "--id {node} --data-dir {data} --log {log} >> {out} 2>&1 < /dev/null &) ; "
            "i=0; while [ ! -s {pidfile} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; cat {pidfile}",
            data=f"{n.run_base}/data/{node}", run=n.run_base, pidfile=pidfile, py=n.python,
            module=f"systems.{self.system}", cluster=n.cluster_path, node=node,
            log=f"{n.run_base}/{node}.log", out=f"{n.run_base}/{node}.out",
        )
        out = n.remote.sh(cmd).out.strip()
        try:
            pid = int(out.splitlines()[-1])
        except (ValueError, IndexError):
            raise NodeStartError(f"{n.host.where}: node did not report its pid (got {out!r})") from None
        n.pid, n.paused = pid, False
        n.pids.append(pid)
        self._save_entry(n)
        return pid

    def signal_blocking(self, node: str, sig: str) -> bool:
        n = self._node(node)
        if n.pid is None:
            return False
        return n.remote.signal_if_ours(n.pid, sig, n.cluster_path)

    def _save_entry(self, n: SshNode) -> None:
        self.state.set_remote(remote_entry(n, self.config))

    def log_tail(self, node: str) -> str:
        n = self._node(node)
        r = n.remote.run(["tail", "-n", "15", f"{n.run_base}/{node}.out", f"{n.run_base}/{node}.log"], check=False)
        return r.out.strip() or "(no log)"

    # -- processes ----------------------------------------------------------------------------
    async def start_all(self) -> None:
        await asyncio.gather(*(self._start(n) for n in self.nodes))

    async def _start(self, node: str) -> None:
        await asyncio.to_thread(self.start_blocking, node)
        await self._wait_ready(node)
        await self._apply_filter(node)

    async def _wait_ready(self, node: str) -> None:
        n = self._node(node)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout_s
        last = "no answer"
        while loop.time() < deadline:
            try:
                reply = await self.client.control(node, "ping", None, timeout=1.0)
            except RpcError as e:
                last = repr(e)
                await asyncio.sleep(0.1)
                continue
            if isinstance(reply, dict) and reply.get("pid") == n.pid and reply.get("ready"):
                return
            last = f"ping answered {reply!r} (expected ready from pid {n.pid})"
            await asyncio.sleep(0.1)
        tail = await asyncio.to_thread(self.log_tail, node)
        raise NodeStartError(f"{n.host.where}: the node did not answer ping within "
                             f"{self.startup_timeout_s}s ({last}); its log ends:\n{tail}")

    async def kill(self, node: str) -> None:
        n = self._node(node)
        if n.pid is None:
            return
        await asyncio.to_thread(self.signal_blocking, node, "KILL")
        n.pid, n.paused = None, False

    async def restart(self, node: str) -> None:
        n = self._node(node)
        if n.pid is not None:
            return
        await self._start(node)
        await asyncio.to_thread(self._apply_grudge_blocking, node)

    async def pause(self, node: str) -> None:
        n = self._node(node)
        if n.pid is None or n.paused:
            return
        await asyncio.to_thread(self.signal_blocking, node, "STOP")
        n.paused = True

    async def resume(self, node: str) -> None:
        n = self._node(node)
        if not n.paused:
            return
        await asyncio.to_thread(self.signal_blocking, node, "CONT")
        n.paused = False
        await self._apply_filter(node)

    # -- network faults -----------------------------------------------------------------------
    def _apply_grudge_blocking(self, node: str) -> None:
        n = self._node(node)
        n.remote.chain_set([self._node(s).ip for s in self.grudge.get(node, [])])

    async def partition(self, grudge: Grudge) -> None:
        for dst, srcs in grudge.items():
            self._node(dst)
            for s in srcs:
                self._node(s)
        new = {dst: sorted(set(srcs)) for dst, srcs in grudge.items() if srcs}
        changed = [n for n in self.nodes if new.get(n, []) != self.grudge.get(n, [])]
        self.grudge = new
        await asyncio.gather(*(asyncio.to_thread(self._apply_grudge_blocking, n) for n in changed))

    async def set_links(self, faults: dict[tuple[str, str], LinkFault]) -> None:
        for src, dst in faults:
            self._node(src)
            self._node(dst)
        self.links = dict(faults)
        self.version += 1
        await asyncio.gather(*(self._apply_filter(n) for n in self.nodes))

    async def _apply_filter(self, node: str) -> None:
        n = self._node(node)
        if n.pid is None or n.paused:
            return
        body = {
            "version": self.version,
            "grudge": [],
            "links": {src: f.to_wire() for (src, dst), f in sorted(self.links.items()) if dst == node},
        }
        await self.client.control(node, "set-filter", body, timeout=2.0)

    async def heal(self) -> None:
        await self.switch_on()
        for node in sorted(self.links_down):
            await self.link_up(node)
        await self.partition({})
        if self.links:
            await self.set_links({})

    # -- power and switch ---------------------------------------------------------------------
    async def power_off(self, node: str) -> None:
        n = self._node(node)
        if n.host.power_off is None or n.host.power_on is None:
            raise NotConfigured(f"{n.host.where}: no power_off/power_on command in {self.config.source}; "
                                f"the power fault is refused rather than faked")
        await asyncio.to_thread(run_local, ssh_config.expand(n.host.power_off, n.host), f"{node} power_off")
        n.powered_off, n.pid, n.paused = True, None, False
        await asyncio.to_thread(n.remote.close)

    async def power_on(self, node: str) -> None:
        n = self._node(node)
        if not n.powered_off:
            return
        assert n.host.power_on is not None
        await asyncio.to_thread(self.power_on_blocking, node)
        await self._start(node)

    def power_on_blocking(self, node: str) -> None:
        n = self._node(node)
        assert n.host.power_on is not None
        run_local(ssh_config.expand(n.host.power_on, n.host), f"{node} power_on")
        deadline = time.monotonic() + self.config.boot_timeout_s
        while True:
            try:
                n.remote.close()
                n.remote.connect()
                break
            except HostUnreachable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        n.remote.chain_install()
        self._apply_grudge_blocking(node)
        n.powered_off = False

    async def link_down(self, node: str) -> None:
        n = self._node(node)
        if n.host.link_down is None or n.host.link_up is None:
            raise NotConfigured(f"{n.host.where}: no link_down/link_up command in {self.config.source}; "
                                f"the link fault is refused rather than faked")
        await asyncio.to_thread(run_local, ssh_config.expand(n.host.link_down, n.host), f"{node} link_down")
        self.links_down.add(node)

    async def link_up(self, node: str) -> None:
        n = self._node(node)
        if node not in self.links_down or n.host.link_up is None:
            return
        await asyncio.to_thread(run_local, ssh_config.expand(n.host.link_up, n.host), f"{node} link_up")
        self.links_down.discard(node)

    async def switch_off(self) -> None:
        if self.config.switch_off is None or self.config.switch_on is None:
            raise NotConfigured(f"no switch_off/switch_on command in [cluster] of {self.config.source}; "
                                f"the switch fault is refused rather than faked")
        await asyncio.to_thread(run_local, list(self.config.switch_off), "switch_off")
        self.switch_is_off = True

    async def switch_on(self) -> None:
        if not self.switch_is_off or self.config.switch_on is None:
            return
        await asyncio.to_thread(run_local, list(self.config.switch_on), "switch_on")
        self.switch_is_off = False


def ssh_capabilities(config: SshClusterConfig, hosts: list[NodeHost]) -> frozenset[str]:
    """What an ssh cluster can do: the hardware faults need their commands in the cluster file."""
    caps = set(CORE_CAPABILITIES)
    if hosts and all(h.link_down is not None and h.link_up is not None for h in hosts):
        caps.add(Capability.CABLE)
    if hosts and all(h.power_off is not None and h.power_on is not None for h in hosts):
        caps.add(Capability.PLUG)
    if config.switch_off is not None and config.switch_on is not None:
        caps.add(Capability.SWITCH)
    return frozenset(caps)


def remote_entry(n: SshNode, config: SshClusterConfig) -> dict[str, Any]:
    h = n.host
    return {
        "node": h.node, "host": h.host, "ssh_port": h.ssh_port, "user": h.user, "key": h.key,
        "sudo": h.sudo, "port": h.port, "known_hosts": config.known_hosts, "chain": CHAIN,
        "pids": list(n.pids), "marker": n.cluster_path,
    }


def resolve(host: NodeHost) -> str:
    try:
        return socket.gethostbyname(host.host)
    except OSError as e:
        raise HostUnreachable(f"{host.where}: cannot resolve {host.host}: {e}") from None


class SshBackend:
    name = "ssh"

    def __init__(self, *, startup_timeout_s: float = 60.0) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.last_state: HostsState | None = None

    def run(self, spec: Any, body: Callable[[SshCluster], Awaitable[T]]) -> T:
        preflight(spec)
        config = ssh_config.load(spec.cluster_file)
        hosts = config.select(list(spec.nodes))
        given = getattr(spec, "run_dir", "")
        run_dir = (Path(given) if given else Path(tempfile.mkdtemp(prefix="picluster-"))).resolve()
        (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
        run_id = f"{run_dir.name}-{int(time.time() * 1000) % 10**9:09d}"
        state = HostsState(run_id=run_id, backend="ssh", run_dir=str(run_dir))
        self.last_state = state
        nodes = {h.node: SshNode(h, Remote(h, known_hosts=config.known_hosts,
                                           accept_new=config.accept_new_host_keys,
                                           timeout_s=config.connect_timeout_s), resolve(h)) for h in hosts}
        holder: dict[str, SshCluster] = {}
        with terminate_as_exit():
            try:
                state.save()
                with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
                    list(pool.map(lambda n: n.remote.connect(), nodes.values()))
                    self._deploy(spec, config, nodes, run_dir, run_id, state, pool)
                return asyncio.run(self._main(spec, body, config, nodes, run_dir, state, holder))
            except asyncio.CancelledError:
                raise SystemExit(143) from None
            finally:
                with signals_ignored():
                    teardown(nodes, holder.get("cluster"), run_dir, state)

    def _deploy(self, spec: Any, config: SshClusterConfig, nodes: dict[str, SshNode], run_dir: Path,
                run_id: str, state: HostsState, pool: ThreadPoolExecutor) -> None:
        doc = _cluster_doc(spec, {n.host.node: (n.host.host, n.host.port) for n in nodes.values()})
        cluster_json = run_dir / "cluster.json"
        cluster_json.write_text(json.dumps(doc, indent=2) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            wheel = build_wheel(Path(tmp))

            def one(n: SshNode) -> None:
                n.base = home_path(n.remote, n.host.data_dir)
                n.run_base = f"{n.base}/runs/{run_id}"
                state.set_remote(remote_entry(n, config))  # intent: chain and pids to come
                n.python = install(n.remote, wheel, n.base)
                n.remote.run(["mkdir", "-p", n.run_base])
                n.remote.put(cluster_json, n.cluster_path)
                n.remote.chain_install()
                n.remote.chain_set([])

            list(pool.map(one, nodes.values()))

    async def _main(self, spec: Any, body: Callable[[SshCluster], Awaitable[T]], config: SshClusterConfig,
                    nodes: dict[str, SshNode], run_dir: Path, state: HostsState,
                    holder: dict[str, SshCluster]) -> T:
        addrs = {n.host.node: (n.ip, n.host.port) for n in nodes.values()}
        client_log = JsonLog.to_file("client", str(run_dir / "client.log"), min_level="info")
        client = ClientEndpoint(addrs, seed=getattr(spec, "seed", 0), log=client_log)
        cluster = SshCluster(config, nodes, client, run_dir, state, system=spec.system,
                             startup_timeout_s=self.startup_timeout_s)
        holder["cluster"] = cluster
        try:
            await cluster.start_all()
            return await body(cluster)
        finally:
            await client.close()
            client_log.close()


def teardown(nodes: dict[str, SshNode], cluster: SshCluster | None, run_dir: Path, state: HostsState) -> None:
    """Best effort on every host, each step on its own: nothing one host does stops another's cleanup."""
    if cluster is not None and cluster.switch_is_off and cluster.config.switch_on is not None:
        with contextlib.suppress(Exception):
            run_local(list(cluster.config.switch_on), "switch_on")
    for node in sorted(cluster.links_down) if cluster is not None else []:
        up = cluster.by_id[node].host.link_up
        if up is not None:
            with contextlib.suppress(Exception):
                run_local(ssh_config.expand(up, cluster.by_id[node].host), f"{node} link_up")

    def one(n: SshNode) -> None:
        if not n.run_base:  # nothing was done on this host
            with contextlib.suppress(Exception):
                n.remote.close()
            state.drop_remote(n.host.node)
            return
        if n.powered_off and cluster is not None:
            with contextlib.suppress(Exception):
                cluster.power_on_blocking(n.host.node)
        node, ok = n.host.node, True
        try:
            for pid in n.pids:
                n.remote.signal_if_ours(pid, "CONT", n.cluster_path)
                n.remote.signal_if_ours(pid, "TERM", n.cluster_path)
            n.remote.chain_remove()
            if n.pids:  # pids are ints: nothing here needs quoting
                pids = " ".join(str(int(p)) for p in n.pids)
                n.remote.sh(f"for i in $(seq 40); do alive=0; for p in {pids}; do [ -d /proc/$p ] && alive=1; "
                            f"done; [ $alive = 0 ] && exit 0; sleep 0.05; done; exit 1", check=False)
                for pid in n.pids:
                    n.remote.signal_if_ours(pid, "KILL", n.cluster_path)
            n.remote.get(f"{n.run_base}/{node}.log", run_dir / "nodes" / f"{node}.log")
            n.remote.get(f"{n.run_base}/{node}.out", run_dir / "nodes" / f"{node}.out")
        except Exception as e:  # the record stays, for `harness cleanup`
            ok = False
            print(f"ssh teardown: {n.host.where}: {e}", file=sys.stderr)
        n.pid = None
        with contextlib.suppress(Exception):
            n.remote.close()
        if ok:
            state.drop_remote(node)

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        list(pool.map(one, nodes.values()))
    if state.is_empty():
        state.finish()


def preflight(spec: Any) -> None:
    """Raise ClusterConfigError (one line naming the field) for a missing or broken cluster file, or one
    that lacks a node the run wants; the CLI may call it before a run, as a usage error."""
    if not getattr(spec, "cluster_file", None):
        raise ssh_config.ClusterConfigError("the ssh backend needs a cluster file (--cluster cluster.toml)")
    ssh_config.load(spec.cluster_file).select(list(spec.nodes))


def make_backend() -> SshBackend:
    return SshBackend()


if __name__ == "__main__":  # pragma: no cover
    print("use `harness run SYSTEM --backend ssh --cluster cluster.toml`", file=sys.stderr)
