"""How a process cluster's network faults reach the wire: the `Network` strategy of each backend.

The cluster (harness/backends/process_cluster.py) keeps the *desired*
network state, a `NetState` (grudge, link faults, a rising version), and
hands every change to its `Network`:

- `FilterNetwork` (local): partitions and link faults both go into each
  node's own packet filter (the runtime's), through `set-filter` control
  frames.
- `IptablesNetwork` (netns, ssh): partitions are DROP rules in a chain of our
  own on each destination host, written by a `Chains` (inside namespaces, or
  over SSH); link faults still go through the runtime's filter when the
  nodes have one.

Rules this module keeps:

- `apply(old, new, running)` carries a cluster-wide change. Host rules are
  rewritten only for nodes whose grudge changed (whether the node's process
  is up or not: the rules belong to its host); control frames go to every
  node that is `running` (alive and not paused). A node that was not
  running gets the state from `refresh` when it runs again (restart,
  resume), so the desired state always wins in the end.
- `rewire(node, state)` reinstalls a host's rules after the host rebooted
  (a power cycle wipes iptables).
- A filter a running node does not accept after a few tries is an error
  naming the node; one that died meanwhile is skipped (it gets the state on
  restart).
- `capabilities` says which network faults the strategy can carry
  (`partition`, `links`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from base.cluster import Capability, Grudge
from base.links import LinkFault
from systems.runtime.api import RpcError, Unreachable
from systems.runtime.real import ClientEndpoint

Running = Callable[[str], bool]
"""Is this node's process alive and not paused (can it take a control frame now)?"""
Links = dict[tuple[str, str], LinkFault]


@dataclass(frozen=True)
class NetState:
    """The network as the harness wants it: who drops whom, which links are faulty, and a version."""

    grudge: Grudge = field(default_factory=dict)
    links: Links = field(default_factory=dict)
    version: int = 0

    @property
    def healthy(self) -> bool:
        return not self.grudge and not self.links

    def drops(self, node: str) -> list[str]:
        return list(self.grudge.get(node, []))

    def links_into(self, node: str) -> dict[str, Any]:
        return {src: f.to_wire() for (src, dst), f in sorted(self.links.items()) if dst == node}


class Network(Protocol):
    capabilities: frozenset[str]

    async def apply(self, old: NetState, new: NetState, running: Running) -> None: ...

    async def refresh(self, node: str, state: NetState) -> None:
        """`node` runs again (restarted or resumed): make it hold `state`."""
        ...

    async def rewire(self, node: str, state: NetState) -> None:
        """`node`'s host came back from a power cut: reinstall its rules for `state`."""
        ...


class RuntimeFilter:
    """Each node's own packet filter, set through `set-filter` control frames."""

    def __init__(self, client: ClientEndpoint, *, carries_grudge: bool, timeout_s: float = 2.0,
                 alive: Running | None = None) -> None:
        self.client = client
        self.carries_grudge = carries_grudge
        self.timeout_s = timeout_s
        self.alive = alive
        """Is the node's process alive at all (an Unreachable one that died is skipped)."""

    def body(self, node: str, state: NetState) -> dict[str, Any]:
        """The set-filter body `node` should hold for `state`."""
        return {
            "version": state.version,
            "grudge": state.drops(node) if self.carries_grudge else [],
            "links": state.links_into(node),
        }

    async def send(self, node: str, state: NetState) -> None:
        last: Exception | None = None
        for _ in range(3):
            try:
                reply = await self.client.control(node, "set-filter", self.body(node, state), timeout=self.timeout_s)
            except Unreachable as e:
                last = e
                if self.alive is not None and not self.alive(node):
                    return  # it died meanwhile: it gets the filter on restart
                await asyncio.sleep(0.05)
                continue
            except RpcError as e:
                last = e
                continue
            if isinstance(reply, dict) and "version" in reply:
                return
            last = RuntimeError(f"unexpected set-filter reply {reply!r}")
        raise RuntimeError(f"node {node} did not accept its packet filter: {last!r}")

    async def send_all(self, nodes: list[str], state: NetState, running: Running) -> None:
        await asyncio.gather(*(self.send(n, state) for n in nodes if running(n)))


class FilterNetwork:
    """Partitions and link faults in the nodes' own packet filters (no root needed)."""

    capabilities = frozenset({Capability.PARTITION, Capability.LINKS})

    def __init__(self, nodes: list[str], filter: RuntimeFilter) -> None:
        assert filter.carries_grudge
        self.nodes = list(nodes)
        self.filter = filter

    async def apply(self, old: NetState, new: NetState, running: Running) -> None:
        await self.filter.send_all(self.nodes, new, running)

    async def refresh(self, node: str, state: NetState) -> None:
        await self.filter.send(node, state)

    async def rewire(self, node: str, state: NetState) -> None:
        return None


class Chains(Protocol):
    """Our iptables chain on each node's host (blocking; called from worker threads)."""

    def install(self, node: str) -> None:
        """Create the chain and jump to it from INPUT (idempotent)."""
        ...

    def set_drops(self, node: str, sources: list[str]) -> None:
        """Flush the chain on `node`'s host, then drop inbound traffic from each source node."""
        ...

    parallel: bool
    """True if different hosts may be written at the same time (separate machines)."""


class IptablesNetwork:
    """Partitions as iptables DROP rules on each host; link faults in the runtime filter if nodes have one."""

    def __init__(self, nodes: list[str], chains: Chains, filter: RuntimeFilter | None) -> None:
        assert filter is None or not filter.carries_grudge
        self.nodes = list(nodes)
        self.chains = chains
        self.filter = filter
        self.capabilities = frozenset({Capability.PARTITION} | ({Capability.LINKS} if filter else set()))
        self._lock = asyncio.Lock()

    async def apply(self, old: NetState, new: NetState, running: Running) -> None:
        changed = [n for n in self.nodes if old.drops(n) != new.drops(n)]
        async with self._lock:
            if self.chains.parallel:
                await asyncio.gather(*(asyncio.to_thread(self.chains.set_drops, n, new.drops(n)) for n in changed))
            else:
                await asyncio.to_thread(lambda: [self.chains.set_drops(n, new.drops(n)) for n in changed])
        if self.filter is not None and old.links != new.links:
            await self.filter.send_all(self.nodes, new, running)

    async def refresh(self, node: str, state: NetState) -> None:
        if self.filter is not None:
            await self.filter.send(node, state)

    async def rewire(self, node: str, state: NetState) -> None:
        async with self._lock:
            await asyncio.to_thread(self.chains.install, node)
            await asyncio.to_thread(self.chains.set_drops, node, state.drops(node))


class NetworkFaultsRefused(RuntimeError):
    """The cluster cannot make this network fault (see `NoNetworkFaults`)."""


class NoNetworkFaults:
    """For nodes without the runtime's filter on a backend without iptables: network faults are refused."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self, why: str) -> None:
        self.why = why

    async def apply(self, old: NetState, new: NetState, running: Running) -> None:
        if not new.healthy:
            raise NetworkFaultsRefused(f"network faults are refused: {self.why}")

    async def refresh(self, node: str, state: NetState) -> None:
        return None

    async def rewire(self, node: str, state: NetState) -> None:
        return None
