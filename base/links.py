"""Trouble on a link, and the one rule for what it does to a frame.

Rules this module keeps:

- A `LinkFault` describes one directed link src -> dst and is applied where
  dst receives (both runtimes agree).
- `link_delays(fault, rng)` is the whole decision for one frame: drawn in
  this order from the given rng, a loss with probability `drop`; otherwise one
  delivery after `delay_s + uniform[0, jitter_s)`; with probability
  `duplicate` a second delivery with its own jitter draw. It is pure apart
  from the rng, so the simulated network and the real packet filter, which
  both call it, have the same semantics by construction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

LINK_FAULT_FIELDS = ("drop", "delay_s", "jitter_s", "duplicate")


class LinkFaultError(ValueError):
    """A link fault description that cannot be used (from a peer or a file)."""


@dataclass(frozen=True, slots=True)
class LinkFault:
    """Trouble on one directed link src -> dst, applied where dst receives (both runtimes agree)."""

    drop: float = 0.0
    """Probability that a frame is lost."""
    delay_s: float = 0.0
    """Extra delay added to every frame."""
    jitter_s: float = 0.0
    """Uniform random extra delay in [0, jitter_s) (reorders frames)."""
    duplicate: float = 0.0
    """Probability that a frame is delivered twice."""

    def to_wire(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in LINK_FAULT_FIELDS}

    @classmethod
    def from_wire(cls, d: Any) -> LinkFault:
        """Parse a link fault; bad input raises LinkFaultError."""
        if not isinstance(d, dict):
            raise LinkFaultError(f"link fault must be a dict, got {type(d).__name__}")
        vals: dict[str, float] = {}
        for k in LINK_FAULT_FIELDS:
            v = d.get(k, 0.0)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < float("inf"):
                raise LinkFaultError(f"link fault {k} must be a non-negative number, got {v!r}")
            vals[k] = float(v)
        if vals["drop"] > 1 or vals["duplicate"] > 1:
            raise LinkFaultError("drop and duplicate are probabilities in [0, 1]")
        return cls(**vals)

    @property
    def is_noop(self) -> bool:
        return not (self.drop or self.delay_s or self.jitter_s or self.duplicate)


def link_delays(fault: LinkFault, rng: random.Random) -> list[float]:
    """Extra delays for one frame on a faulty link: [] lost, [d] once, [d1, d2] delivered twice."""
    if fault.drop > 0 and rng.random() < fault.drop:
        return []
    delays = [_delay(fault, rng)]
    if fault.duplicate > 0 and rng.random() < fault.duplicate:
        delays.append(_delay(fault, rng))
    return delays


def _delay(fault: LinkFault, rng: random.Random) -> float:
    return fault.delay_s + (rng.random() * fault.jitter_s if fault.jitter_s > 0 else 0.0)
