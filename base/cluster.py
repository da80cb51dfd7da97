"""The cluster contract: what a backend's cluster can do, and what a fault may ask of it.

Rules every backend's cluster keeps:

- `client` is an `Endpoint` for the harness itself (its clients, clock and
  timers): `client.now()` is the test's clock. Clients are never partitioned
  from nodes; faults act between cluster nodes only (as Jepsen's).
- `capabilities` says which faults the cluster can carry out (`Capability`).
  Every cluster can kill, pause, partition and fault links; the hardware
  ones (`cable`, `switch`, `plug`) exist where there is a cable, a switch or a
  power controller (netns, ssh); `corrupt` where the harness can reach a
  node's files (sim, local, netns); `clock` and `disk-fault` wherever the
  nodes run the runtime (every backend; not an external program such as
  etcd). A fault package names the capabilities it needs and is refused
  before a run starts when one is missing.
- A grudge maps a node to the nodes whose traffic it drops (inbound), like
  iptables INPUT DROP rules: {"n1": ["n3"], "n3": ["n1"]} cuts n1 <-> n3.
- Fault methods are idempotent: killing a dead node or healing a healthy
  network does nothing.
"""

from __future__ import annotations

from collections.abc import Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from base.links import LinkFault

Grudge = dict[str, list[str]]


class Capability(StrEnum):
    """Something a cluster can do to its nodes; fault packages declare which they need."""

    KILL = "kill"
    """SIGKILL a node (a crash in sim) and restart it over its data directory."""
    PAUSE = "pause"
    """SIGSTOP / SIGCONT a node."""
    PARTITION = "partition"
    """Drop traffic between nodes by a grudge."""
    LINKS = "links"
    """Lossy, slow, duplicating links between nodes."""
    CABLE = "cable"
    """Pull one node's network cable and plug it back (`link_down` / `link_up`)."""
    SWITCH = "switch"
    """Turn the whole switch off and on (`switch_off` / `switch_on`)."""
    PLUG = "plug"
    """Cut one node's power and restore it (`power_off` / `power_on`)."""
    CORRUPT = "corrupt"
    """Flip bytes of a file on a node's disk, as a lying disk would (`corrupt_file`)."""
    CLOCK = "clock"
    """Move a node's clock: jump it, make it run fast or slow, reset it (`set_clock`)."""
    DISK_FAULT = "disk-fault"
    """Make a node's disk fail writes or fsyncs (EIO), fill up (ENOSPC) or fsync slowly (`set_disk_fault`)."""


CORE_CAPABILITIES = frozenset({Capability.KILL, Capability.PAUSE, Capability.PARTITION, Capability.LINKS,
                               Capability.CLOCK, Capability.DISK_FAULT})
"""What every backend's cluster can do (to nodes that run the runtime)."""

RUNTIME_CAPABILITIES = frozenset({Capability.CLOCK, Capability.DISK_FAULT})
"""Faults the runtime inflicts on itself when told (its control channel, or the simulator's world):
not for an external program's nodes."""


class Endpoint(Protocol):
    """The harness's own place in the cluster: a clock, timers and RPC to nodes (a Runtime subset)."""

    node_id: str

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    async def call(self, dst: str, method: str, msg: Any, timeout: float = 1.0) -> Any: ...

    def send(self, dst: str, method: str, msg: Any) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> Any: ...


@runtime_checkable
class Cluster(Protocol):
    nodes: list[str]
    client: Endpoint
    run_dir: Path
    capabilities: frozenset[str]

    def is_up(self, node: str) -> bool:
        """False while the node is killed (paused nodes are up)."""
        ...

    async def kill(self, node: str) -> None:
        """SIGKILL (or a crash in sim, which loses unsynced disk writes; `lose_power` loses them everywhere)."""
        ...

    async def restart(self, node: str) -> None:
        """Start a killed node again over its data directory."""
        ...

    async def pause(self, node: str) -> None:
        """SIGSTOP: the node keeps its sockets but does nothing."""
        ...

    async def resume(self, node: str) -> None: ...

    async def partition(self, grudge: Grudge) -> None:
        """Replace the network partition with this grudge."""
        ...

    async def set_links(self, faults: dict[tuple[str, str], LinkFault]) -> None:
        """Replace the per-link faults (drop/delay/duplicate)."""
        ...

    async def heal(self) -> None:
        """Remove every network fault (partition and links); processes are left as they are."""
        ...


class DiskFaultCluster(Cluster, Protocol):
    """A cluster that can damage what a node stored (`Capability.CORRUPT`)."""

    async def corrupt_file(self, node: str, name: str, offsets: list[int]) -> list[int]:
        """Flip (XOR 0xFF) the byte at each offset of the node's file `name` (a disk name, as in
        `rt.disk`), durably and whether or not the node runs; offsets past the end are skipped.
        Returns the offsets flipped. Raises ValueError for a bad name, FileNotFoundError when the
        file does not exist."""
        ...


class RuntimeFaultCluster(Cluster, Protocol):
    """A cluster whose nodes run the runtime, which moves their clocks and fails their disks when told."""

    async def set_clock(self, node: str, change: dict[str, Any]) -> dict[str, Any]:
        """Apply a clock change (systems.runtime.clock: reset, jump_s, rate) to the node's clock; returns
        the node's clock as it then reads ({"now", "true", "offset_s", "rate"})."""
        ...

    async def set_disk_fault(self, node: str, fault: dict[str, Any] | None) -> dict[str, Any]:
        """Put a disk fault in place on the node (systems.runtime.disk_faults), or clear it (None)."""
        ...

    async def lose_power(self, node: str) -> None:
        """Kill the node so that every write it did not sync is lost (a power cut, not a process crash)."""
        ...


class HardwareCluster(Cluster, Protocol):
    """A cluster with cables, a switch and power controllers (see `Capability`)."""

    async def link_down(self, node: str) -> None: ...

    async def link_up(self, node: str) -> None: ...

    async def switch_off(self) -> None: ...

    async def switch_on(self) -> None: ...

    async def power_off(self, node: str) -> None: ...

    async def power_on(self, node: str) -> None: ...


__all__ = [
    "CORE_CAPABILITIES",
    "RUNTIME_CAPABILITIES",
    "Capability",
    "Cluster",
    "DiskFaultCluster",
    "Endpoint",
    "Grudge",
    "HardwareCluster",
    "LinkFault",
    "RuntimeFaultCluster",
]
