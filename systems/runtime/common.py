"""Pieces both runtimes share, so `real` and `sim` behave the same way by construction.

- `LevelledLog`: the four level methods of `api.Log` over one `_emit`.
- `log_task_failure`: what a runtime does with an exception that escaped a
  spawned task (api.Runtime.spawn: logged, never silently lost).
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

from systems.runtime.api import Log


class LevelledLog:
    """Subclasses implement `_emit(level, event, fields)`."""

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)


def log_task_failure(log: Log, task: asyncio.Task[Any]) -> None:
    """Log the exception a finished task raised, if any (cancellation is not a failure)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error(
            "task-failed", task=task.get_name(), error=repr(exc),
            traceback="".join(traceback.format_exception(exc)),
        )
