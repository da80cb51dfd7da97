"""The DFS node's edge: every request parsed against its schema and checked against who sent it.

Rules this module keeps:

- `Edge.parse(kind, src, msg, sender=...)` returns the request or raises a
  definite RemoteError "bad-request" (malformed: messages.parse) or
  "forbidden" (from someone who may not send it). Either way the request is
  counted in `dropped` (by kind of refusal; the node's status reports it)
  and logged through a `Throttle` (five a kind per 10 s, then one
  summary), so a flood of bad frames cannot flood the log.
- `src` is the runtime's: on an authenticated cluster the name the
  connection proved (real_auth), never a field of the request.
- `sender`: ANYONE (clients: reads, pushes, mutations, the namespace),
  NODE (a node of this cluster: a primary's batch, heartbeats, corrupt
  reports), MASTER (the master's orders to chunkservers: create, bump,
  grant, clone, delete). A request that names its sender (a heartbeat's or
  a corrupt report's `node`) must name `src`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from systems.dfs import messages as m
from systems.runtime.api import Message, RemoteError, Runtime, Throttle

T = TypeVar("T")

ANYONE, NODE, MASTER = "anyone", "node", "master"


class Edge:
    def __init__(self, rt: Runtime, nodes: list[str], master: str) -> None:
        self.rt = rt
        self.nodes = frozenset(nodes)
        self.master = master
        self.warn = Throttle(rt.log, rt.now)
        self.dropped: dict[str, int] = {}

    def parse(self, kind: type[T], src: str, msg: Message, *, sender: str = ANYONE) -> T:
        try:
            req = m.parse(kind, msg)
        except m.BadMessage as e:
            raise self._refuse("dfs-bad-request", "bad-request", src, kind, str(e)) from None
        why = self._not_allowed(src, req, sender)
        if why is not None:
            raise self._refuse("dfs-forbidden", "forbidden", src, kind, why)
        return req

    def _not_allowed(self, src: str, req: Any, sender: str) -> str | None:
        if sender == MASTER and src != self.master:
            return f"only the master ({self.master}) sends this"
        if sender == NODE and src not in self.nodes:
            return "only the cluster's nodes send this"
        claimed = getattr(req, "node", src)
        if claimed != src:
            return f"{src} speaks for {claimed}"
        return None

    def _refuse(self, event: str, code: str, src: str, kind: type, why: str) -> RemoteError:
        self.dropped[event] = self.dropped.get(event, 0) + 1
        self.warn.warning(event, src=src, kind=kind.__name__, error=why)
        return RemoteError(why, code=code, definite=True)

    def flush(self) -> None:
        """Tell the summaries of throttled warnings whose window is over (call it from a timer)."""
        self.warn.flush()
