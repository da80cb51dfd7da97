"""The packet filter of the real runtime: what happens to a frame a node receives.

Rules this module keeps (the same semantics as the simulator's network):

- The filter sits where a node *receives* frames from cluster peers:
  requests, responses, errors and one-way messages alike. It is keyed by the
  frame's source node, so a `LinkFault` for src -> dst lives in dst's filter.
- Frames whose source is not a cluster node (the harness client) and control
  frames are never filtered; the caller checks that before asking.
- A grudge (partition) is a set of source nodes whose frames are all dropped,
  like an iptables INPUT DROP rule on this node. It is one-directional by
  construction: n2 grudging n1 drops n1 -> n2 frames only. A call from n2 to
  n1 still runs n1's handler but n1's reply is dropped at n2, so such calls
  time out in both directions while one-way messages n2 -> n1 still arrive.
- A link fault's effect on a frame is `base.links.link_delays`, the same
  decision the simulated network makes. Jitter reorders frames.
- Every draw comes from the rng given to the filter (seeded by the runtime);
  `decide` is pure apart from that rng and the counters.
- Filter state is replaced whole by `set` (with a version: an older version
  than the current one is ignored) and emptied by `clear`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from base.links import LinkFault, LinkFaultError, link_delays
from systems.runtime.api import ProtocolError


@dataclass
class FilterStats:
    passed: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0

    def to_wire(self) -> dict[str, int]:
        return {"passed": self.passed, "dropped": self.dropped, "duplicated": self.duplicated,
                "delayed": self.delayed}


@dataclass
class PacketFilter:
    rng: random.Random
    grudge: frozenset[str] = frozenset()
    links: dict[str, LinkFault] = field(default_factory=dict)
    version: int = 0
    stats: FilterStats = field(default_factory=FilterStats)

    @property
    def active(self) -> bool:
        return bool(self.grudge or self.links)

    def set(self, body: Any) -> bool:
        """Replace the filter from a control body {"grudge": [src...], "links": {src: fault},
        "version": int}. Returns False (and changes nothing) for a stale version.
        Raises ProtocolError for a malformed body."""
        if not isinstance(body, dict):
            raise ProtocolError("set-filter body must be a dict")
        version = body.get("version", 0)
        grudge = body.get("grudge", [])
        links = body.get("links", {})
        if type(version) is not int:
            raise ProtocolError("set-filter version must be an int")
        if not isinstance(grudge, list) or not all(isinstance(s, str) for s in grudge):
            raise ProtocolError("set-filter grudge must be a list of node ids")
        if not isinstance(links, dict) or not all(isinstance(s, str) for s in links):
            raise ProtocolError("set-filter links must map node ids to faults")
        try:
            parsed = {src: LinkFault.from_wire(f) for src, f in links.items()}
        except LinkFaultError as e:
            raise ProtocolError(str(e)) from None
        if version < self.version:
            return False
        self.version = version
        self.grudge = frozenset(grudge)
        self.links = parsed
        return True

    def clear(self, version: int | None = None) -> bool:
        if version is not None:
            if version < self.version:
                return False
            self.version = version
        self.grudge = frozenset()
        self.links = {}
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "grudge": sorted(self.grudge),
            "links": {src: f.to_wire() for src, f in sorted(self.links.items())},
            "stats": self.stats.to_wire(),
        }

    def decide(self, src: str) -> list[float]:
        """Delivery delays for one frame from cluster node `src`: [] = dropped,
        [0.0] = deliver now, two entries = delivered twice."""
        if src in self.grudge:
            self.stats.dropped += 1
            return []
        fault = self.links.get(src)
        if fault is None:
            self.stats.passed += 1
            return [0.0]
        delays = link_delays(fault, self.rng)
        if not delays:
            self.stats.dropped += 1
            return []
        if len(delays) > 1:
            self.stats.duplicated += 1
        if any(d > 0 for d in delays):
            self.stats.delayed += 1
        self.stats.passed += 1
        return delays
