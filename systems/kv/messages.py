"""The KV store's RPC messages, as frozen dataclasses with their wire form.

Rules this module keeps:

- On the wire every message is a msgpack-able dict; `to_wire()` builds it and
  `from_wire(msg)` validates it, raising `BadMessage` (one error family for
  any malformed input from a peer or client), never anything else.
- Field names on the wire are the ones the client workloads and the CLI use:
  kv.get {key}; kv.put {key, value, context, overwrite, forwarded};
  kv.fetch {key}; kv.store {key, state, hint}; kv.store-batch {items: [kv.store
  request, ...]} -> {results: [true | {code, definite, message}, ...]}; kv.digest {keys};
  kv.join / kv.leave {node}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from systems.kv.vclock import Versioned, VersionError


class BadMessage(ValueError):
    """A request that is not a valid message of its kind."""


def _dict(msg: Any) -> dict[str, Any]:
    if not isinstance(msg, dict):
        raise BadMessage(f"expected an object, got {type(msg).__name__}")
    return msg


def _str(msg: dict[str, Any], name: str) -> str:
    v = msg.get(name)
    if not isinstance(v, str):
        raise BadMessage(f"'{name}' must be a string, got {v!r}")
    return v


def _clock(raw: Any) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in raw.items()
    ):
        raise BadMessage(f"a context must be a {{node: int}} map, got {raw!r}")
    return dict(sorted(raw.items()))


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """kv.get and kv.fetch."""

    key: str

    def to_wire(self) -> dict[str, Any]:
        return {"key": self.key}

    @classmethod
    def from_wire(cls, msg: Any) -> KeyRequest:
        return cls(_str(_dict(msg), "key"))


@dataclass(frozen=True, slots=True)
class PutRequest:
    key: str
    value: Any
    context: dict[str, int] = field(default_factory=dict)
    overwrite: bool = False
    """Replace whatever the coordinator knows of the key (blind LWW write)."""
    forwarded: bool = False
    """Sent by a node outside the preference list: coordinate, do not forward again."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "context": self.context,
            "overwrite": self.overwrite,
            "forwarded": self.forwarded,
        }

    @classmethod
    def from_wire(cls, msg: Any) -> PutRequest:
        m = _dict(msg)
        return cls(_str(m, "key"), m.get("value"), _clock(m.get("context")), bool(m.get("overwrite")),
                   bool(m.get("forwarded")))


@dataclass(frozen=True, slots=True)
class StoreRequest:
    """A replica (or a stand-in, when `hint` names the node it stands in for) merges `state`."""

    key: str
    state: Versioned
    hint: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"key": self.key, "state": self.state.encode(), "hint": self.hint}

    @classmethod
    def from_wire(cls, msg: Any) -> StoreRequest:
        m = _dict(msg)
        hint = m.get("hint")
        if hint is not None and not isinstance(hint, str):
            raise BadMessage(f"'hint' must be a node name or null, got {hint!r}")
        try:
            state = Versioned.decode(m.get("state"))
        except VersionError as e:
            raise BadMessage(str(e)) from e
        return cls(_str(m, "key"), state, hint)


@dataclass(frozen=True, slots=True)
class DigestRequest:
    """Anti-entropy: the initiator's digest of every key both nodes replicate."""

    keys: dict[str, str]

    def to_wire(self) -> dict[str, Any]:
        return {"keys": self.keys}

    @classmethod
    def from_wire(cls, msg: Any) -> DigestRequest:
        keys = _dict(msg).get("keys")
        if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
            raise BadMessage("'keys' must be a {key: digest} map")
        return cls(dict(keys))


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """kv.join and kv.leave."""

    node: str

    def to_wire(self) -> dict[str, Any]:
        return {"node": self.node}

    @classmethod
    def from_wire(cls, msg: Any) -> AdminRequest:
        node = _str(_dict(msg), "node")
        if not node:
            raise BadMessage("'node' must not be empty")
        return cls(node)
