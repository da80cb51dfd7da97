"""The echo workload: each client sends a value and expects it back unchanged.

It drives the harness end to end with the least system logic possible (a
smoke test for the runner, the backends and the report). Its checker is
invalid when an ok echo returned something other than what was sent.
"""

from __future__ import annotations

import random
from typing import Any

from base.history import Op, pairs
from base.spec import TestSpec
from systems.runtime.api import RpcError, Runtime
from workloads.base import Checker, Client


class EchoClient:
    def __init__(self, rt: Runtime, node: str, timeout_s: float) -> None:
        self.rt, self.node, self.timeout_s = rt, node, timeout_s

    async def invoke(self, op: Op) -> Op:
        try:
            got = await self.rt.call(self.node, "echo", op["value"], timeout=self.timeout_s)
        except RpcError as e:
            return {**op, "type": "fail" if e.definite else "info", "error": e.code}
        return {**op, "type": "ok", "value": got, "sent": op["value"]}


def check_echoes(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    bad = [
        {"index": p.complete["index"], "sent": p.invoke["value"], "got": p.complete["value"]}
        for p in pairs(history)
        if p.complete is not None and p.type == "ok" and p.complete["value"] != p.invoke["value"]
    ]
    summary = f"{len(bad)} echoes came back changed" if bad else "every ok echo returned what was sent"
    return {"valid": not bad, "summary": summary, "bad": bad[:20]}


class EchoWorkload:
    name = "echo"

    def __init__(self, spec: TestSpec) -> None:
        self.timeout_s = spec.op_timeout_s

    def client(self, rt: Runtime, node: str) -> Client:
        return EchoClient(rt, node, self.timeout_s)

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        return {"f": "echo", "value": rng.randrange(1_000_000)}

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        return [(n, {"f": "echo", "value": i}) for i, n in enumerate(nodes)]

    def checkers(self) -> dict[str, Checker]:
        return {"echo": check_echoes}


WORKLOADS = {"echo": EchoWorkload}
DEFAULT_WORKLOAD = "echo"
