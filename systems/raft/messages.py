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

from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from operator import attrgetter
from typing import Any, NoReturn

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


def _slot_init(cls: type) -> None:
    """Give a frozen slotted message class an __init__ that fills its slots through their setters.

    dataclass's __init__ for a frozen class sets each field with object.__setattr__ (a lookup by
    name per field); this one calls each slot's own setter: the same signature (fields in order,
    the same defaults, positional or keyword), the same object. Messages are built on every send
    and every receive, so it counts.
    """
    params, body, scope = [], [], {}
    for f in fields(cls):
        assert f.default_factory is MISSING, f"{cls.__name__}.{f.name}: a factory default is not supported here"
        params.append(f.name if f.default is MISSING else f"{f.name}={f.default!r}")
        body.append(f"    _set_{f.name}(self, {f.name})\n")
        scope[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
    exec(f"def __init__(self, {', '.join(params)}):\n" + "".join(body), scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]


for _cls in (VoteReq, VoteResp, Append, AppendResp, InstallSnapshot):
    _slot_init(_cls)

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
    names, values = _GETTERS[cls]
    out.update(zip(names, values(m), strict=True))  # every field, in declaration order
    if cls is Append:
        out["entries"] = [[e.term, e.index, e.data] for e in m.entries]  # Entry.to_wire, inlined
    return out


_GETTERS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {
    cls: (tuple(name for name, _ in fs), attrgetter(*(name for name, _ in fs))) for cls, fs in _FIELDS.items()
}
"""Per message class: its field names in declaration order, and a getter of their values (one C call)."""

_GOOD_IDS: set[str] = set()
"""Node ids check_node_id accepted (a pure check, so its answer is remembered; bounded)."""
_MISSING: Any = object()


def from_wire(w: Any) -> Message:
    if not isinstance(w, dict):
        raise BadMessage(f"not a raft message: {str(w)[:80]}")
    t = w.get("t")
    decode = _DECODERS.get(t) if isinstance(t, str) else None
    if decode is None:
        raise BadMessage(f"not a raft message: {str(w)[:80]}")
    return decode(w, t)


def _bad(t: str, name: str, v: Any, kind: int) -> NoReturn:
    """Raise what from_wire says about field `name` holding `v` (_MISSING: absent), which failed its check."""
    if v is _MISSING:
        raise BadMessage(f"{t}: missing {name}")
    if kind == _INT:
        raise BadMessage(f"{t}: {name} must be an int in 0..{INT_MAX}, got {str(v)[:40]}")
    if kind == _INT_OR_NONE:
        raise BadMessage(f"{t}: {name} must be an int in -1..{INT_MAX}, got {str(v)[:40]}")
    if kind == _BYTES:
        raise BadMessage(f"{t}: data must be bytes")
    raise BadMessage(f"{t}: {name} must be a bool")


def _node_id(t: str, name: str, v: Any) -> str:
    if v is _MISSING:
        raise BadMessage(f"{t}: missing {name}")
    try:
        check_node_id(v)
    except ValueError as e:
        raise BadMessage(f"{t}: {name}: {e}") from None
    if len(_GOOD_IDS) < 4096:
        _GOOD_IDS.add(v)
    return v


def _field_check(name: str, kind: int, optional: Any) -> list[str]:
    """Source lines that read field `name` of `w` into the local `name` and check it (see from_wire)."""
    get = f"{name} = w.get({name!r}, _MISSING)" if optional is _MISSING else f"{name} = w.get({name!r}, {optional!r})"
    test = {
        _INT: f"type({name}) is not int or not 0 <= {name} <= INT_MAX",
        _INT_OR_NONE: f"type({name}) is not int or not -1 <= {name} <= INT_MAX",
        _BYTES: f"not isinstance({name}, bytes)",
        _BOOL: f"type({name}) is not bool",
    }
    if kind == _STR:
        return [get, f"if type({name}) is not str or {name} not in _GOOD_IDS:",
                f"    {name} = _node_id(t, {name!r}, {name})"]
    if kind == _ENTRIES:
        return [get, f"if {name} is _MISSING:", f"    _bad(t, {name!r}, {name}, {kind})",
                f"{name} = _entries(t, {name})"]
    return [get, f"if {test[kind]}:", f"    _bad(t, {name!r}, {name}, {kind})"]


def _decoder(cls: type) -> Callable[[dict[str, Any], str], Message]:
    """from_wire for one class as straight-line code, built once from _FIELDS (as dataclasses builds
    __init__): each field read and checked in declaration order, so the first bad one is the one
    reported; an absent optional field takes its default (which passes its check)."""
    defaults = {f.name: f.default for f in fields(cls)}
    body = []
    for name, kind in _FIELDS[cls]:
        body += _field_check(name, kind, defaults[name] if name in _OPTIONAL else _MISSING)
    names = ", ".join(name for name, _ in _FIELDS[cls])
    body.append(f"m = cls({names})")
    if cls in (Append, InstallSnapshot, VoteReq):  # the classes with a shape rule
        body.append("_check_shape(m)")
    body.append("return m")
    source = "def decode(w, t):\n" + "".join(f"    {line}\n" for line in body)
    scope: dict[str, Any] = {
        "cls": cls, "_MISSING": _MISSING, "INT_MAX": INT_MAX, "_GOOD_IDS": _GOOD_IDS, "_node_id": _node_id,
        "_bad": _bad, "_entries": _entries, "_check_shape": _check_shape,
    }
    exec(source, scope)
    return scope["decode"]


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


_DECODERS: dict[str, Callable[[dict[str, Any], str], Message]] = {t: _decoder(cls) for t, cls in _KINDS.items()}
"""from_wire's checks for each kind of message, built once."""
