"""Failure-detector arithmetic: phi accrual (Hayashibara et al. 2004, as in Akka and Cassandra).

Pure: no clock, no I/O; the caller passes `now` (seconds, any monotonic origin).

Rules this module keeps:

- phi(now) = -log10(P(the next heartbeat arrives later than `now - last`)),
  with heartbeat inter-arrival times modelled as a normal distribution whose
  mean is the window mean plus `acceptable_pause_s` and whose standard
  deviation is max(window stddev, `min_std_s`). phi is 0.3 (log10 2) at the
  expected arrival time, grows without bound with silence, and drops back as
  soon as a heartbeat is recorded. The tail uses the logistic approximation of
  the normal CDF that Akka uses, computed in log space so it never overflows.
- The window keeps the last `window` inter-arrival times. An interval longer
  than `max_sample_s` is an outage (a partition, a pause), not jitter, and is
  not learned (Cassandra's rule): otherwise one long partition would make the
  detector slow for the next hundred heartbeats.
- A fresh detector is seeded with the nominal interval +- a quarter (Akka's
  first-heartbeat estimate), so phi is meaningful before the window fills and
  a peer that is never heard from at all still accrues suspicion from the
  moment the detector was created.
- `reset(now)` restarts the silence clock without learning an interval (used
  when the observer itself was stalled and must not blame its peers for it).
- The observer's clock may go back (a stepped clock: the runtime's `now()`
  may jump). A last heartbeat in the future is then brought back to `now`:
  silence is counted from no later than the present, so a clock that went
  back by d never makes a peer that fell silent look heard for d more
  seconds. (Keeping the latest stamp, as `max` would, did exactly that.)

`FixedTimeout` has the same interface and is the planted `fixed-timeout` bug:
phi is 0 until a fixed timeout passes, then at once `PHI_MAX`. It knows
nothing of jitter, delay or pauses.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

PHI_MAX = 1000.0
"""phi is capped here so that views stay finite (JSON has no infinity)."""

_LN10 = math.log(10.0)


def phi_of(elapsed_s: float, mean_s: float, std_s: float) -> float:
    """-log10 of the probability that a normal(mean, std) arrival comes later than `elapsed_s`."""
    assert std_s > 0, "std must be positive"
    y = (elapsed_s - mean_s) / std_s
    z = y * (1.5976 + 0.070566 * y * y)
    # -log10(1 - F(y)) with F(y) ~ 1 / (1 + exp(-z)), i.e. log10(1 + exp(z)), stably:
    softplus = z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))
    return min(PHI_MAX, softplus / _LN10)


class Detector(Protocol):
    def heartbeat(self, now: float) -> None: ...

    def phi(self, now: float) -> float: ...

    def reset(self, now: float) -> None: ...

    @property
    def last(self) -> float: ...


class PhiAccrual:
    """One peer's phi-accrual detector over a sliding window of inter-arrival times."""

    def __init__(
        self,
        now: float,
        *,
        interval_s: float,
        window: int = 100,
        min_std_s: float = 0.05,
        acceptable_pause_s: float = 0.5,
        max_sample_s: float = 1.0,
    ) -> None:
        assert interval_s > 0 and window >= 2 and min_std_s > 0
        self.window = window
        self.min_std_s = min_std_s
        self.acceptable_pause_s = acceptable_pause_s
        self.max_sample_s = max_sample_s
        self._samples: deque[float] = deque()
        self._sum = 0.0
        self._sumsq = 0.0
        self._last = now
        self._learn(interval_s - interval_s / 4)
        self._learn(interval_s + interval_s / 4)

    @property
    def last(self) -> float:
        """When the last heartbeat arrived (or the detector was created or reset)."""
        return self._last

    def _learn(self, interval: float) -> None:
        self._samples.append(interval)
        self._sum += interval
        self._sumsq += interval * interval
        if len(self._samples) > self.window:
            old = self._samples.popleft()
            self._sum -= old
            self._sumsq -= old * old

    @property
    def mean_s(self) -> float:
        return self._sum / len(self._samples)

    @property
    def std_s(self) -> float:
        n = len(self._samples)
        var = max(0.0, self._sumsq / n - (self._sum / n) ** 2)
        return math.sqrt(var)

    def heartbeat(self, now: float) -> None:
        interval = now - self._last
        if 0 <= interval <= self.max_sample_s:
            self._learn(interval)
        self._last = now

    def reset(self, now: float) -> None:
        self._last = now

    def phi(self, now: float) -> float:
        if now < self._last:  # the clock went back (module rules)
            self._last = now
        elapsed = now - self._last
        return phi_of(elapsed, self.mean_s + self.acceptable_pause_s, max(self.std_s, self.min_std_s))


class FixedTimeout:
    """The `fixed-timeout` bug: a peer is dead once silent for `timeout_s`, whatever the jitter."""

    def __init__(self, now: float, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._last = now

    @property
    def last(self) -> float:
        return self._last

    def heartbeat(self, now: float) -> None:
        self._last = now

    def reset(self, now: float) -> None:
        self._last = now

    def phi(self, now: float) -> float:
        if now < self._last:  # the clock went back (module rules)
            self._last = now
        return 0.0 if now - self._last <= self.timeout_s else PHI_MAX
