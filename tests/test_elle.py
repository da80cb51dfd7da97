"""The Elle-like checker on hand-built histories: each anomaly class must be caught,
correct serial and concurrent histories must pass."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from typing import Any

import networkx as nx
import pytest

from checkers.elle import anomalies as A
from checkers.elle import check_list_append, check_rw_register, checker, render_html
from checkers.elle.explain import cycle_svg
from checkers.elle.history import realtime_order


class H:
    """A tiny history builder: ops get consecutive indexes in the order written."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def _op(self, p: Any, typ: str, value: Any) -> H:
        self.ops.append(
            {"index": len(self.ops), "time": len(self.ops), "process": p, "type": typ, "f": "txn", "value": value}
        )
        return self

    def invoke(self, p: Any, mops: list[list[Any]]) -> H:
        return self._op(p, "invoke", [[f, k, None if f == "r" else v] for f, k, v in mops])

    def ok(self, p: Any, mops: list[list[Any]]) -> H:
        return self._op(p, "ok", mops)

    def fail(self, p: Any, mops: list[list[Any]]) -> H:
        return self._op(p, "fail", mops)

    def info(self, p: Any, mops: list[list[Any]]) -> H:
        return self._op(p, "info", mops)

    def txn(self, p: Any, mops: list[list[Any]]) -> H:
        """Invoke and complete ok at once (serial)."""
        return self.invoke(p, mops).ok(p, mops)


def concurrent(*txns: list[list[Any]]) -> list[dict[str, Any]]:
    """All txns invoked before any completes (no real-time order between them), one process each."""
    h = H()
    for p, mops in enumerate(txns):
        h.invoke(p, mops)
    for p, mops in enumerate(txns):
        h.ok(p, mops)
    return h.ops


def types(result: dict[str, Any]) -> set[str]:
    return set(result["anomalies"])


# --- list-append: correct histories pass ------------------------------------------------------------


def test_serial_list_append_is_valid() -> None:
    h = H()
    h.txn(0, [["append", "x", 1], ["r", "x", [1]]])
    h.txn(1, [["r", "x", [1]], ["append", "y", 1], ["append", "x", 2]])
    h.txn(0, [["r", "x", [1, 2]], ["r", "y", [1]], ["r", "z", []]])
    h.txn(2, [["append", "z", 1], ["r", "z", [1]]])
    r = check_list_append(h.ops)
    assert r["valid"] is True, r
    assert r["anomalies"] == {} and r["not"] == []


def test_concurrent_correct_list_append_is_valid() -> None:
    # T1 reads x before T0's append took effect: fine, the two overlap.
    ops = concurrent([["append", "x", 1]], [["r", "x", []]], [["r", "x", [1]], ["append", "x", 2]])
    ops.append({"index": 6, "process": "nemesis", "type": "info", "f": "start-partition", "value": {}})
    assert check_list_append(ops)["valid"] is True


def test_info_txn_whose_append_was_seen_counts_as_committed() -> None:
    h = H()
    h.invoke(0, [["append", "x", 1]]).info(0, [["append", "x", 1]])
    h.txn(1, [["r", "x", [1]]])
    h.invoke(2, [["append", "x", 2]]).info(2, [["append", "x", 2]])  # never seen: fine
    r = check_list_append(h.ops)
    assert r["valid"] is True, r
    assert r["witness"]["txns"] == 2  # the reader and the seen info txn: the unseen one is left out of the proof


# --- list-append: every anomaly class is caught ----------------------------------------------------


def test_g0_write_cycle() -> None:
    r = check_list_append(
        concurrent(
            [["append", "x", 1], ["append", "y", 1]],
            [["append", "x", 2], ["append", "y", 2]],
            [["r", "x", [1, 2]], ["r", "y", [2, 1]]],
        )
    )
    assert r["valid"] is False
    assert "G0" in types(r)
    assert "read-uncommitted" in r["not"]


def test_g1a_aborted_read() -> None:
    h = H()
    h.invoke(0, [["append", "x", 1]]).fail(0, [["append", "x", 1]])
    h.txn(1, [["r", "x", [1]]])
    r = check_list_append(h.ops)
    assert r["valid"] is False and "G1a" in types(r)
    assert "read-committed" in r["not"] and "read-uncommitted" not in r["not"]


def test_g1b_intermediate_read() -> None:
    r = check_list_append(concurrent([["append", "x", 1], ["append", "x", 2]], [["r", "x", [1]]], [["r", "x", [1, 2]]]))
    assert r["valid"] is False and "G1b" in types(r)


def test_g1c_circular_information_flow() -> None:
    r = check_list_append(concurrent([["append", "x", 1], ["r", "y", [1]]], [["append", "y", 1], ["r", "x", [1]]]))
    assert types(r) == {"G1c"}
    ev = r["anomalies"]["G1c"][0]
    assert "T1 read T0's append of 1 to key 'x'" in ev["explanation"]
    assert [s["rel"] for s in ev["steps"]] == ["wr", "wr"]
    assert r["not"][0] == "read-committed"


def test_g_single_read_skew() -> None:
    # T1 sees T0's append to y but not its append to x.
    r = check_list_append(
        concurrent([["append", "x", 1], ["append", "y", 1]], [["r", "x", []], ["r", "y", [1]]], [["r", "x", [1]]])
    )
    assert "G-single-item" in types(r) and r["valid"] is False
    # Elle's boundary: the weakest models ruled out, then every stronger one.
    assert r["not"] == ["consistent-view", "repeatable-read"]
    assert "snapshot-isolation" in r["also_not"] and "read-committed" not in r["not"] + r["also_not"]


def test_g2_item_write_skew_is_allowed_by_snapshot_isolation() -> None:
    ops = concurrent(
        [["r", "x", []], ["append", "y", 1]],
        [["r", "y", []], ["append", "x", 1]],
        [["r", "x", [1]], ["r", "y", [1]]],
    )
    r = check_list_append(ops, consistency="serializable")
    assert r["valid"] is False and types(r) == {"G2-item"}
    ruled_out = r["not"] + r["also_not"]
    assert r["not"] == ["repeatable-read"] and "snapshot-isolation" not in ruled_out and "serializable" in ruled_out
    si = check_list_append(ops, consistency="snapshot-isolation")
    assert si["valid"] is True and types(si) == set() and set(si["other_anomalies"]) == {"G2-item"}
    assert "found only anomalies it allows: G2-item" in si["summary"]


def test_g_nonadjacent() -> None:
    # T0 -rw-> T1 -wr-> T2 -rw-> T3 -wr-> T0: two anti-dependencies, not adjacent.
    r = check_list_append(
        concurrent(
            [["r", "a", []], ["r", "d", [4]]],
            [["append", "a", 1], ["append", "b", 2]],
            [["r", "b", [2]], ["r", "c", []]],
            [["append", "c", 3], ["append", "d", 4]],
            [["r", "a", [1]], ["r", "c", [3]]],
        ),
        consistency="snapshot-isolation",
    )
    assert r["valid"] is False and "G-nonadjacent-item" in types(r)
    steps = r["anomalies"]["G-nonadjacent-item"][0]["steps"]
    assert sorted(s["rel"] for s in steps) == ["rw", "rw", "wr", "wr"]


def test_stale_read_is_g_single_realtime() -> None:
    h = H()
    h.txn(0, [["append", "x", 1]])
    h.txn(1, [["r", "x", []]])  # invoked after T0 completed, yet misses it
    h.txn(2, [["r", "x", [1]]])
    strict = check_list_append(h.ops)
    assert strict["valid"] is False and "G-single-item-realtime" in types(strict)
    (ev,) = strict["anomalies"]["G-single-item-realtime"]
    assert "completed (op 1) before T2 was invoked (op 2)" in ev["explanation"]
    assert check_list_append(h.ops, consistency="serializable")["valid"] is True


def test_session_stale_read_is_g_single_process() -> None:
    h = H()
    h.txn(0, [["append", "x", 1]])
    h.txn(0, [["r", "x", []]])
    h.txn(1, [["r", "x", [1]]])
    r = check_list_append(h.ops, consistency="strong-session-serializable")
    assert r["valid"] is False and "G-single-item-process" in types(r)
    assert check_list_append(h.ops, consistency="serializable")["valid"] is True


def test_internal_inconsistency() -> None:
    r = check_list_append(concurrent([["append", "x", 1], ["r", "x", []]]))
    assert r["valid"] is False and "internal" in types(r)
    r2 = check_list_append(
        concurrent([["r", "x", [5]], ["r", "x", [5, 6]]], [["append", "x", 5]], [["append", "x", 6]])
    )
    assert "internal" in types(r2)


def test_duplicate_appends() -> None:
    r = check_list_append(concurrent([["append", "x", 1]], [["r", "x", [1, 1]]]))
    assert r["valid"] is False and "duplicate-elements" in types(r)


def test_incompatible_order() -> None:
    r = check_list_append(
        concurrent([["append", "x", 1]], [["append", "x", 2]], [["r", "x", [1, 2]]], [["r", "x", [2, 1]]])
    )
    assert r["valid"] is False and "incompatible-order" in types(r)
    assert "neither is a prefix" in r["anomalies"]["incompatible-order"][0]["text"]


def test_garbage_read() -> None:
    r = check_list_append(concurrent([["append", "x", 1]], [["r", "x", [1, 99]]]))
    assert r["valid"] is False and "garbage-read" in types(r)


# --- rw-register ------------------------------------------------------------------------------------


def test_serial_rw_register_is_valid() -> None:
    h = H()
    h.txn(0, [["r", "x", None], ["w", "x", 1]])
    h.txn(1, [["r", "x", 1], ["w", "x", 2], ["r", "x", 2]])
    h.txn(0, [["r", "x", 2], ["r", "y", None]])
    r = check_rw_register(h.ops)
    assert r["valid"] is True, r
    assert check_rw_register(h.ops, linearizable_keys=True)["valid"] is True


def test_rw_register_g1c() -> None:
    r = check_rw_register(concurrent([["w", "x", 1], ["r", "y", 2]], [["w", "y", 2], ["r", "x", 1]]))
    assert r["valid"] is False and "G1c" in types(r)
    assert "read T0's write of 1 to key 'x'" in r["anomalies"]["G1c"][0]["explanation"]


def test_rw_register_write_skew() -> None:
    r = check_rw_register(
        concurrent([["r", "x", None], ["w", "y", 1]], [["r", "y", None], ["w", "x", 1]]), consistency="serializable"
    )
    assert r["valid"] is False and "G2-item" in types(r)


def test_rw_register_stale_read_realtime() -> None:
    h = H()
    h.txn(0, [["w", "x", 1]])
    h.txn(1, [["r", "x", None]])
    r = check_rw_register(h.ops)
    assert r["valid"] is False and "G-single-item-realtime" in types(r)


def test_rw_register_linearizable_keys_orders_writes_by_real_time() -> None:
    h = H()
    h.txn(0, [["w", "x", 1]])
    h.txn(1, [["w", "x", 2]])
    h.txn(2, [["r", "x", 1]])  # after x=2 was written and acknowledged
    # Without the assumption no version order names a cycle; but no order of the three respects real time and
    # replays the read, and with three txns the witness search tried them all: a proof, not a named cycle.
    plain = check_rw_register(h.ops)
    assert plain["valid"] is False and types(plain) == {"no-serial-order-realtime"}, plain
    assert check_rw_register(h.ops, consistency="serializable")["valid"] is True  # T0, T2, T1 would do
    # With it, real time orders 1 < 2 (T0 then T1) and 2 < 1 (T1 then T2's read): Elle's cyclic-versions.
    r = check_rw_register(h.ops, linearizable_keys=True)
    assert r["valid"] is False and types(r) == {"cyclic-versions"}
    (cv,) = r["anomalies"]["cyclic-versions"]
    assert sorted(cv["scc"]) == [1, 2] and cv["sources"] == ["initial-state", "linearizable-keys"]


def test_rw_register_cyclic_versions() -> None:
    r = check_rw_register(concurrent([["r", "x", 1], ["w", "x", 2]], [["r", "x", 2], ["w", "x", 1]]))
    assert r["valid"] is False and "cyclic-versions" in types(r)


def test_rw_register_g1a_g1b_internal_garbage() -> None:
    h = H()
    h.invoke(0, [["w", "x", 1]]).fail(0, [["w", "x", 1]])
    h.txn(1, [["r", "x", 1]])
    assert "G1a" in types(check_rw_register(h.ops))
    g1b = concurrent([["w", "x", 1], ["w", "x", 2]], [["r", "x", 1]])
    assert "G1b" in types(check_rw_register(g1b))
    internal = concurrent([["w", "x", 1], ["r", "x", 3]], [["w", "x", 3]])
    assert "internal" in types(check_rw_register(internal))
    garbage = concurrent([["r", "x", 42]])
    assert "garbage-read" in types(check_rw_register(garbage))
    for ops in (h.ops, g1b, internal, garbage):
        assert check_rw_register(ops)["valid"] is False


# --- verdicts, models and rendering -----------------------------------------------------------------


def test_empty_history_is_unknown_and_bad_model_raises() -> None:
    assert check_list_append([])["valid"] == "unknown"
    with pytest.raises(ValueError):
        check_list_append([], consistency="eventual-wishful-thinking")


def test_search_cut_short_still_proves_a_cycle_exists() -> None:
    # Write skew needs the cycle search; with no time at all it cannot name the cycle, but (as Elle) the
    # strongly connected component of rw edges alone proves repeatable read, hence serializability, broken.
    ops = concurrent(
        [["r", "x", []], ["append", "y", 1]], [["r", "y", []], ["append", "x", 1]], [["r", "x", [1]], ["r", "y", [1]]]
    )
    r = check_list_append(ops, time_limit_s=-1.0)
    assert r["stats"]["search_complete"] is False
    assert r["valid"] is False and r["anomaly_types"] == ["PL-2.99-cycle-exists", "cycle-search-timeout"]
    assert r["not"] == ["repeatable-read"]


def test_proof_cut_short_is_unknown_never_valid() -> None:
    h = H()
    h.txn(0, [["append", "x", 1]])
    h.txn(1, [["r", "x", [1]]])
    assert check_list_append(h.ops)["valid"] is True
    r = check_list_append(h.ops, time_limit_s=-1.0)
    assert r["valid"] == "unknown" and r["anomaly_types"] == ["witness-not-found"]
    assert "cut short" in r["summary"]


def test_cycle_type_and_models() -> None:
    assert A.cycle_type(["ww", "ww"]) == "G0"
    assert A.cycle_type(["ww", "wr"]) == "G1c"
    assert A.cycle_type(["rw", "wr", "realtime"]) == "G-single-item-realtime"
    assert A.cycle_type(["rw", "wr", "rw", "wr"]) == "G-nonadjacent-item"
    assert A.cycle_type(["rw", "rw", "wr"]) == "G2-item"
    assert A.cycle_type(["rw", "process"]) == "G-single-item-process"
    assert A.model("strong-serializable") == "strict-serializable"
    assert A.boundary({"G-single-item-realtime"}) == {"not": ["strong-snapshot-isolation"],
                                                       "also_not": ["strict-serializable"]}
    assert "G-single-item-realtime" in A.prohibited_by(["strict-serializable"])
    assert "G-single-item-realtime" not in A.prohibited_by(["serializable"])


def test_realtime_order_is_a_transitive_reduction_that_keeps_reachability() -> None:
    rng = random.Random(7)
    for _ in range(20):
        spans = []
        for tid in range(40):
            start = rng.uniform(0, 100)
            spans.append((start, start + rng.uniform(0.1, 15), tid))
        events = sorted([(s, 0, t) for s, _, t in spans] + [(e, 1, t) for _, e, t in spans])
        reduced = nx.DiGraph()
        reduced.add_nodes_from(range(40))
        realtime_order([(k, t) for _, k, t in events], reduced.add_edge)
        closure = nx.transitive_closure_dag(reduced)
        naive = {(a, b) for _, ea, a in spans for sb, _, b in spans if ea < sb}
        assert set(closure.edges) == naive
        assert reduced.number_of_edges() <= len(naive)


def test_render_html_draws_each_cycle_and_escapes() -> None:
    r = check_list_append(concurrent([["append", "<k>", 1], ["r", "y", [1]]], [["append", "y", 1], ["r", "<k>", [1]]]))
    html = render_html(r)
    assert html.count("<svg") == 1 and "</svg>" in html
    assert "<k>" not in html and "&lt;k&gt;" in html
    assert "<script" not in html and "<link" not in html
    ok = render_html(check_list_append(concurrent([["append", "x", 1]], [["r", "x", [1]]])))
    assert "<svg" not in ok and "consistent with strict-serializable" in ok


def test_results_are_json_and_diagrams_are_well_formed_xml() -> None:
    r = check_list_append(
        concurrent(
            [["r", "a", []], ["r", "d", [4]]],
            [["append", "a", 1], ["append", "b", 2]],
            [["r", "b", [2]], ["r", "c", []]],
            [["append", "c", 3], ["append", "d", 4]],
            [["r", "a", [1]], ["r", "c", [3]]],
        )
    )
    assert json.loads(json.dumps(r)) == json.loads(json.dumps(r, sort_keys=True))
    for ev in (e for evs in r["anomalies"].values() for e in evs if "steps" in e):
        root = ET.fromstring(cycle_svg(ev))
        assert root.tag.endswith("svg")
        assert len([c for c in root if c.tag.endswith("circle")]) == len(ev["steps"])


def test_malformed_history_is_unknown_not_a_crash() -> None:
    h = H().invoke(0, [["append", "x", 1]])
    h.ops.append({"index": 1, "process": 0, "type": "ok", "f": "txn", "value": None})
    r = check_list_append(h.ops)
    assert r["valid"] == "unknown" and "cannot check" in r["summary"] and "must be a list" in r["error"]


def test_checker_wrapper_fits_the_workload_protocol() -> None:
    check = checker("rw-register", consistency="serializable")
    ops = concurrent([["r", "x", None], ["w", "y", 1]], [["r", "y", None], ["w", "x", 1]])
    assert check(ops, {})["valid"] is False
    assert checker()(concurrent([["append", "x", 1]], [["r", "x", [1]]]), {})["valid"] is True


def test_rw_register_g0_from_writes_that_follow_reads() -> None:
    # Each txn read the other's write of one key before overwriting it: x 1 < 2 and y 2 < 1.
    r = check_rw_register(
        concurrent([["r", "y", 2], ["w", "x", 1], ["w", "y", 1]], [["r", "x", 1], ["w", "x", 2], ["w", "y", 2]])
    )
    assert r["valid"] is False and "G0" in types(r)
    assert "overwrote it with" in r["anomalies"]["G0"][0]["explanation"]


def test_rw_register_linearizable_keys_order_reads_too() -> None:
    # Nobody orders the blind writes of 1 and 2, but with linearizable keys three reads in real-time order do:
    # 1 < 2 (read-read), then 2 < 1 (read-read): the versions of x are cyclic.
    h = H()
    h.invoke(0, [["w", "x", 1]]).invoke(1, [["w", "x", 2]])
    h.ok(0, [["w", "x", 1]]).ok(1, [["w", "x", 2]])
    h.txn(2, [["r", "x", 1]]).txn(3, [["r", "x", 2]]).txn(4, [["r", "x", 1]])
    assert check_rw_register(h.ops, consistency="serializable")["valid"] is True
    r = check_rw_register(h.ops, consistency="serializable", linearizable_keys=True)
    assert r["valid"] is False and types(r) == {"cyclic-versions"}
    assert r["anomalies"]["cyclic-versions"][0]["sources"] == ["initial-state", "linearizable-keys"]
    # The same reads by one process, under the sequential-keys assumption.
    s = H()
    s.invoke(0, [["w", "x", 1]]).invoke(1, [["w", "x", 2]]).ok(0, [["w", "x", 1]]).ok(1, [["w", "x", 2]])
    s.txn(2, [["r", "x", 1]]).txn(2, [["r", "x", 2]]).txn(2, [["r", "x", 1]])
    r = check_rw_register(s.ops, consistency="serializable", sequential_keys=True)
    assert types(r) == {"cyclic-versions"} and r["anomalies"]["cyclic-versions"][0]["sources"][-1] == "sequential-keys"


def test_rw_register_initial_value_is_part_of_the_test() -> None:
    h = H()
    h.txn(0, [["r", "x", 0], ["w", "x", 1]])
    h.txn(1, [["r", "x", 1]])
    garbage = check_rw_register(h.ops)
    assert garbage["valid"] is False and types(garbage) == {"garbage-read"}  # x starts as null: 0 came from nowhere
    assert check_rw_register(h.ops, initial=0)["valid"] is True
    assert check_rw_register(h.ops, initial_by_key={"x": 0})["valid"] is True
    stale = H()
    stale.txn(0, [["w", "x", 1]])
    stale.txn(1, [["r", "x", 0]])
    r = check_rw_register(stale.ops, initial=0)
    assert r["valid"] is False and types(r) == {"G-single-item-realtime"}  # reading the initial value too late


def test_a_read_after_the_txns_own_read_and_append_must_show_both() -> None:
    # T read x = [1] (so it knows where x begins), appended 2: a later read must be exactly [1, 2]
    r = check_list_append(concurrent([["r", "x", [1]], ["append", "x", 2], ["r", "x", [3, 2]]],
                                     [["append", "x", 1]], [["append", "x", 3]]))
    assert r["valid"] is False and "internal" in types(r)
    evidence = r["anomalies"]["internal"][0]
    assert (evidence["key"], evidence["expected"], evidence["read"]) == ("x", [1, 2], [3, 2])
    assert evidence["mop"] == ["r", "x", [3, 2]] and evidence["op"]["index"] == 0
    right = check_list_append(concurrent([["r", "x", [1]], ["append", "x", 2], ["r", "x", [1, 2]]],
                                         [["append", "x", 1]]))
    assert "internal" not in types(right)


def test_a_future_read_is_reported_once_per_txn_with_what_was_read() -> None:
    # T saw 1 in x and 2 in y before appending them itself: Elle names the first such read of a txn
    r = check_list_append(concurrent([["r", "x", [1]], ["r", "y", [2]], ["append", "x", 1], ["append", "y", 2]]))
    assert r["valid"] is False
    [evidence] = r["anomalies"]["future-read"]
    assert (evidence["key"], evidence["element"], evidence["mop"]) == ("x", 1, ["r", "x", [1]])
    assert evidence["op"]["index"] == 0


def test_duplicates_are_counted_by_element_and_non_json_elements_by_their_repr() -> None:
    ints = check_list_append(concurrent([["append", "x", 1]], [["r", "x", [1, 1]]]))
    assert ints["anomalies"]["duplicate-elements"][0]["duplicates"] == {1: 2}
    tuples = check_list_append(concurrent([["append", "x", (1, 2)]], [["r", "x", [(1, 2), (1, 2)]]]))
    assert tuples["anomalies"]["duplicate-elements"][0]["duplicates"] == {"(1, 2)": 2}


# --- list-append: the evidence each anomaly shows (mutation testing: a renamed or dropped field is a bug) ---


def evidence(r: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The evidence of one anomaly class, without its text, ops given by index."""
    out = []
    for e in r["anomalies"][name]:
        e = {k: v for k, v in e.items() if k != "text"}
        for field in ("op", "writer"):
            if field in e:
                e[field] = e[field]["index"]
        out.append(e)
    return out


def test_a_txn_that_knows_a_keys_start_must_read_exactly_its_own_view_and_is_reported_once() -> None:
    # T read x = [1] and appended 2: [3, 1, 2] ends right but begins wrong; the later bad read is not reported again
    r = check_list_append(concurrent([["r", "x", [1]], ["append", "x", 2], ["r", "x", [3, 1, 2]], ["r", "x", [9]]],
                                     [["append", "x", 1]], [["append", "x", 3]]))
    assert evidence(r, "internal") == [
        {"op": 0, "mop": ["r", "x", [3, 1, 2]], "key": "x", "expected": [1, 2], "read": [3, 1, 2]}]


def test_a_txn_that_does_not_know_a_keys_start_expects_only_its_own_appends_at_the_end() -> None:
    r = check_list_append(concurrent([["append", "x", 2], ["r", "x", [3]]], [["append", "x", 3]]))
    assert evidence(r, "internal") == [
        {"op": 0, "mop": ["r", "x", [3]], "key": "x", "expected": ["...", 2], "read": [3]}]


def test_evidence_of_duplicates_aborted_and_garbage_reads() -> None:
    h = H()
    h.invoke(9, [["append", "x", 2]]).fail(9, [["append", "x", 2]])
    h.txn(0, [["append", "x", 1], ["append", "x", 3]])
    h.txn(1, [["r", "x", [1, 1, 2, 7]]])
    h.txn(2, [["r", "x", [1, 7]]])  # the same garbage element again: reported once
    r = check_list_append(h.ops)
    mop = ["r", "x", [1, 1, 2, 7]]
    assert evidence(r, "duplicate-elements") == [{"op": 4, "mop": mop, "key": "x", "duplicates": {1: 2}}]
    assert evidence(r, "G1a") == [{"op": 4, "mop": mop, "writer": 0, "key": "x", "element": 2}]
    assert evidence(r, "garbage-read") == [{"op": 4, "mop": mop, "key": "x", "element": 7}]


def test_evidence_of_an_intermediate_read_and_a_lost_update() -> None:
    g1b = check_list_append(concurrent([["append", "x", 1], ["append", "x", 2]], [["r", "x", [1]]]))
    assert evidence(g1b, "G1b") == [{"op": 1, "mop": ["r", "x", [1]], "writer": 0, "key": "x", "element": 1}]
    lost = check_list_append(concurrent([["r", "x", []], ["append", "x", 1]], [["r", "x", []], ["append", "x", 2]],
                                        [["r", "x", [1, 2]]]))
    assert [{**e, "txns": [t["index"] for t in e["txns"]]} for e in evidence(lost, "lost-update")] == [
        {"key": "x", "value": [], "txns": [0, 1]}]


def test_incompatible_orders_are_shown_shorter_first() -> None:
    r = check_list_append(concurrent([["append", "x", 1]], [["append", "x", 2]],
                                     [["r", "x", [2]]], [["r", "x", [1, 2]]]))
    assert evidence(r, "incompatible-order") == [{"key": "x", "values": [[2], [1, 2]]}]


def test_appending_a_value_twice_is_bad_input_naming_both_txns() -> None:
    for typ in ("ok", "fail"):
        h = H()
        for p in (0, 1):
            h.invoke(p, [["append", "x", 1]])._op(p, typ, [["append", "x", 1]])
        r = check_list_append(h.ops)
        assert r["valid"] == "unknown"
        assert r["summary"] == ("cannot check this history: value 1 appended to key 'x' by both T0 and T2: "
                                "appended values must be unique per key")


def test_a_dirty_update_shows_the_run_of_failed_and_unknown_appends_it_built_on() -> None:
    # x's order: 1 and 2 failed, 3 is info, 7 nobody wrote, then 4 committed
    h = H()
    for v in (1, 2):
        h.invoke(v, [["append", "x", v]]).fail(v, [["append", "x", v]])
    h.invoke(3, [["append", "x", 3]]).info(3, [["append", "x", 3]])
    h.txn(4, [["append", "x", 4]]).txn(5, [["r", "x", [1, 2, 3, 7, 4]]])
    r = check_list_append(h.ops)
    [e] = r["anomalies"]["dirty-update"]
    assert (e["key"], e["values"]) == ("x", [1, 2, 3, 7, 4])
    assert [e["txns"][0]["index"], e["txns"][1], e["txns"][2]["index"]] == [0, "...", 6]


def test_cycle_steps_explain_each_dependency_with_its_key_and_elements() -> None:
    # T1 read x ending in 1 and missed T2's append of 2 (rw), but read T2's append to z (wr); T0 < T2 (ww)
    r = check_list_append(concurrent([["append", "x", 1]], [["r", "x", [1]], ["r", "z", [1]]],
                                     [["append", "x", 2], ["append", "z", 1]], [["r", "x", [1, 2]]]))
    steps = {s["rel"]: s["why"] for c in r["anomalies"]["G-single-item"] for s in c["steps"]}
    assert steps == {"rw": ["x", 1, 2], "wr": ["z", 1]}
    g0 = check_list_append(concurrent([["append", "x", 1], ["append", "y", 1]],
                                      [["append", "x", 2], ["append", "y", 2]],
                                      [["r", "x", [1, 2]], ["r", "y", [2, 1]]]))
    whys = sorted(s["why"] for s in g0["anomalies"]["G0"][0]["steps"])
    assert whys == [["x", 1, 2], ["y", 2, 1]]
    fresh = check_list_append(concurrent([["r", "x", []], ["append", "x", 1]], [["r", "x", []], ["append", "x", 2]],
                                         [["r", "x", [1, 2]]]))
    assert sorted((s["why"] for s in fresh["anomalies"]["G-single-item"][0]["steps"]), key=str) == [
        ["x", 1, 2], ["x", None, 1]]

