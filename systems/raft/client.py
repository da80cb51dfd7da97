"""Client library for the Raft KV: finds the leader, follows redirects, retries, reports honestly.

Rules:

- Every write carries (client id, seq); a retry of the same operation reuses
  them, so the state machine applies it at most once whichever leader gets it.
- The outcome is "ok" when a node answered that the op was applied (with its
  result), "fail" when the state machine answered a definite failure (a cas
  that did not match) or when no attempt could possibly have had an effect
  (every attempt was refused before being appended: unreachable, not-leader,
  dropped), and "info" otherwise (some attempt timed out or was left in
  doubt, and we ran out of time).
- Reads (a get, or a txn of reads only) have no effect, so a read that did
  not complete is "fail".
- `home` is tried first; a not-leader answer's hint is followed next; without
  a hint the client walks the node list, pausing briefly between rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from systems.raft.kvstate import is_read_only
from systems.runtime.api import RpcError, Runtime


@dataclass(frozen=True, slots=True)
class Outcome:
    type: str
    """ok, fail or info."""
    value: Any = None
    error: str | None = None
    leader: str | None = None
    term: int | None = None
    attempts: int = 0
    claim: tuple[str, int] | None = None
    """(node, term) when the answering node said it was the leader of that term as it answered."""


class RaftClient:
    def __init__(
        self,
        rt: Runtime,
        nodes: list[str],
        *,
        home: str | None = None,
        client_id: str | None = None,
        attempt_timeout_s: float = 1.0,
        backoff_s: float = 0.05,
    ) -> None:
        self.rt = rt
        self.nodes = list(nodes)
        self.leader = home if home in self.nodes else (self.nodes[0] if self.nodes else None)
        self.client_id = client_id or f"c{rt.rng.getrandbits(48):012x}"
        self.seq = 0
        self.attempt_timeout_s = attempt_timeout_s
        self.backoff_s = backoff_s

    def _next_node(self, after: str | None) -> str:
        if after not in self.nodes:
            return self.nodes[0]
        return self.nodes[(self.nodes.index(after) + 1) % len(self.nodes)]

    async def request(self, f: str, key: Any = None, value: Any = None, *, timeout_s: float = 2.0) -> Outcome:
        """Perform one operation; see the module rules for what the outcome means."""
        msg: dict[str, Any] = {"f": f, "key": key, "value": value}
        is_read = is_read_only(msg)
        if not is_read:
            self.seq += 1
            msg["client"], msg["seq"] = self.client_id, self.seq
        deadline = self.rt.now() + timeout_s
        maybe = False
        last_error = "no leader found"
        target = self.leader or self.nodes[0]
        tried_since_pause = 0
        attempts = 0
        while True:
            remaining = deadline - self.rt.now()
            if remaining <= 0.001:
                break
            attempts += 1
            per_try = min(self.attempt_timeout_s, remaining)
            try:
                reply = await self.rt.call(target, "client", {**msg, "timeout_s": per_try * 0.8}, timeout=per_try)
            except RpcError as e:
                if not e.definite:
                    maybe = True
                last_error = f"{target}: {e.code}"
                target = self._next_node(target)
                tried_since_pause += 1
            else:
                status = reply.get("status") if isinstance(reply, dict) else None
                if status in ("ok", "fail"):
                    self.leader = target
                    term = reply.get("term")
                    claim = (target, term) if reply.get("role") == "leader" and isinstance(term, int) else None
                    error = reply.get("error") if status == "fail" else None
                    return Outcome(status, reply.get("value"), error, target, term, attempts, claim)
                if status == "not-leader":
                    last_error = f"{target}: not leader"
                    hint = reply.get("leader")
                    target = hint if hint in self.nodes and hint != target else self._next_node(target)
                    tried_since_pause += 1
                elif status == "dropped":
                    last_error = f"{target}: dropped by a new leader"
                    target = self._next_node(target)
                    tried_since_pause += 1
                else:  # unknown, stale, anything else: the attempt may still take effect
                    maybe = True
                    last_error = f"{target}: {reply.get('error') if isinstance(reply, dict) else reply}"
                    target = self._next_node(target)
                    tried_since_pause += 1
            if tried_since_pause >= len(self.nodes):
                tried_since_pause = 0
                await self.rt.sleep(min(self.backoff_s, max(0.0, deadline - self.rt.now())))
        if is_read or not maybe:
            return Outcome("fail", None, last_error, attempts=attempts)
        return Outcome("info", None, last_error, attempts=attempts)

    async def status(self, node: str, *, timeout_s: float = 1.0) -> dict[str, Any]:
        """A node's own status (never redirected). Raises RpcError."""
        return await self.rt.call(node, "status", None, timeout=timeout_s)
