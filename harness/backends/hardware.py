"""Cables, a switch and power plugs under a process cluster: the `Hardware` strategy (netns, ssh).

Rules every `Hardware` keeps:

- Blocking methods (the cluster calls them from worker threads), each one
  step: `cable(node, plugged)`, `switch(on)`, `power(node, on)`. `power(node,
  True)` returns once the host is reachable again; what a power cut does to
  the node's process and to the host's rules is the cluster's business
  (`Processes.lost`, `Network.rewire`).
- `capabilities` names the hardware faults it can really carry out
  (`cable`, `switch`, `plug`); a fault it cannot carry out raises
  `NotConfigured`, never a silent no-op.
"""

from __future__ import annotations

from typing import Protocol


class NotConfigured(RuntimeError):
    """A hardware fault was asked for but nothing is configured to carry it out."""


class Hardware(Protocol):
    capabilities: frozenset[str]

    def cable(self, node: str, plugged: bool) -> None: ...

    def switch(self, on: bool) -> None: ...

    def power(self, node: str, on: bool) -> None: ...
