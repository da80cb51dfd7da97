"""The KV store's RPC messages, as frozen dataclasses with their wire form.

Rules this module keeps:

- On the wire every message is a msgpack-able dict; `to_wire()` builds it and
  `from_wire(msg)` validates it, raising `BadMessage` (one error family for
  any malformed input from a peer or client), never anything else.
- The schema, beyond types: keys are strings of at most MAX_KEY_CHARS;
  node names are node ids (api.check_node_id); every counter of a clock,
  context or dot is an int in 0..INT_MAX (one more must still fit the
  wire); a state has at most MAX_SIBLINGS siblings and a clock at most
  MAX_CLOCK_ENTRIES entries; timestamps are finite; a digest request names
  at most MAX_DIGEST_KEYS keys; digests are ints in 0..2**64-1.
  `decode_versioned` is the one way a state from the wire (a request, a
  reply) is read.
- Field names on the wire are the ones the client workloads and the CLI use:
  kv.get {key}; kv.put {key, value, context, overwrite, forwarded};
  kv.fetch {key}; kv.store {key, state, hint}; kv.store-batch {items: [kv.store
  request, ...]} -> {results: [true | {code, definite, message}, ...]};
  kv.digest {buckets} -> {differ: [bucket, ...]}, or {keys, within} ->
  {states: {key: state}}; kv.join / kv.leave {node}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from systems.kv.vclock import Dot, Sibling, Versioned, VersionError
from systems.runtime.api import INT_MAX, check_node_id

MAX_KEY_CHARS = 1024
MAX_SIBLINGS = 256
MAX_CLOCK_ENTRIES = 1024
MAX_DIGEST_KEYS = 100_000
DIGEST_BUCKETS = 1024
"""Anti-entropy's buckets (antientropy.BUCKETS)."""
DIGEST_LIMIT = 1 << 64


class BadMessage(ValueError):
    """A request that is not a valid message of its kind."""


class BadVersion(BadMessage, VersionError):
    """A state from the wire outside the schema (caught as either family)."""


_KNOWN_NODES: set[str] = set()
"""Names that passed check_node_id (a cluster has few; at most MAX_KNOWN_NODES are kept)."""
MAX_KNOWN_NODES = 4096


def _node(name: Any, what: str) -> str:
    if type(name) is str and name in _KNOWN_NODES:
        return name
    try:
        check_node_id(name)
    except ValueError as e:
        raise BadVersion(f"{what}: {e}") from None
    if len(_KNOWN_NODES) < MAX_KNOWN_NODES:
        _KNOWN_NODES.add(name)
    return name


def _counters(clock: dict[str, int], what: str) -> None:
    if len(clock) > MAX_CLOCK_ENTRIES:
        raise BadVersion(f"{what} has {len(clock)} entries (at most {MAX_CLOCK_ENTRIES})")
    for node, counter in clock.items():
        _node(node, what)
        if type(counter) is not int or not 0 <= counter <= INT_MAX:
            raise BadVersion(f"{what}: counter {str(counter)[:40]} of {node} outside 0..{INT_MAX}")


def _sibling_order(s: Sibling) -> tuple[str, int]:
    return (s.dot.node, s.dot.counter)


def decode_versioned(raw: Any) -> Versioned:
    """A key's state from the wire, checked against the schema; BadVersion otherwise.

    One pass over the raw form, building what `Versioned.decode` builds (siblings by dot, each context
    sorted, the clock the join of the raw clock, every context and every dot), with stricter types:
    counters are ints (never bools or numeric strings), timestamps finite ints or floats."""
    if not isinstance(raw, dict) or not isinstance(raw.get("s"), list) or not isinstance(raw.get("c"), dict):
        raise BadVersion(f"bad versioned value {str(raw)[:200]}")
    sibs_raw, clock_raw = raw["s"], raw["c"]
    if len(sibs_raw) > MAX_SIBLINGS:
        raise BadVersion(f"a state of {len(sibs_raw)} siblings (at most {MAX_SIBLINGS})")
    _counters(clock_raw, "clock")
    clock: dict[str, int] = {}
    for node, counter in clock_raw.items():
        if counter > clock.get(node, 0):
            clock[node] = counter
    sibs: list[Sibling] = []
    for s in sibs_raw:
        if not isinstance(s, list) or len(s) != 5 or not isinstance(s[3], dict):
            raise BadVersion(f"bad sibling {str(s)[:200]}")
        value, node, counter, ctx, ts = s
        _node(node, "dot")
        if type(counter) is not int or not 0 <= counter <= INT_MAX:
            raise BadVersion(f"dot counter {str(counter)[:40]} outside 0..{INT_MAX}")
        _counters(ctx, "context")
        if type(ts) not in (int, float) or not math.isfinite(ts):
            raise BadVersion(f"timestamp {str(ts)[:40]} is not a finite number")
        ctx = dict(sorted(ctx.items()))
        for k, v in ctx.items():
            if v > clock.get(k, 0):
                clock[k] = v
        if counter > clock.get(node, 0):
            clock[node] = counter
        sibs.append(Sibling(value, Dot(node, counter), ctx, float(ts)))
    if len(clock) > MAX_CLOCK_ENTRIES:
        raise BadVersion(f"clock has {len(clock)} entries (at most {MAX_CLOCK_ENTRIES})")
    sibs.sort(key=_sibling_order)
    return Versioned(tuple(sibs), dict(sorted(clock.items())))


def _dict(msg: Any) -> dict[str, Any]:
    if not isinstance(msg, dict):
        raise BadMessage(f"expected an object, got {type(msg).__name__}")
    return msg


def _str(msg: dict[str, Any], name: str) -> str:
    v = msg.get(name)
    if not isinstance(v, str):
        raise BadMessage(f"'{name}' must be a string, got {str(v)[:80]}")
    if len(v) > MAX_KEY_CHARS:
        raise BadMessage(f"'{name}' is {len(v)} characters long (at most {MAX_KEY_CHARS})")
    return v


def _clock(raw: Any) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in raw.items()
    ):
        raise BadMessage(f"a context must be a {{node: int}} map, got {str(raw)[:80]}")
    _counters(raw, "context")
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
        if hint is not None:
            _node(hint, "hint")
        return cls(_str(m, "key"), decode_versioned(m.get("state")), hint)


@dataclass(frozen=True, slots=True)
class DigestRequest:
    """Anti-entropy (antientropy.py): phase 1 carries the initiator's `buckets` digests (DIGEST_BUCKETS
    ints); phase 2 its {key: digest} for the shared keys of the buckets `within` that differed."""

    keys: dict[str, int] = field(default_factory=dict)
    within: list[int] = field(default_factory=list)
    buckets: list[int] | None = None

    def to_wire(self) -> dict[str, Any]:
        if self.buckets is not None:
            return {"buckets": self.buckets}
        return {"keys": self.keys, "within": self.within}

    @classmethod
    def from_wire(cls, msg: Any) -> DigestRequest:
        m = _dict(msg)
        if "buckets" in m:
            buckets = m["buckets"]
            if not isinstance(buckets, list) or len(buckets) != DIGEST_BUCKETS or not all(
                type(d) is int and 0 <= d < DIGEST_LIMIT for d in buckets
            ):
                raise BadMessage(f"'buckets' must be a list of {DIGEST_BUCKETS} digests (ints in 0..2**64-1)")
            return cls(buckets=list(buckets))
        keys, within = m.get("keys"), m.get("within")
        if not isinstance(keys, dict) or len(keys) > MAX_DIGEST_KEYS or not all(
            isinstance(k, str) and len(k) <= MAX_KEY_CHARS and type(v) is int and 0 <= v < DIGEST_LIMIT
            for k, v in keys.items()
        ):
            raise BadMessage(f"'keys' must be a {{key: digest}} map of at most {MAX_DIGEST_KEYS} keys")
        if not isinstance(within, list) or not all(type(b) is int and 0 <= b < DIGEST_BUCKETS for b in within):
            raise BadMessage(f"'within' must be a list of bucket numbers in 0..{DIGEST_BUCKETS - 1}")
        return cls(dict(keys), sorted(set(within)))


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """kv.join and kv.leave."""

    node: str

    def to_wire(self) -> dict[str, Any]:
        return {"node": self.node}

    @classmethod
    def from_wire(cls, msg: Any) -> AdminRequest:
        return cls(_node(_str(_dict(msg), "node"), "node"))
