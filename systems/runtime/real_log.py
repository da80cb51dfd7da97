"""The real runtime's structured log: one JSON object a line.

Rules this module keeps:

- Each record is `{"time": <unix seconds, float>, "node": ..., "level": ...,
  "event": ..., <fields>...}` written as one line and flushed at once, so a
  SIGKILL loses no record already logged.
- A field whose name clashes with a base key is renamed `field_<name>`;
  values JSON cannot carry are written as their `repr`.
- Logging never raises into the caller: a write error is swallowed (a node
  must not die because its log disk is full).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any, TextIO

from systems.runtime.common import LevelledLog

LEVELS = ("debug", "info", "warning", "error")
_BASE = ("time", "node", "level", "event")


class JsonLog(LevelledLog):
    def __init__(self, node_id: str, stream: TextIO | None = None, *, min_level: str = "debug") -> None:
        self.node_id = node_id
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self._min = LEVELS.index(min_level)

    @classmethod
    def to_file(cls, node_id: str, path: str, **kw: Any) -> JsonLog:
        return cls(node_id, open(path, "a", encoding="utf-8", buffering=1), **kw)

    def record(self, level: str, event: str, fields: dict[str, Any]) -> dict[str, Any]:
        rec: dict[str, Any] = {"time": round(time.time(), 6), "node": self.node_id, "level": level, "event": event}
        for k, v in fields.items():
            rec[f"field_{k}" if k in _BASE else k] = v
        return rec

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if LEVELS.index(level) < self._min:
            return
        try:
            line = json.dumps(self.record(level, event, fields), default=repr, ensure_ascii=False)
            self.stream.write(line + "\n")
            self.stream.flush()
        except Exception:
            pass

    def close(self) -> None:
        if self.stream not in (sys.stderr, sys.stdout):
            with contextlib.suppress(Exception):
                self.stream.close()
