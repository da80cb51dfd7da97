"""A node's clock as clock faults leave it: an offset, a rate, and jumps, over a true time source.

The runtime's `now()` and `sleep()` read time through a `NodeClock` on every
backend (the wall clock's monotonic source on the real runtime, virtual time
in the simulator), so a clock fault reaches every place a system reads time.

Rules this module keeps:

- The node's time is `base_local + rate * (source() - base_true)`. A fresh
  clock is the source itself (offset 0, rate 1).
- `change({"jump_s": d})` moves the node's time by `d` seconds at once
  (forwards or backwards: the node's `now()` is then no longer monotonic,
  as a stepped clock is not); `change({"rate": r})` makes it run `r` times
  as fast as true time from now on, without a jump; `change({"reset": true})`
  puts it back on true time (offset 0, rate 1). Several keys apply as reset,
  then jump, then rate. Anything else is a `ValueError` naming it.
- `true_duration(s)`: how long a `sleep(s)` takes in true time, `s / rate` at
  the rate when the sleep starts (a slow crystal slows timers too). Jumps
  never shorten or lengthen a sleep in progress: timers measure elapsed
  time, not the clock's reading.
- Rates are in [MIN_RATE, MAX_RATE]; jumps at most MAX_JUMP_S either way.
- Pure: stdlib only, no I/O; the simulator's clock is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

MIN_RATE = 0.01
MAX_RATE = 100.0
MAX_JUMP_S = 86400.0 * 366


class NodeClock:
    """One node's clock over a true time source (see the module rules)."""

    __slots__ = ("_base_local", "_base_true", "_source", "rate", "skewed")

    def __init__(self, source: Callable[[], float]) -> None:
        self._source = source
        self._base_true = 0.0
        self._base_local = 0.0
        self.rate = 1.0
        self.skewed = False
        """False while the clock is the source itself (the fast path)."""

    def now(self) -> float:
        t = self._source()
        if not self.skewed:
            return t
        return self._base_local + self.rate * (t - self._base_true)

    def _at(self, t: float) -> float:
        """The node's time when the source reads `t`."""
        return t if not self.skewed else self._base_local + self.rate * (t - self._base_true)

    def true_duration(self, seconds: float) -> float:
        """True seconds a sleep of `seconds` on this clock takes (never negative)."""
        s = max(0.0, seconds)
        return s if self.rate == 1.0 else s / self.rate

    def offset_s(self) -> float:
        """The node's time minus true time, now."""
        t = self._source()
        return self._at(t) - t

    def change(self, change: Any) -> dict[str, float]:
        """Apply a clock fault (see the module rules); returns `describe()` after it."""
        if not isinstance(change, dict) or not change:
            raise ValueError(f"a clock change is a non-empty object of reset, jump_s, rate; got {change!r:.80}")
        unknown = sorted(set(change) - {"reset", "jump_s", "rate"})
        if unknown:
            raise ValueError(f"unknown clock change field(s) {unknown} (known: reset, jump_s, rate)")
        jump = change.get("jump_s", 0.0)
        rate = change.get("rate")
        if isinstance(jump, bool) or not isinstance(jump, int | float) or not math.isfinite(jump) \
                or abs(jump) > MAX_JUMP_S:
            raise ValueError(f"jump_s must be a finite number of seconds within ±{MAX_JUMP_S:.0f}, got {jump!r}")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)
                                 or not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE):
            raise ValueError(f"rate must be a number in [{MIN_RATE}, {MAX_RATE}], got {rate!r}")
        if change.get("reset"):
            self._rebase(0.0, 1.0)
        if jump:
            self._rebase(self.offset_s() + float(jump), self.rate)
        if rate is not None:
            self._rebase(self.offset_s(), float(rate))
        return self.describe()

    def _rebase(self, offset: float, rate: float) -> None:
        t = self._source()
        self._base_true = t
        self._base_local = t + offset
        self.rate = rate
        self.skewed = offset != 0.0 or rate != 1.0

    def describe(self) -> dict[str, float]:
        """{"now": the node's time, "true": the source's, "offset_s", "rate"}."""
        true = self._source()
        now = self._at(true)
        return {"now": now, "true": true, "offset_s": now - true, "rate": self.rate}
