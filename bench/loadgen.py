"""One load generator for every store the benchmarks compare, so the figures are comparable.

`drive(op, concurrency, duration_s)` runs `concurrency` asyncio workers, each
calling `op(worker, i)` back to back until the deadline, and returns the
count of successful ops, errors and latencies. A worker's op raises to signal
an error; the error is counted and the worker carries on.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Op = Callable[[int, int], Awaitable[None]]


@dataclass
class LoadResult:
    ok: int = 0
    errors: int = 0
    duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, int(q * len(values)))]

    @property
    def p50(self) -> float:
        return self.percentile(0.5)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


async def drive(op: Op, concurrency: int, duration_s: float) -> LoadResult:
    result = LoadResult()
    deadline = time.monotonic() + duration_s

    async def worker(w: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                await op(w, i)
            except Exception:
                result.errors += 1
                await asyncio.sleep(0.01)
            else:
                result.ok += 1
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
            i += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.duration_s = time.monotonic() - started
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
