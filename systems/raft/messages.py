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
- `from_wire` checks each message against its schema and raises
  `BadMessage` on anything else; the node counts it, logs it (throttled) and
  drops it, so nothing a peer sends can raise inside the protocol loop:
  terms, indexes, commit, seq and the snapshot term are ints in
  0..INT_MAX (a heartbeat's prev_index and an AppendResp's index and
  reject_index may be -1, as the core sends them); src and dst are node ids
  (api.check_node_id's characters); an Append carries at most
  MAX_ENTRIES entries, numbered prev_index + 1, + 2, ... with terms that
  never go down, never below prev_term and never above the message's term
  (what any leader's log looks like); a snapshot's term is at most the
  message's term; a vote's last_term is at most its term.
- Bool fields are bools (an int is not a bool), int fields are ints (a bool
  is not an int).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from systems.raft.log import Entry
from systems.runtime.api import INT_MAX, check_node_id

MAX_ENTRIES = 10_000
"""The most entries one Append may carry (a leader sends max_batch, 64 by default)."""


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

_STR, _BYTES, _BOOL, _INT, _ENTRIES, _INT_OR_NONE = range(6)
_MAY_BE_MINUS_ONE = frozenset({(Append, "prev_index"), (AppendResp, "index"), (AppendResp, "reject_index")})


def _kind_of(cls: type, name: str) -> int:
    if name == "entries":
        return _ENTRIES
    if name in ("src", "dst"):
        return _STR
    if name == "data":
        return _BYTES
    if name in ("granted", "success", "pre"):
        return _BOOL
    if (cls, name) in _MAY_BE_MINUS_ONE:
        return _INT_OR_NONE
    return _INT


_FIELDS: dict[type, tuple[tuple[str, int], ...]] = {
    cls: tuple((f.name, _kind_of(cls, f.name)) for f in fields(cls)) for cls in _KINDS.values()
}
"""Per message class: (field name, how to check it), in declaration order (computed once: hot path)."""


def _optional_last(names: list[str]) -> bool:
    optional = sum(n in _OPTIONAL for n in names)
    return all(n in _OPTIONAL for n in names[len(names) - optional:])


# from_wire builds messages positionally, leaving out a missing optional field: those must come last.
assert all(_optional_last([n for n, _ in fs]) for fs in _FIELDS.values())


def to_wire(m: Message) -> dict[str, Any]:
    cls = type(m)
    out: dict[str, Any] = {"t": _NAMES[cls]}
    for name in _NAMES_OF[cls]:
        out[name] = getattr(m, name)
    if cls is Append:
        out["entries"] = [[e.term, e.index, e.data] for e in m.entries]  # Entry.to_wire, inlined
    return out


_NAMES_OF: dict[type, tuple[str, ...]] = {cls: tuple(name for name, _ in fs) for cls, fs in _FIELDS.items()}
"""Per message class: its field names in declaration order."""

_GOOD_IDS: set[str] = set()
"""Node ids check_node_id accepted (a pure check, so its answer is remembered; bounded)."""
_MISSING: Any = object()


def from_wire(w: Any) -> Message:
    if not isinstance(w, dict):
        raise BadMessage(f"not a raft message: {str(w)[:80]}")
    t = w.get("t")
    cls = _KINDS.get(t) if isinstance(t, str) else None
    if cls is None:
        raise BadMessage(f"not a raft message: {str(w)[:80]}")
    args: list[Any] = []
    for name, kind in _FIELDS[cls]:
        v = w.get(name, _MISSING)
        if v is _MISSING:
            if name in _OPTIONAL:
                continue  # optional fields come last: the default stands
            raise BadMessage(f"{t}: missing {name}")
        if kind == _INT:
            if type(v) is not int or not 0 <= v <= INT_MAX:
                raise BadMessage(f"{t}: {name} must be an int in 0..{INT_MAX}, got {str(v)[:40]}")
        elif kind == _STR:
            if type(v) is not str or v not in _GOOD_IDS:
                try:
                    check_node_id(v)
                except ValueError as e:
                    raise BadMessage(f"{t}: {name}: {e}") from None
                if len(_GOOD_IDS) < 4096:
                    _GOOD_IDS.add(v)
        elif kind == _INT_OR_NONE:
            if type(v) is not int or not -1 <= v <= INT_MAX:
                raise BadMessage(f"{t}: {name} must be an int in -1..{INT_MAX}, got {str(v)[:40]}")
        elif kind == _ENTRIES:
            v = _entries(t, v)
        elif kind == _BYTES:
            if not isinstance(v, bytes):
                raise BadMessage(f"{t}: data must be bytes")
        elif type(v) is not bool:
            raise BadMessage(f"{t}: {name} must be a bool")
        args.append(v)
    m = cls(*args)
    if cls is not AppendResp and cls is not VoteResp:  # the two without a shape rule
        _check_shape(m)
    return m


def _entries(t: str, v: Any) -> tuple[Entry, ...]:
    if not isinstance(v, list) or len(v) > MAX_ENTRIES:
        raise BadMessage(f"{t}: entries must be a list of at most {MAX_ENTRIES}")
    out = []
    for e in v:
        if not (isinstance(e, list) and len(e) == 3):
            raise BadMessage(f"{t}: an entry must be [term, index, data]")
        term, index, data = e
        if type(term) is not int or type(index) is not int or not (0 <= term <= INT_MAX and 0 < index <= INT_MAX):
            raise BadMessage(f"{t}: entry term/index out of range: {str(e)[:80]}")
        if data is not None and not isinstance(data, bytes):
            raise BadMessage(f"{t}: entry data must be bytes or null")
        out.append(Entry(term, index, data))
    return tuple(out)


def _check_shape(m: Message) -> None:
    """What every honest sender's message looks like, beyond the types (see the module rules)."""
    match m:
        case Append(term=term, prev_index=prev, prev_term=prev_term, entries=entries):
            if prev_term > term:
                raise BadMessage(f"append: prev_term {prev_term} above the message's term {term}")
            if prev == -1 and entries:
                raise BadMessage("append: a heartbeat (prev_index -1) carries no entries")
            last = prev_term
            for i, e in enumerate(entries):
                if e.index != prev + 1 + i:
                    raise BadMessage(f"append: entry {i} has index {e.index}, expected {prev + 1 + i}")
                if not last <= e.term <= term:
                    raise BadMessage(f"append: entry {e.index} has term {e.term} outside {last}..{term}")
                last = e.term
        case InstallSnapshot(term=term, snap_term=snap_term):
            if snap_term > term:
                raise BadMessage(f"snapshot: its term {snap_term} is above the message's term {term}")
        case VoteReq(term=term, last_term=last_term):
            if last_term > term:
                raise BadMessage(f"vote: last_term {last_term} above the term {term}")
        case _:
            pass
