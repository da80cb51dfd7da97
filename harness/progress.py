"""The live progress display: ops/s, ok/fail/info counts, the faults in place.

On a terminal it is a rich live panel; elsewhere (CI, pipes) one plain line
every `PLAIN_EVERY_S` wall-clock seconds. It only reads the runner's Stats;
it never touches the event loop, so it cannot change a sim run.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from base.history import Op
from harness.runner import Runner

PLAIN_EVERY_S = 10.0


class Progress:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.runner: Runner | None = None
        self.live: Live | None = None
        self.started = time.monotonic()
        self.last_plain = self.started
        self.ops = 0

    def attach(self, runner: Runner) -> None:
        self.runner = runner
        self.started = self.last_plain = time.monotonic()
        if self.console.is_terminal:
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def on_op(self, op: Op) -> None:
        if op.get("type") == "invoke":
            return
        self.ops += 1
        now = time.monotonic()
        if self.live is not None:
            self.live.update(self._table())
        elif now - self.last_plain >= PLAIN_EVERY_S:
            self.last_plain = now
            self.console.print(self._line(), highlight=False)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _figures(self) -> dict[str, Any]:
        assert self.runner is not None
        s = self.runner.stats
        test_s = self.runner.now_ns() / 1e9
        return {
            "test time": f"{test_s:.1f}s",
            "phase": s.phase,
            "ok/fail/info": f"{s.ok}/{s.fail}/{s.info}",
            "ops/s": f"{(s.ok + s.fail + s.info) / test_s:.1f}" if test_s > 0 else "-",
            "faults": "; ".join(s.faults) or "none",
        }

    def _line(self) -> str:
        return "  ".join(f"{k} {v}" for k, v in self._figures().items())

    def _table(self) -> Table:
        table = Table(show_header=False, box=None)
        if self.runner is not None:
            for k, v in self._figures().items():
                table.add_row(k, v)
        return table
