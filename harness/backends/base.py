"""What the runner needs from a backend: a started cluster it can drive and break.

The cluster contract itself (what a cluster can do, its capabilities, grudges)
is `base.cluster`; this module adds the backend's side.

Rules every backend keeps:

- `Backend.run(spec, body)` starts the cluster, awaits `body(cluster)` in the
  backend's own event loop (a real asyncio loop for `local`, `netns`, `ssh`;
  the virtual-time loop for `sim`), and tears everything down on every exit
  path, exceptions and KeyboardInterrupt included: network faults healed,
  paused processes continued, child processes killed and reaped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from base.cluster import Cluster, Grudge, LinkFault
from base.spec import TestSpec

__all__ = ["Backend", "Cluster", "Grudge", "LinkFault"]

T = TypeVar("T")


class Backend(Protocol):
    name: str

    def run(self, spec: TestSpec, body: Callable[[Cluster], Awaitable[T]]) -> T: ...
