"""sim_node.plain_copy: what unpacking the packed bytes would give, without the round trip.

For every message it accepts, the copy equals `decode(pack(msg))` with the same types all the way
down, in the same key order, and shares no mutable object with the original; everything else it
refuses (None), so the sim unpacks the bytes as before.
"""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from systems.runtime.sim_node import decode, encode_checked, plain_copy

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False), st.text(), st.binary(),
)
flat_maps = st.dictionaries(st.text(), st.one_of(scalars, st.just([])), max_size=12)
anything = st.recursive(
    scalars | st.tuples(scalars) | st.builds(bytearray, st.binary()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text() | st.integers(), inner, max_size=3),
    max_leaves=8,
)


def typed(v: object) -> object:
    """A value with every type spelled out, so equal-but-different-type values compare unequal."""
    if isinstance(v, dict):
        return ("dict", [(typed(k), typed(x)) for k, x in v.items()])
    if isinstance(v, list):
        return ("list", [typed(x) for x in v])
    return (type(v).__name__, v)


@settings(max_examples=200, deadline=None)
@given(flat_maps)
def test_a_flat_map_is_copied_exactly_as_unpacking_would(msg: dict) -> None:
    copy = plain_copy(msg)
    assert copy is not None
    assert typed(copy) == typed(decode(msgpack.packb(msg, use_bin_type=True)))
    assert copy is not msg
    assert all(copy[k] is not v for k, v in msg.items() if isinstance(v, list))  # fresh empty lists


@settings(max_examples=200, deadline=None)
@given(anything)
def test_whatever_it_copies_matches_the_round_trip(msg: object) -> None:
    try:
        unpacked = decode(msgpack.packb(msg, use_bin_type=True))
    except (TypeError, ValueError, OverflowError):
        return  # not a message: encode_checked refuses it before plain_copy matters
    copy = plain_copy(msg)
    if copy is not None:
        assert typed(copy) == typed(unpacked)


def test_it_refuses_what_unpacking_would_change() -> None:
    for msg in ({"a": (1, 2)}, {"a": [1]}, {"a": {}}, {1: "x"}, {"a": bytearray(b"x")}, [1, 2], "x", 3):
        assert plain_copy(msg) is None


def test_encode_checked_hands_out_an_unshared_equal_copy() -> None:
    msg = {"t": "append", "term": 3, "src": "n1", "entries": [], "data": b"x", "ok": True, "f": 0.5}
    payload, copy = encode_checked(msg, "send")
    assert payload == msgpack.packb(msg, use_bin_type=True)
    assert typed(copy) == typed(decode(payload)) and copy is not msg and copy["entries"] is not msg["entries"]
