"""The `Cluster` every process backend hands the runner: nodes as OS processes, faults through strategies.

`ProcessCluster` is written once for local, netns and ssh. What differs per
backend is given to it: a `Processes` (where node processes run and how
they are signalled), a `NodeProgram` (what a node is and how to tell it is
ready), a `Network` (how partitions and link faults reach the wire) and,
for netns and ssh, a `Hardware` (`HardwareProcessCluster`: cables, the
switch, power plugs).

Rules this module keeps (besides base.cluster's):

- Start: every node is started, then waited for until the program's probe
  says ready (bounded by `startup_timeout_s`); a node that exits first or
  never gets ready is a `NodeStartError` naming it, with the tail of its
  log, and `port_taken` set when its exit status says its port was taken.
- kill = SIGKILL + reap; restart = start again over the same data
  directory and wait until ready; pause/resume = SIGSTOP/SIGCONT. A node
  that died on its own reads as killed (`is_up` false); restart brings it
  back.
- The cluster keeps the desired network state (`NetState`, with a rising
  version) and is the only one to change it; the network strategy carries
  each change, and the state is re-applied to a node after resume and
  restart, so a node that was paused or dead during a change catches up.
- `capabilities`: kill and pause always; partition and links as the
  network strategy can carry them; cable, switch and plug as the hardware
  can; corrupt when the processes can reach the nodes' files
  (`corrupt_file`, LocalProcesses: local and netns); clock and disk-fault
  when the program is the runtime (its control channel: `set_clock`,
  `set_disk_fault`, on every process backend).
- `lose_power` arms a power loss on the node (control `arm-power-loss`: its
  next start reverts what it had not synced, systems.runtime.real_unsynced)
  and then kills it; `power_off` (a plug) arms it too. A node that cannot
  be armed (no runtime, or no answer) is killed all the same: its unsynced
  writes then survive, as after a process crash.
- `quiesce()` is the in-loop half of teardown and never raises: hardware
  back (switch on, cables in, power on), paused nodes continued, the
  network healed within a bound. Killing and reaping is the lifecycle's
  (harness/backends/lifecycle.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from base.cluster import RUNTIME_CAPABILITIES, Capability, Grudge
from harness.backends.hardware import Hardware
from harness.backends.networks import Links, NetState, Network
from harness.backends.node_program import NodeProgram
from harness.backends.processes import Processes
from systems.runtime.api import RpcError
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_transport import Address

CONTROL_TIMEOUT_S = 2.0
"""How long a clock, disk-fault or arm-power-loss control frame may take to be answered."""
TEARDOWN_HEAL_S = 2.0
"""How long teardown waits for the network to heal (moot once the nodes are gone, so short)."""


class NodeStartError(RuntimeError):
    """A node did not come up; the message names it and quotes the tail of its log."""

    def __init__(self, message: str, *, port_taken: bool = False) -> None:
        super().__init__(message)
        self.port_taken = port_taken


class ProcessCluster:
    """`base.cluster.Cluster` over node processes. Built and torn down by lifecycle.run_process_cluster."""

    def __init__(
        self,
        nodes: list[str],
        addrs: dict[str, Address],
        procs: Processes,
        program: NodeProgram,
        network: Network,
        client: ClientEndpoint,
        run_dir: Path,
        *,
        startup_timeout_s: float = 20.0,
        probe_interval_s: float = 0.02,
        control: ClientEndpoint | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.addrs = addrs
        """How the harness reaches each node (kept current when the ports change at start)."""
        self.procs = procs
        self.program = program
        self.network = network
        self.client = client
        """The workload's endpoint (the clients' key on a keyed cluster)."""
        self.control = control or client
        """The harness's endpoint for control frames and probes (the harness key on a keyed cluster)."""
        self.run_dir = run_dir
        self.startup_timeout_s = startup_timeout_s
        self.probe_interval_s = probe_interval_s
        disk = frozenset({Capability.CORRUPT}) if callable(getattr(procs, "corrupt_file", None)) else frozenset()
        runtime = RUNTIME_CAPABILITIES if program.carries_filter else frozenset()  # the runtime's control channel
        self.capabilities: frozenset[str] = (frozenset({Capability.KILL, Capability.PAUSE}) | network.capabilities
                                             | disk | runtime)
        self.net = NetState()
        """The network as the harness wants it."""
        self._paused: set[str] = set()
        self._net_lock = asyncio.Lock()

    # -- queries ----------------------------------------------------------------------------------
    def is_up(self, node: str) -> bool:
        self._check(node)
        return self.procs.alive(node)

    def is_paused(self, node: str) -> bool:
        return node in self._paused and self.is_up(node)

    def running(self, node: str) -> bool:
        """Alive and not paused: it can take a control frame now."""
        return self.procs.alive(node) and node not in self._paused

    def pid(self, node: str) -> int | None:
        return self.procs.pid(node) if self.is_up(node) else None

    def _check(self, node: str) -> None:
        if node not in self.addrs:
            raise ValueError(f"unknown node {node!r} (nodes: {', '.join(self.nodes)})")

    # -- processes --------------------------------------------------------------------------------
    async def start_all(self) -> None:
        tasks = [asyncio.ensure_future(self._start(n)) for n in self.nodes]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _start(self, node: str) -> None:
        pid = await asyncio.to_thread(self.procs.start, node)
        await self._wait_ready(node, pid)
        if self.net.version:
            await self._refresh(node)

    async def _wait_ready(self, node: str, pid: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout_s
        site = self.procs.site(node)
        last = "no answer"
        while loop.time() < deadline:
            if not self.procs.alive(node):
                status = self.procs.exit_status(node)
                tail = await asyncio.to_thread(self.procs.log_tail, node)
                raise NodeStartError(f"{self.procs.describe(node)} exited (status {status}) before it was ready; "
                                     f"{tail}", port_taken=self.program.port_taken(status))
            seen = await self.program.probe(self.control, site, pid)
            if seen is None:
                return
            last = seen
            await asyncio.sleep(self.probe_interval_s)
        tail = await asyncio.to_thread(self.procs.log_tail, node)
        raise NodeStartError(f"{self.procs.describe(node)} was not ready within {self.startup_timeout_s}s "
                             f"({last}); {tail}")

    async def kill(self, node: str) -> None:
        self._check(node)
        self._paused.discard(node)
        await asyncio.to_thread(self.procs.kill, node)

    async def restart(self, node: str) -> None:
        self._check(node)
        if self.procs.alive(node):
            return
        self._paused.discard(node)
        await self._start(node)

    async def pause(self, node: str) -> None:
        self._check(node)
        if node in self._paused or not self.procs.alive(node):
            return
        if await asyncio.to_thread(self.procs.signal, node, signal.SIGSTOP):
            self._paused.add(node)

    async def resume(self, node: str) -> None:
        self._check(node)
        if node not in self._paused:
            return
        self._paused.discard(node)
        await asyncio.to_thread(self.procs.signal, node, signal.SIGCONT)
        if self.procs.alive(node):
            await self._refresh(node)

    async def lose_power(self, node: str) -> None:
        """Kill the node so that what it had not synced is lost at its next start (see the module rules)."""
        await self._arm_power_loss(node)
        await self.kill(node)

    async def _arm_power_loss(self, node: str) -> bool:
        self._check(node)
        if not self.program.carries_filter or not self.running(node):
            return False
        try:
            await self.control.control(node, "arm-power-loss", None, timeout=CONTROL_TIMEOUT_S)
        except RpcError as e:
            print(f"power loss on {node}: could not arm it ({e!r}); its unsynced writes survive", file=sys.stderr)
            return False
        return True

    # -- runtime faults (the node's control channel) ----------------------------------------------
    async def set_clock(self, node: str, change: dict[str, Any]) -> dict[str, Any]:
        return await self._runtime_control(node, "clock", change)

    async def set_disk_fault(self, node: str, fault: dict[str, Any] | None) -> dict[str, Any]:
        return await self._runtime_control(node, "disk-fault", fault if fault is not None else {"fault": None})

    async def _runtime_control(self, node: str, op: str, body: Any) -> dict[str, Any]:
        self._check(node)
        if not self.program.carries_filter:
            raise NotImplementedError(f"{node} is not a runtime node: it has no {op} control")
        reply = await self.control.control(node, op, body, timeout=CONTROL_TIMEOUT_S)
        if not isinstance(reply, dict):
            raise RuntimeError(f"{node} answered {op} with {reply!r:.80}")
        return reply

    # -- network faults ---------------------------------------------------------------------------
    async def corrupt_file(self, node: str, name: str, offsets: list[int]) -> list[int]:
        """Flip bytes of a file on the node's disk (base.cluster.DiskFaultCluster)."""
        self._check(node)
        flip = getattr(self.procs, "corrupt_file", None)
        if flip is None:
            raise NotImplementedError(f"{type(self.procs).__name__} cannot reach the nodes' files")
        return list(await asyncio.to_thread(flip, node, name, offsets))

    async def partition(self, grudge: Grudge) -> None:
        for dst, srcs in grudge.items():
            self._check(dst)
            for s in srcs:
                self._check(s)
        new = {dst: sorted(set(srcs)) for dst, srcs in grudge.items() if srcs}
        await self._change(grudge=new, links=self.net.links)

    async def set_links(self, faults: Links) -> None:
        for src, dst in faults:
            self._check(src)
            self._check(dst)
        await self._change(grudge=self.net.grudge, links=dict(faults))

    async def heal(self) -> None:
        if not self.net.healthy:
            await self._change(grudge={}, links={})

    async def _change(self, *, grudge: Grudge, links: Links) -> None:
        async with self._net_lock:
            old = self.net
            self.net = NetState(grudge, links, old.version + 1)
            await self.network.apply(old, self.net, self.running)

    async def _refresh(self, node: str) -> None:
        async with self._net_lock:
            if self.running(node):
                await self.network.refresh(node, self.net)

    # -- teardown ---------------------------------------------------------------------------------
    async def quiesce(self) -> None:
        """Paused nodes continued, the network healed (bounded). Never raises."""
        for node in sorted(self._paused):
            with _reported(f"continue {node}"):
                await asyncio.to_thread(self.procs.signal, node, signal.SIGCONT)
        self._paused.clear()
        if not self.net.healthy:
            with _reported("heal the network"):
                await asyncio.wait_for(self._change(grudge={}, links={}), TEARDOWN_HEAL_S)


class HardwareProcessCluster(ProcessCluster):
    """A process cluster with cables, a switch and power plugs (`base.cluster.HardwareCluster`)."""

    def __init__(
        self,
        nodes: list[str],
        addrs: dict[str, Address],
        procs: Processes,
        program: NodeProgram,
        network: Network,
        client: ClientEndpoint,
        run_dir: Path,
        *,
        hardware: Hardware,
        startup_timeout_s: float = 20.0,
        probe_interval_s: float = 0.02,
        control: ClientEndpoint | None = None,
    ) -> None:
        super().__init__(nodes, addrs, procs, program, network, client, run_dir,
                         startup_timeout_s=startup_timeout_s, probe_interval_s=probe_interval_s, control=control)
        self.hardware = hardware
        self.capabilities = self.capabilities | hardware.capabilities
        self.links_down: set[str] = set()
        self.switch_is_off = False
        self.powered_off: set[str] = set()

    async def link_down(self, node: str) -> None:
        self._check(node)
        await asyncio.to_thread(self.hardware.cable, node, False)
        self.links_down.add(node)

    async def link_up(self, node: str) -> None:
        self._check(node)
        if node in self.links_down:
            await asyncio.to_thread(self.hardware.cable, node, True)
            self.links_down.discard(node)

    async def switch_off(self) -> None:
        await asyncio.to_thread(self.hardware.switch, False)
        self.switch_is_off = True

    async def switch_on(self) -> None:
        if self.switch_is_off:
            await asyncio.to_thread(self.hardware.switch, True)
            self.switch_is_off = False

    async def power_off(self, node: str) -> None:
        """Cut the node's power: its process is gone without a word (a namespace's is SIGKILLed), and
        what it had not synced with it (armed first, see `lose_power`)."""
        self._check(node)
        await self._arm_power_loss(node)
        await asyncio.to_thread(self.hardware.power, node, False)
        self.powered_off.add(node)
        self._paused.discard(node)
        await asyncio.to_thread(self.procs.lost, node)

    async def power_on(self, node: str) -> None:
        """Power back, wait for the host, reinstall its rules, start the node."""
        self._check(node)
        if node not in self.powered_off:
            return
        await asyncio.to_thread(self.hardware.power, node, True)
        self.powered_off.discard(node)
        async with self._net_lock:
            await self.network.rewire(node, self.net)
        await self.restart(node)

    async def heal(self) -> None:
        """Every network fault undone: the switch and every cable back, then partitions and links."""
        await self.switch_on()
        for node in sorted(self.links_down):
            await self.link_up(node)
        await super().heal()

    async def quiesce(self) -> None:
        if self.switch_is_off:
            with _reported("switch on"):
                await asyncio.to_thread(self.hardware.switch, True)
                self.switch_is_off = False
        for node in sorted(self.links_down):
            with _reported(f"plug {node}'s cable back"):
                await asyncio.to_thread(self.hardware.cable, node, True)
                self.links_down.discard(node)
        for node in sorted(self.powered_off):
            with _reported(f"power {node} on"):
                await asyncio.to_thread(self.hardware.power, node, True)
                self.powered_off.discard(node)
        await super().quiesce()


@contextlib.contextmanager
def _reported(what: str) -> Iterator[None]:
    """Teardown steps never stop each other: a failure is one line on stderr."""
    try:
        yield
    except Exception as e:  # teardown goes on whatever one step did
        print(f"teardown: could not {what}: {e!r}", file=sys.stderr)
