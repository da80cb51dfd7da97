"""Raft's peer messages as frozen dataclasses, and their msgpack-able wire form.

Rules:

- Every message carries the sender's `term`, `src` and `dst`.
- `seq` on AppendEntries is the leader's heartbeat round; the response echoes
  it, which is how ReadIndex learns that a majority still follows this leader.
- AppendResp answers both AppendEntries and InstallSnapshot. On success
  `index` is the last index known to match the leader; on rejection
  `reject_index` is the prev_index that did not match and
  (`conflict_index`, `conflict_term`) is the fast-backtracking hint (§5.3:
  the first index the follower holds of the conflicting term, or its
  last_index + 1 with term 0 when its log is too short).
- `pre` marks the pre-vote round (dissertation §9.6): a pre-vote never
  changes anyone's term or vote.
- `from_wire` raises `BadMessage` on anything malformed; the node logs and
  drops it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from systems.raft.log import Entry


class BadMessage(ValueError):
    """A peer sent something that is not a Raft message."""


@dataclass(frozen=True, slots=True)
class VoteReq:
    term: int
    src: str
    dst: str
    last_index: int
    last_term: int
    pre: bool = False
    """A pre-vote (dissertation §9.6): `term` is the term the sender would campaign in."""


@dataclass(frozen=True, slots=True)
class VoteResp:
    term: int
    src: str
    dst: str
    granted: bool
    pre: bool = False


@dataclass(frozen=True, slots=True)
class Append:
    term: int
    src: str
    dst: str
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class AppendResp:
    term: int
    src: str
    dst: str
    success: bool
    index: int = 0
    reject_index: int = 0
    conflict_index: int = 0
    conflict_term: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    term: int
    src: str
    dst: str
    index: int
    snap_term: int
    data: bytes
    seq: int = 0


Message = VoteReq | VoteResp | Append | AppendResp | InstallSnapshot

_KINDS: dict[str, type] = {
    "vote": VoteReq,
    "vote-resp": VoteResp,
    "append": Append,
    "append-resp": AppendResp,
    "snapshot": InstallSnapshot,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}
_OPTIONAL = frozenset({"seq", "pre"})

_STR, _BYTES, _BOOL, _INT, _ENTRIES = range(5)


def _kind_of(name: str) -> int:
    if name == "entries":
        return _ENTRIES
    if name in ("src", "dst"):
        return _STR
    if name == "data":
        return _BYTES
    if name in ("granted", "success", "pre"):
        return _BOOL
    return _INT


_FIELDS: dict[type, tuple[tuple[str, int], ...]] = {
    cls: tuple((f.name, _kind_of(f.name)) for f in fields(cls)) for cls in _KINDS.values()
}
"""Per message class: (field name, how to check it), in declaration order (computed once: hot path)."""


def to_wire(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"t": _NAMES[type(m)]}
    for name, kind in _FIELDS[type(m)]:
        v = getattr(m, name)
        out[name] = [e.to_wire() for e in v] if kind == _ENTRIES else v
    return out


def from_wire(w: Any) -> Message:
    if not isinstance(w, dict):
        raise BadMessage(f"not a raft message: {str(w)[:80]}")
    t = w.get("t")
    cls = _KINDS.get(t) if isinstance(t, str) else None
    if cls is None:
        raise BadMessage(f"not a raft message: {str(w)[:80]}")
    kw: dict[str, Any] = {}
    try:
        for name, kind in _FIELDS[cls]:
            if name not in w:
                if name in _OPTIONAL:
                    continue
                raise BadMessage(f"{t}: missing {name}")
            v = w[name]
            if kind == _INT:
                if type(v) is not int:
                    raise BadMessage(f"{t}: {name} must be int")
            elif kind == _STR:
                if not isinstance(v, str):
                    raise BadMessage(f"{t}: {name} must be str")
            elif kind == _ENTRIES:
                v = tuple(Entry.from_wire(e) for e in v)
            elif kind == _BYTES:
                if not isinstance(v, bytes):
                    raise BadMessage(f"{t}: data must be bytes")
            elif not isinstance(v, bool):
                raise BadMessage(f"{t}: {name} must be bool")
            kw[name] = v
    except (TypeError, ValueError) as e:
        if isinstance(e, BadMessage):
            raise
        raise BadMessage(str(e)) from None
    return cls(**kw)
