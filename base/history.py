"""The history: one JSON object a line, appended and flushed as it happens.

Rules (DESIGN.md, "History"):

- `type` is `invoke`, then exactly one of `ok` (it happened), `fail` (it
  certainly did not happen) or `info` (unknown: it may happen at any later
  time). A client process has at most one operation outstanding; a process
  whose operation ended `info` never issues again.
- `process` is an int for clients and the string "nemesis" for faults (the
  nemesis writes `info` ops only, one per fault and heal).
- `time` is integer nanoseconds since the test began (virtual in sim).
- `index` counts lines from 0 and is assigned by the writer.
- Keys, in this order when present: index, time, process, type, f, key,
  value, node, error. Anything else a workload adds follows them.

The reader is strict about content and forgiving about a torn tail: a last
line cut short by a crash is reported and skipped; anything else malformed is
a `HistoryError` naming the line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

Op = dict[str, Any]

TYPES = ("invoke", "ok", "fail", "info")
KEY_ORDER = ("index", "time", "process", "type", "f", "key", "value", "node", "error")


class HistoryError(ValueError):
    """A history file that cannot be read, with the line number that broke it."""


def _ordered(op: Op) -> Op:
    out = {k: op[k] for k in KEY_ORDER if k in op}
    for k in op:
        if k not in out:
            out[k] = op[k]
    return out


def encode_op(op: Op) -> str:
    """One canonical JSON line (no trailing newline); stable across runs for identical ops."""
    return json.dumps(_ordered(op), separators=(", ", ": "), ensure_ascii=False, allow_nan=False)


class HistoryWriter:
    """Appends ops to history.jsonl, flushing every line so a crash loses nothing observed."""

    def __init__(self, path: Path | str, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self._file: TextIO = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._fsync = fsync
        self.ops: list[Op] = []

    def append(self, op: Op) -> Op:
        """Assign the next index, write the op, and return it (as written)."""
        if op.get("type") not in TYPES:
            raise ValueError(f"bad op type {op.get('type')!r}")
        op = _ordered({"index": len(self.ops), **{k: v for k, v in op.items() if k != "index"}})
        self._file.write(encode_op(op) + "\n")
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())
        self.ops.append(op)
        return op

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()


@dataclass
class ReadResult:
    ops: list[Op]
    torn_tail: bool = False
    """True when the last line was cut short (a crash mid-write) and was skipped."""


def parse_lines(lines: Iterable[str], *, source: str = "history") -> ReadResult:
    """Parse history lines; see the module rules for what is an error."""
    ops: list[Op] = []
    raw = list(lines)
    torn = False
    for n, line in enumerate(raw, start=1):
        if not line.strip():
            continue
        try:
            op = json.loads(line)
        except json.JSONDecodeError as e:
            is_last = all(not rest.strip() for rest in raw[n:])
            if is_last and not line.endswith("\n"):
                torn = True
                break
            raise HistoryError(f"{source}:{n}: not a JSON object ({e.msg})") from None
        if not isinstance(op, dict):
            raise HistoryError(f"{source}:{n}: expected a JSON object, got {type(op).__name__}")
        if op.get("type") not in TYPES:
            raise HistoryError(f"{source}:{n}: 'type' must be one of {TYPES}, got {op.get('type')!r}")
        if "process" not in op:
            raise HistoryError(f"{source}:{n}: missing 'process'")
        ops.append(op)
    return ReadResult(ops, torn)


def read_history(path: Path | str) -> ReadResult:
    path = Path(path)
    if not path.exists():
        raise HistoryError(f"{path}: no such history file")
    with open(path, encoding="utf-8") as f:
        return parse_lines(f, source=str(path))


def client_ops(history: Iterable[Op]) -> Iterator[Op]:
    """Only the clients' ops (not the nemesis)."""
    return (op for op in history if op.get("process") != "nemesis")


@dataclass(frozen=True, slots=True)
class Pair:
    """An invocation and its completion (None while still open at the end)."""

    invoke: Op
    complete: Op | None

    @property
    def type(self) -> str:
        """ok, fail or info; an op that never completed counts as info."""
        return self.complete["type"] if self.complete else "info"


def pairs(history: Iterable[Op]) -> list[Pair]:
    """Pair every client invocation with its completion, in invocation order.

    A completion belongs to the latest open invocation of the same process.
    Raises HistoryError on a completion without an invocation or a second
    invocation while one is open.
    """
    open_by_process: dict[Any, int] = {}
    out: list[Pair] = []
    for op in client_ops(history):
        p = op["process"]
        if op["type"] == "invoke":
            if p in open_by_process:
                raise HistoryError(f"op {op.get('index')}: process {p} invoked while an op was open")
            open_by_process[p] = len(out)
            out.append(Pair(op, None))
        else:
            if p not in open_by_process:
                raise HistoryError(f"op {op.get('index')}: completion for process {p} with no open invoke")
            i = open_by_process.pop(p)
            out[i] = Pair(out[i].invoke, op)
    return out
