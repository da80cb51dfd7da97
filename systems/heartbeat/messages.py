"""Wire messages of the heartbeat system, and their one decoding rule.

Rules:
- Messages are frozen dataclasses; on the wire they are small dicts (msgpack-able).
- `decode` accepts exactly the fields listed (ints in 0..INT_MAX: one more
  must still fit the wire, so a peer's 2**64 - 1 is refused); anything else
  raises `BadMessage`, which the node logs and drops: a peer's garbage never
  crashes it.
- The sender is the runtime's `src`, never a field a peer could forge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from systems.runtime.api import INT_MAX


class BadMessage(ValueError):
    """A frame that is not a valid heartbeat-system message."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """'I am alive, as incarnation `incarnation`; this is my `seq`-th heartbeat since I started.'"""

    incarnation: int
    seq: int

    def to_wire(self) -> dict[str, int]:
        return {"inc": self.incarnation, "seq": self.seq}

    @classmethod
    def decode(cls, msg: Any) -> Heartbeat:
        return cls(_uint(msg, "inc"), _uint(msg, "seq"))


@dataclass(frozen=True, slots=True)
class DeclaredDead:
    """'I declared you dead as incarnation `incarnation`': the receiver refutes with a higher one."""

    incarnation: int

    def to_wire(self) -> dict[str, int]:
        return {"inc": self.incarnation}

    @classmethod
    def decode(cls, msg: Any) -> DeclaredDead:
        return cls(_uint(msg, "inc"))


def _uint(msg: Any, key: str) -> int:
    if not isinstance(msg, dict):
        raise BadMessage(f"expected a dict, got {type(msg).__name__}")
    v = msg.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= INT_MAX:
        raise BadMessage(f"field {key!r} must be an int in 0..{INT_MAX}, got {str(v)[:40]}")
    return v
