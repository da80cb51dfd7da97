"""What the runner needs from a backend: a started cluster it can drive and break.

The cluster contract itself (what a cluster can do, its capabilities, grudges)
is `base.cluster`; this module adds the backend's side. The process backends
(local, netns, ssh) share one lifecycle (harness/backends/lifecycle.py).

Rules every backend keeps:

- `Backend.capabilities(spec)` says, before anything starts, what the
  cluster it would build for `spec` can do (the same set as the started
  cluster's `capabilities`).
- `Backend.run(spec, body)` starts the cluster, awaits `body(cluster)` in the
  backend's own event loop (a real asyncio loop for `local`, `netns`, `ssh`;
  the virtual-time loop for `sim`), and tears everything down on every exit
  path, exceptions and KeyboardInterrupt included: network faults healed,
  paused processes continued, child processes killed and reaped.
- A run the backend cannot set up (a missing tool, a broken cluster file, an
  unreachable host) raises a `SetupError` whose message is one line, before
  `body` runs and after undoing whatever it had already done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from base.cluster import Cluster, Grudge, LinkFault
from base.spec import TestSpec

__all__ = ["Backend", "Cluster", "Grudge", "LinkFault", "SetupError"]

T = TypeVar("T")


class SetupError(RuntimeError):
    """The backend cannot set this run up; the message is one line saying why and what to do."""


class Backend(Protocol):
    name: str

    def capabilities(self, spec: TestSpec) -> frozenset[str]: ...

    def run(self, spec: TestSpec, body: Callable[[Cluster], Awaitable[T]]) -> T: ...
