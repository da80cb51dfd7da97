"""The checkers' reference ring agrees with the KV store's ring, and catches a node placing keys wrongly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from checkers import kv_convergence
from checkers.ring_reference import ReferenceRing
from systems.kv.ring import Ring
from tests.test_kv_checkers import convergence_history, dump_value

FIVE = ["n1", "n2", "n3", "n4", "n5"]
KEYS = {f"k{i}": [["n1", 2]] for i in range(12)}

node_sets = st.lists(st.sampled_from([f"n{i}" for i in range(1, 9)]), min_size=1, max_size=6, unique=True)


@settings(max_examples=60, deadline=None)
@given(nodes=node_sets, vnodes=st.integers(1, 24), n=st.integers(1, 4), keys=st.lists(st.text(max_size=6), max_size=8))
def test_reference_ring_places_keys_as_the_system_documents(nodes, vnodes, n, keys) -> None:
    system, reference = Ring.of(nodes, vnodes), ReferenceRing(nodes, vnodes)
    for key in keys:
        assert reference.preference_list(key, n) == system.preference_list(key, n)
    ref_shares, sys_shares = reference.shares(), system.shares()
    assert ref_shares.keys() == sys_shares.keys()
    assert all(abs(ref_shares[k] - sys_shares[k]) < 1e-12 for k in ref_shares)


def test_convergence_rejects_a_node_that_places_a_key_off_the_ring() -> None:
    dumps = {n: dump_value(n, {"k": [["n1", 2]]}, members=FIVE) for n in FIVE}
    wrong = next(n for n in FIVE if n not in dumps["n1"]["keys"]["k"]["pref"])
    dumps["n1"]["keys"]["k"]["pref"] = [wrong, *dumps["n1"]["keys"]["k"]["pref"][1:]]
    r = kv_convergence.check(convergence_history(dumps), {})
    assert r["valid"] is False
    assert r["misplaced"][0]["node"] == "n1" and r["misplaced"][0]["key"] == "k"


def test_vnodes_come_from_the_test_when_the_dumps_omit_them() -> None:
    dumps = {n: dump_value(n, KEYS, members=FIVE) for n in FIVE}
    for d in dumps.values():
        del d["vnodes"]
    assert kv_convergence.check(convergence_history(dumps), {"options": {"vnodes": 8}})["valid"] is True
    # With the wrong vnode count the reported preference lists no longer match the reference ring.
    assert kv_convergence.check(convergence_history(dumps), {"options": {"vnodes": 128}})["valid"] is False
