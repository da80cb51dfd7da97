"""What the runner needs from a backend: a started cluster it can drive and break.

Rules every backend keeps:

- `Backend.run(spec, body)` starts the cluster, awaits `body(cluster)` in the
  backend's own event loop (a real asyncio loop for `local`, `netns`, `ssh`;
  the virtual-time loop for `sim`), and tears everything down on every exit
  path, exceptions and KeyboardInterrupt included: network faults healed,
  paused processes continued, child processes killed and reaped.
- `cluster.client` is a Runtime endpoint for the harness itself (its clients,
  clock and timers): `client.now()` is the test's clock. Clients are never
  partitioned from nodes; faults act between cluster nodes only (as Jepsen's).
- A grudge maps a node to the nodes whose traffic it drops (inbound), like
  iptables INPUT DROP rules: {"n1": ["n3"], "n3": ["n1"]} cuts n1 <-> n3.
- Fault methods are idempotent: killing a dead node or healing a healthy
  network does nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from systems.runtime.api import LinkFault, Runtime

__all__ = ["Backend", "Cluster", "Grudge", "LinkFault"]

T = TypeVar("T")

Grudge = dict[str, list[str]]


class Cluster(Protocol):
    nodes: list[str]
    client: Runtime
    run_dir: Path

    def is_up(self, node: str) -> bool:
        """False while the node is killed (paused nodes are up)."""
        ...

    async def kill(self, node: str) -> None:
        """SIGKILL (or a crash in sim): unsynced disk writes are lost."""
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


class Backend(Protocol):
    name: str

    def run(self, spec: Any, body: Callable[[Cluster], Awaitable[T]]) -> T: ...
