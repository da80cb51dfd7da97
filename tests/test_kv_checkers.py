"""The KV checkers accept good histories and reject each bad case they exist for."""

from __future__ import annotations

from typing import Any

import pytest

from checkers import kv_convergence, kv_set
from systems.kv.ring import Ring
from workloads.kv import check_lww_register

NODES = ["n1", "n2", "n3"]


class H:
    """A tiny history builder: each op gets the next index and a time 1 ms later."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def op(self, process: Any, type_: str, f: str, key: Any = None, value: Any = None, **extra: Any) -> None:
        op = {"index": len(self.ops), "time": len(self.ops) * 1_000_000, "process": process, "type": type_, "f": f}
        if key is not None:
            op["key"] = key
        op["value"] = value
        op.update(extra)
        self.ops.append(op)

    def add(self, p: int, key: str, e: int, outcome: str = "ok", quorum: str = "strict") -> None:
        self.op(p, "invoke", "add", key, e, node="n1")
        extra = {"quorum": quorum} if outcome == "ok" else {}
        self.op(p, outcome, "add", key, e, node="n1", **extra)

    def read(self, p: int, key: str, got: list[int], *, final: bool = False, quorum: str = "strict", node="n1"):
        flag = {"final": True} if final else {}
        self.op(p, "invoke", "read", key, None, node=node, **flag)
        self.op(p, "ok", "read", key, got, node=node, quorum=quorum, **flag)

    def dump(self, p: int, node: str, value: dict[str, Any] | None) -> None:
        self.op(p, "invoke", "dump", None, None, node=node, final=True)
        if value is None:
            self.op(p, "fail", "dump", None, None, node=node, final=True, error="timeout")
        else:
            self.op(p, "ok", "dump", None, value, node=node, final=True)


# -- set ---------------------------------------------------------------------------------------


def good_set_history() -> H:
    h = H()
    h.add(0, "s", 1)
    h.add(1, "s", 2, outcome="info")
    h.add(0, "s", 3, outcome="fail")
    h.read(0, "s", [1, 2])
    for i, n in enumerate(NODES):
        h.read(10 + i, "s", [1, 2], final=True, node=n)
    return h


def test_set_valid_history() -> None:
    r = kv_set.check(good_set_history().ops, {})
    assert r["valid"] is True, r
    assert r["acknowledged"] == 1 and r["recovered"] == 1 and r["stale_reads"] == 0
    assert r["stable_latency_s"]["count"] == 1
    assert [(x["key"], x["element"]) for x in r["stable"]] == [("s", 1)]
    assert "<svg" in kv_set.render_html(r)


def test_set_rejects_a_lost_acknowledged_add() -> None:
    h = H()
    h.add(0, "s", 1)
    h.add(0, "s", 2)
    for i, n in enumerate(NODES):
        h.read(10 + i, "s", [1], final=True, node=n)
    r = kv_set.check(h.ops, {})
    assert r["valid"] is False
    assert [x["element"] for x in r["lost"]] == [2]
    assert "1 acknowledged adds lost" in r["summary"]


def test_set_rejects_an_add_missing_from_one_final_read() -> None:
    h = H()
    h.add(0, "s", 1)
    h.read(10, "s", [1], final=True, node="n1")
    h.read(11, "s", [], final=True, node="n2")
    r = kv_set.check(h.ops, {})
    assert r["valid"] is False
    assert r["not_converged"] == [{"key": "s", "element": 1, "missing_on": ["n2"]}]


@pytest.mark.parametrize("phantom", [99, 3])  # 99 never attempted; 3's add failed
def test_set_rejects_reading_what_was_never_added(phantom: int) -> None:
    h = good_set_history()
    h.read(5, "s", [1, 2, phantom])
    r = kv_set.check(h.ops, {})
    assert r["valid"] is False
    assert r["unexpected"][0]["element"] == phantom


def test_set_counts_sloppy_stale_reads_but_rejects_strict_quorum_violations() -> None:
    h = H()
    h.add(0, "s", 1, quorum="sloppy")
    h.add(0, "s", 2, quorum="strict")
    h.read(1, "s", [2], quorum="strict")  # misses a sloppy add: allowed
    h.read(1, "s", [1], quorum="sloppy")  # a sloppy read misses a strict add: allowed
    h.read(10, "s", [1, 2], final=True)
    r = kv_set.check(h.ops, {})
    assert r["valid"] is True and r["stale_reads"] == 2, r
    h.read(1, "s", [1], quorum="strict")  # strict read misses a strict add acked before it began
    r = kv_set.check(h.ops, {})
    assert r["valid"] is False
    assert r["quorum_violation_count"] == 1 and r["quorum_violations"][0]["element"] == 2


def test_set_without_final_reads_is_unknown() -> None:
    h = H()
    h.add(0, "s", 1)
    assert kv_set.check(h.ops, {})["valid"] == "unknown"


# -- convergence and load ----------------------------------------------------------------------


def dump_value(node: str, keys: dict[str, list[list[Any]]], *, members=None, held=None) -> dict[str, Any]:
    members = members or NODES
    ring = Ring.of(members, 8)
    out = {}
    for key, dots in keys.items():
        clock: dict[str, int] = {}
        for n, c in dots:
            clock[n] = max(clock.get(n, 0), c)
        out[key] = {"dots": dots, "values": [f"v{c}" for _, c in dots], "clock": clock,
                    "pref": ring.preference_list(key, 3)}
    return {"node": node, "members": members, "vnodes": 8, "n": 3, "keys": out, "held": held or {}, "hints": 0}


def convergence_history(per_node: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    h = H()
    for i, (node, value) in enumerate(per_node.items()):
        h.dump(20 + i, node, value)
    return h.ops


def test_convergence_valid_when_every_replica_agrees() -> None:
    same = {"k": [["n1", 2], ["n2", 1]]}
    r = kv_convergence.check(convergence_history({n: dump_value(n, same) for n in NODES}), {})
    assert r["valid"] is True, r


def test_convergence_rejects_divergent_replicas() -> None:
    dumps = {n: dump_value(n, {"k": [["n1", 2]]}) for n in NODES}
    dumps["n3"] = dump_value("n3", {"k": [["n1", 1]]})
    r = kv_convergence.check(convergence_history(dumps), {})
    assert r["valid"] is False
    assert r["divergent"][0]["key"] == "k"


def test_convergence_rejects_a_replica_missing_the_key() -> None:
    dumps = {n: dump_value(n, {"k": [["n1", 2]]}) for n in NODES}
    dumps["n2"] = dump_value("n2", {})
    assert kv_convergence.check(convergence_history(dumps), {})["valid"] is False


def test_convergence_rejects_disagreeing_rings() -> None:
    dumps = {n: dump_value(n, {}) for n in NODES}
    dumps["n3"] = dump_value("n3", {}, members=["n1", "n3"])
    r = kv_convergence.check(convergence_history(dumps), {})
    assert r["valid"] is False and "disagree" in r["summary"]


def test_convergence_rejects_undelivered_hinted_writes() -> None:
    dumps = {n: dump_value(n, {"k": [["n1", 2]]}) for n in NODES}
    dumps["n2"] = dump_value("n2", {"k": [["n1", 2]]}, held={"k": [["n2", 7]]})
    r = kv_convergence.check(convergence_history(dumps), {})
    assert r["valid"] is False
    assert r["undelivered"][0]["dot"] == ["n2", 7]
    # Superseded is as good as delivered: a clock covering the held dot is fine.
    dumps = {n: dump_value(n, {"k": [["n2", 9]]}) for n in NODES}
    dumps["n2"] = dump_value("n2", {"k": [["n2", 9]]}, held={"k": [["n2", 7]]})
    assert kv_convergence.check(convergence_history(dumps), {})["valid"] is True


def test_convergence_unknown_without_dumps_or_with_a_failed_one() -> None:
    assert kv_convergence.check([], {})["valid"] == "unknown"
    dumps: dict[str, Any] = {n: dump_value(n, {}) for n in NODES}
    dumps["n3"] = None
    assert kv_convergence.check(convergence_history(dumps), {})["valid"] == "unknown"


def test_convergence_counts_an_ok_dump_without_a_report_as_failed() -> None:
    """Only an ok completion carrying a report (a dict) is a dump; an ok one with an error text is a failed dump."""
    dumps = {n: dump_value(n, {"k": [["n1", 1]]}) for n in NODES}
    h = convergence_history(dumps)
    h[-1]["value"] = "node shutting down"
    r = kv_convergence.check(h, {})
    assert r["valid"] == "unknown" and r["failed_dumps"] == ["n3"]


def test_convergence_reads_a_dump_without_its_optional_fields_as_empty() -> None:
    """A report without members, keys or hints holds none: a node without keys lacks every key, one without
    members disagrees on the ring. Never a crash."""
    dumps = {n: dump_value(n, {"k": [["n1", 1]]}) for n in NODES}
    del dumps["n2"]["keys"], dumps["n2"]["hints"]
    dumps["n2"]["held"] = {"k": [["n1", 1]]}
    r = kv_convergence.check(convergence_history(dumps), {})
    assert r["valid"] is False and [d["key"] for d in r["divergent"]] == ["k"]
    assert r["undelivered"] == [{"key": "k", "dot": ["n1", 1], "held_by": "n2", "missing_on": ["n2"]}]
    del dumps["n3"]["members"]
    r = kv_convergence.check(convergence_history(dumps), {})
    assert r["members"] == ["n1", "n2", "n3"] and sorted(r["ring_views"]) == [[], ["n1", "n2", "n3"]]
    assert kv_convergence.check_load(convergence_history(dumps), {})["shares"].keys() == {"n1", "n2", "n3"}


def test_a_held_write_is_delivered_when_the_replicas_clocks_reach_its_counter_exactly() -> None:
    dumps = {n: dump_value(n, {"k": [["n2", 7]]}) for n in NODES}
    dumps["n2"] = dump_value("n2", {"k": [["n2", 7]]}, held={"k": [["n2", 7]]})
    assert kv_convergence.check(convergence_history(dumps), {})["valid"] is True
    dumps["n1"] = dump_value("n1", {"k": [["n2", 6]]})
    r = kv_convergence.check(convergence_history(dumps), {})
    assert r["undelivered"] == [{"key": "k", "dot": ["n2", 7], "held_by": "n2", "missing_on": ["n1"]}]
    assert r["summary"].startswith("1 of 1 keys differ")


@pytest.mark.parametrize(("reported", "configured", "used"), [(1, 8, 1), (0, 8, 8), (None, 1, 1), ("8", 4, 4)])
def test_vnodes_come_from_the_dumps_else_from_the_test(reported: Any, configured: Any, used: int) -> None:
    dumps = {n: {**dump_value(n, {}), "vnodes": reported} for n in NODES}
    assert kv_convergence.check_load(convergence_history(dumps), {"options": {"vnodes": configured}})["vnodes"] == used


@pytest.mark.parametrize("configured", [None, 0, "8"])
def test_vnodes_said_nowhere_is_one_clear_error(configured: Any) -> None:
    dumps = {n: {**dump_value(n, {}), "vnodes": 0} for n in NODES}
    test = {"options": {"vnodes": configured}} if configured is not None else {}
    with pytest.raises(ValueError) as e:
        kv_convergence.check(convergence_history(dumps), test)
    assert str(e.value) == "the nodes' dumps do not say how many vnodes they use, and neither does the test"


def test_load_of_nodes_that_report_no_members() -> None:
    dumps = {n: {**dump_value(n, {}), "members": []} for n in NODES}
    r = kv_convergence.check_load(convergence_history(dumps), {})
    assert (r["shares"], r["share_ideal"]) == ({}, None)
    assert r["summary"] == "0 members x 8 vnodes: hash-space share std dev 0.0000 (ideal share None); largest - 0.000"


def test_convergence_summary_names_every_failed_dump_and_pending_hint() -> None:
    dumps: dict[str, Any] = {n: {**dump_value(n, {}), "hints": 2} for n in NODES}
    dumps["n3"] = None
    dumps["n4"] = None
    r = kv_convergence.check(convergence_history(dumps), {})
    assert r["summary"] == ("all replicas of 0 keys hold the same siblings; no final dump from n3, n4; "
                            "hints still pending on n1, n2")
    dumps = {n: dump_value(n, {"k": [["n1", 2]]}) for n in NODES}
    dumps["n2"] = dump_value("n2", {"k": [["n1", 2]]}, held={"k": [["n2", 7]]})
    r = kv_convergence.check(convergence_history(dumps), {})
    assert r["summary"] == ("1 writes held by stand-ins never reached their key's replicas "
                            "(hinted handoff did not deliver)")


def test_load_reports_shares_and_spread() -> None:
    dumps = {n: dump_value(n, {"k": [["n1", 1]]}) for n in NODES}
    r = kv_convergence.check_load(convergence_history(dumps), {})
    assert r["valid"] is True
    assert abs(sum(r["shares"].values()) - 1.0) < 1e-3
    assert r["keys_per_node"] == {"n1": 1, "n2": 1, "n3": 1}
    assert r["share_std_dev"] >= 0
    assert "<svg" in kv_convergence.render_html(r)


# -- the LWW register ----------------------------------------------------------------------------


def test_lww_register_non_linearizable_history_is_the_expected_weakness() -> None:
    h = H()
    h.op(0, "invoke", "write", "r", 1)
    h.op(0, "ok", "write", "r", 1)
    h.op(1, "invoke", "write", "r", 2)
    h.op(1, "ok", "write", "r", 2)
    h.op(0, "invoke", "read", "r", None)
    h.op(0, "ok", "read", "r", 1)  # a stale read after 2 was acknowledged
    r = check_lww_register(h.ops, {})
    assert r["valid"] is False
    assert r["expected"] is False  # the verdict that counts as behaving as designed
    assert "documented weakness" in r["summary"]


def test_lww_register_linearizable_history_is_valid() -> None:
    h = H()
    h.op(0, "invoke", "write", "r", 1)
    h.op(0, "ok", "write", "r", 1)
    h.op(0, "invoke", "read", "r", None)
    h.op(0, "ok", "read", "r", 1)
    assert check_lww_register(h.ops, {})["valid"] is True


def test_set_allows_strict_stale_reads_when_quorums_need_not_overlap() -> None:
    h = H()
    h.add(0, "s", 1)
    h.read(1, "s", [], quorum="strict")
    h.read(10, "s", [1], final=True)
    assert kv_set.check(h.ops, {})["valid"] is False
    r = kv_set.check(h.ops, {"options": {"n": 3, "r": 1, "w": 1}})
    assert r["valid"] is True and r["quorum_violation_count"] == 1
