"""The KV nodes' own account of an operation, read back from a history, for reports.

Rules this module keeps:

- The coordinator of an op is the node its client talked to (the history's
  `node`: a KvClient talks to one node, which coordinates every key).
- Its ring view at that moment is the last `ring` op that node answered
  before the op was invoked ({node, members, n, vnodes}, sampled by the
  workload while membership can change); without one, the initial ring
  every node builds from the test's nodes and options (systems.kv.client's
  `initial_ring`, the nodes' own code), said to be that.
- The key's replicas are the first N nodes of that view's preference list;
  an ok completion's `quorum` says whether they (strict) or stand-ins
  (sloppy) answered.
- Pure: a function of the history and the test; times are seconds.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from base.history import Op, pairs
from systems.kv.client import Ring, initial_ring

NS = 1e9


@dataclass(frozen=True, slots=True)
class View:
    time_s: float
    members: tuple[str, ...]
    n: int
    vnodes: int


class RingAccount:
    def __init__(self, history: list[Op], test: dict[str, Any]) -> None:
        self.views: dict[str, list[View]] = {}
        for p in pairs(history):
            c = p.complete
            v = c.get("value") if c is not None else None
            if p.invoke.get("f") != "ring" or c is None or c.get("type") != "ok" or not isinstance(v, dict):
                continue
            members, n, vnodes = v.get("members"), v.get("n"), v.get("vnodes")
            if isinstance(members, list) and isinstance(n, int) and isinstance(vnodes, int):
                node = str(v.get("node", c.get("node")))
                self.views.setdefault(node, []).append(View(c["time"] / NS, tuple(sorted(map(str, members))), n,
                                                            vnodes))
        try:
            ring, n = initial_ring(list(test.get("nodes") or []), dict(test.get("options") or {}))
            self.initial: View | None = View(0.0, tuple(sorted(ring.nodes)), n, ring.vnodes)
        except (ValueError, KeyError, TypeError):
            self.initial = None

    def view_of(self, node: str, time_s: float) -> tuple[View | None, bool]:
        """(the node's last reported view at or before time_s, True) or (the initial ring, False)."""
        views = self.views.get(node) or []
        i = bisect.bisect_right([v.time_s for v in views], time_s)
        return (views[i - 1], True) if i else (self.initial, False)

    def describe(self, invoke: Op, complete: Op | None) -> tuple[str, str] | None:
        node = invoke.get("node")
        if not isinstance(node, str):
            return None
        view, reported = self.view_of(node, invoke.get("time", 0) / NS)
        text = f"coordinated by {node}"
        if view is not None:
            whose = (f"whose ring view (as it reported at {view.time_s:.2f} s) had members {' '.join(view.members)}"
                     if reported else f"under the initial ring of {' '.join(view.members)}")
            text += f", {whose}"
            key = invoke.get("key")
            if isinstance(key, str):
                replicas = Ring.of(view.members, view.vnodes).preference_list(key, min(view.n, len(view.members)))
                text += f", which makes {' '.join(replicas)} the replicas of {key}"
        quorum = complete.get("quorum") if complete is not None else None
        if quorum == "sloppy":
            text += "; answered by a sloppy quorum (stand-ins for replicas it could not reach)"
        elif quorum == "strict":
            text += "; answered by a strict quorum of those replicas"
        return node, text


def account(history: list[Op], test: dict[str, Any]) -> RingAccount:
    """The workload hook the report calls (harness/explain.py)."""
    return RingAccount(history, test)
