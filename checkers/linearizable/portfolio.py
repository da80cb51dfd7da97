"""Run the depth-first (WGL) search and the frontier (JIT) search on one part, first verdict wins.

Rules: both searches are sound and complete, so whichever decides first
decides. The depth-first search runs alone for its first WARMUP_STEPS (it
settles nearly every ordinary history within them); after that the two take
turns, the frontier search getting a quarter of the steps per turn (its steps
cost more). The schedule counts steps, never time, so the same history gives
the same verdict and evidence on any machine.
"""

from __future__ import annotations

from checkers.linearizable.jit import JitSearch
from checkers.linearizable.models import Model, Operation
from checkers.linearizable.search import Progress, Search, stuck_after

WARMUP_STEPS = 50_000
JIT_SHARE = 4


class Portfolio:
    """Same interface as search.Search: run(max_steps), progress, ops, stuck_ops(), memory_bytes(), drop_cache()."""

    def __init__(self, model: Model, ops: list[Operation]) -> None:
        self.model = model
        self.ops = ops
        self.dfs = Search(model, ops)
        self.jit: JitSearch | None = None
        self.result: bool | None = self.dfs.result
        self.decided_by = "dfs" if self.result is not None else ""
        self._turn = 0

    @property
    def progress(self) -> Progress:
        d = self.dfs.progress
        if self.jit is None:
            return d
        j = self.jit.progress
        if self.decided_by:  # the evidence comes from the engine that decided
            best = j if self.decided_by == "jit" else d
        else:
            best = d if len(d.best_prefix) >= len(j.best_prefix) else j
        return Progress(steps=d.steps + j.steps, cache_entries=d.cache_entries + j.cache_entries,
                        best_prefix=best.best_prefix, best_state=best.best_state)

    def run(self, max_steps: int) -> bool | None:
        if self.result is not None:
            return self.result
        if self.dfs.progress.steps < WARMUP_STEPS:
            return self._decide(self.dfs.run(min(max_steps, WARMUP_STEPS - self.dfs.progress.steps)), "dfs")
        if self.jit is None:
            self.jit = JitSearch(self.model, self.ops)
        self._turn ^= 1
        if self._turn:
            return self._decide(self.dfs.run(max_steps), "dfs")
        return self._decide(self.jit.run(max(1, max_steps // JIT_SHARE)), "jit")

    def _decide(self, result: bool | None, engine: str) -> bool | None:
        if result is not None:
            self.result = result
            self.decided_by = engine
        return result

    def stuck_ops(self) -> list[int]:
        return stuck_after(self.ops, self.progress.best_prefix)

    def memory_bytes(self) -> int:
        return self.dfs.memory_bytes() + (self.jit.memory_bytes() if self.jit else 0)

    def drop_cache(self) -> None:
        self.dfs.drop_cache()
        if self.jit:
            self.jit.drop_cache()
