"""A workload: what clients do to a system, and which checkers judge the result.

Rules (Jepsen's client protocol, cut down):

- The runner asks `next_op(process, rng)` for an op to invoke: a dict with at
  least "f", and "key"/"value" as the history format says; None means this
  process has nothing more to do.
- `client.invoke(op)` performs it against one node and returns the
  completion: the same dict with "type" set to "ok", "fail" or "info" (and
  "value" filled in for reads, "error" for failures). It must never return
  "fail" unless the op certainly had no effect. It should not raise; an
  exception escaping it is recorded as "info".
- `final_ops(nodes)` lists the (node, op) reads the runner performs after the
  last heal and the quiet period.
- `checkers()` maps a checker name to a function of (history, test) that
  returns a result dict with "valid": True | False | "unknown".
"""

from __future__ import annotations

import random
from typing import Protocol

from base.history import Op
from base.verdict import Checker
from systems.runtime.api import Runtime


class Client(Protocol):
    async def invoke(self, op: Op) -> Op: ...


class Workload(Protocol):
    name: str

    def client(self, rt: Runtime, node: str) -> Client: ...

    def next_op(self, process: int, rng: random.Random) -> Op | None: ...

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]: ...

    def checkers(self) -> dict[str, Checker]: ...
