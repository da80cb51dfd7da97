"""The report explains an invalid verdict in the system's own terms, and its charts can be read.

- The planted Raft stale read: the report names the node that served the rejected read, the term it
  led, the newer leader and since when, and the partition that isolated it, and every one of those
  facts agrees with the history.
- Every anomaly the Elle checker can name has a plain sentence, shown above its formal name; Elle's
  cycles are told with ops numbered as everywhere on the page.
- Charts: log-scale latency labels at 1-2-5 steps, throughput per second of the test proper (the
  final reads left out, quiet seconds at 0), one timeline row per client slot with the final reads
  folded into one row, evidence times in seconds.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from base.faults import fault_windows
from base.history import pairs, read_history
from base.spec import TestSpec
from checkers.elle.anomalies import CYCLE_TYPES
from harness import plain
from harness.explain import fault_words
from harness.report import render
from harness.report_charts import log_ticks, throughput
from harness.session import check, execute, prepare
from nemesis.catalog import VOCABULARY

S = 1_000_000_000


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


# -- the stale read, end to end ------------------------------------------------------------------------


STALE_READ = re.compile(
    r"op (\d+) \(process \d+\): read (r\d) → (\d+) at ([\d.]+) s, served by (n\d), which led term (\d+), "
    r"while (n\d) had led term (\d+) since ([\d.]+) s, during the partition ([\d.]+)–([\d.]+) s that isolated (n\d)\."
)


@pytest.mark.sim
def test_the_stale_read_report_names_the_node_its_term_and_the_partition(tmp_path: Path) -> None:
    # seed 2 is one of tests/test_raft_harness_bugs.py's stale-read seeds that the checker catches
    spec = TestSpec(system="raft", workload="register", nemesis=("leader-isolate",), backend="sim", node_count=5,
                    concurrency=5, time_limit_s=30.0, nemesis_interval_s=10.0, quiet_s=3.0, seed=2,
                    bugs=("stale-read",))
    spec = prepare(spec, tmp_path)
    execute(spec)
    results = check(spec.path)
    assert results["checkers"]["linearizable"]["valid"] is False
    page = (spec.path / "report.html").read_text()
    said = text_of(page[page.index("<h2>What went wrong</h2>"): page.index("<h2>Latency")])
    found = STALE_READ.findall(said)
    assert found, said[:2000]

    history = read_history(spec.path / "history.jsonl").ops
    by_index = {p.invoke["index"]: p for p in pairs(history)}
    windows = fault_windows(history, VOCABULARY)
    for op, key, value, at, server, term, newer, newer_term, since, p_from, p_to, isolated in found:
        p = by_index[int(op)]
        assert p.invoke["f"] == "read" and p.invoke["key"] == key and p.complete is not None
        assert p.complete["value"] == int(value) and abs(p.complete["time"] / S - float(at)) < 0.01
        # the node and its term are what that node said as it answered
        assert p.complete["raft"] == {"node": server, "term": int(term), "role": "leader"}
        assert isolated == server and int(newer_term) > int(term) and newer != server
        # the newer leader was reported by some completed op before the read completed
        assert any(q.complete is not None and q.complete.get("raft") == {"node": newer, "term": int(newer_term),
                                                                         "role": "leader"}
                   and q.complete["time"] / S <= float(since) + 0.005 for q in by_index.values())
        assert float(since) <= float(at)
        # the partition is a recorded fault that cut the server off from every other node, over the read
        w = next(w for w in windows if w.kind == "partition" and abs(w.start_s - float(p_from)) < 0.005)
        assert abs(w.end_s - float(p_to)) < 0.005 and w.start_s <= float(at) <= w.end_s
        assert all(w.cuts(server, m) or w.cuts(m, server) for m in spec.nodes if m != server)


# -- words -----------------------------------------------------------------------------------------------


def test_every_anomaly_elle_names_has_its_own_plain_sentence() -> None:
    non_cycle = ["G1a", "G1b", "internal", "duplicate-elements", "incompatible-order", "garbage-read",
                 "cyclic-versions",
                 "lost-update", "dirty-update", "future-read", "no-serial-order", "no-serial-order-process",
                 "no-serial-order-realtime"]
    names = [*non_cycle, *CYCLE_TYPES]
    neutral = plain.anomaly_sentence("no-such-anomaly").split(":")[0].replace("no-such-anomaly", "")
    for name in names:
        sentence = plain.anomaly_sentence(name)
        assert neutral not in sentence.replace(name, ""), name
        assert name not in sentence, f"{name}: the sentence should not lean on the formal name"


def test_fault_words_say_how_a_partition_touched_the_node() -> None:
    nodes = ["n1", "n2", "n3", "n4", "n5"]

    def part(groups: list[list[str]]) -> Any:
        grudge = {n: [m for g in groups if n not in g for m in g] for g in groups for n in g}
        return fault_windows([{"index": 0, "time": 1 * S, "process": "nemesis", "type": "info",
                               "f": "start-partition", "value": grudge},
                              {"index": 1, "time": 3 * S, "process": "nemesis", "type": "info",
                               "f": "stop-partition", "value": None}], VOCABULARY)[0]

    isolate = part([["n2"], ["n1", "n3", "n4", "n5"]])
    halves = part([["n1", "n2"], ["n3", "n4", "n5"]])
    assert fault_words(isolate, "n2", nodes) == "the partition 1.00–3.00 s that isolated n2"
    assert fault_words(halves, "n1", nodes) == "the partition 1.00–3.00 s that cut n1 n2 off from the majority"
    assert fault_words(halves, "n4", nodes) == "the partition 1.00–3.00 s that kept n4 on the majority side (n4 n3 n5)"


# -- Elle, rendered by the report ------------------------------------------------------------------------


def elle_history_and_result() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A stale read as Elle sees it: op 2 appends 1 to x; op 4 reads x empty after op 2 finished."""
    ops = [
        {"time": 1 * S, "process": 0, "type": "invoke", "f": "txn", "value": [["append", "x", 1]], "node": "n1"},
        {"time": 2 * S, "process": 0, "type": "ok", "f": "txn", "value": [["append", "x", 1]], "node": "n1",
         "raft": {"node": "n1", "term": 2, "role": "leader"}},
        {"time": 3 * S, "process": 1, "type": "invoke", "f": "txn", "value": [["r", "x", None]], "node": "n2"},
        {"time": 3 * S + 10**7, "process": 1, "type": "ok", "f": "txn", "value": [["r", "x", []]], "node": "n2",
         "raft": {"node": "n2", "term": 1, "role": "leader"}},
    ]
    history = [{"index": i, **op} for i, op in enumerate(ops)]
    cycle = {"type": "G-single-realtime", "cycle": [{"index": 2, "process": 1, "type": "ok", "value": [["r", "x", []]]},
                                                    {"index": 0, "process": 0, "type": "ok",
                                                     "value": [["append", "x", 1]]}],
             "steps": [{"from": "T2", "to": "T0", "rel": "rw", "why": ["x", None, 1], "text": "T2 < T0 because …"},
                       {"from": "T0", "to": "T2", "rel": "realtime", "why": [], "text": "T0 < T2 because …"}],
             "explanation": "Let T2 = …"}
    result = {"valid": False, "summary": "not strict-serializable: G-single-realtime (1)",
              "anomalies": {"G-single-realtime": [cycle]}, "anomaly_counts": {"G-single-realtime": 1},
              "not": ["strict-serializable"]}
    return history, result


def test_elle_anomalies_read_plainly_with_ops_numbered_one_way() -> None:
    history, result = elle_history_and_result()
    spec = TestSpec(system="raft", workload="list-append", nemesis=(), concurrency=2)
    page = render(spec, history, {"valid": False, "checkers": {"elle": result}})
    section = page[page.index("<h2>What went wrong</h2>"): page.index("<h2>Latency")]
    said = text_of(section)
    sentence = plain.anomaly_sentence("G-single-realtime")
    assert said.index(sentence) < said.index("G-single-realtime (1)")  # the plain sentence comes first
    assert "op 2 → op 0 (rw): op 2 read x without op 0's append of 1 (it saw an empty list)" in said
    assert "op 0 had finished (at 2.00 s) before op 2 started (at 3.00 s)" in said
    assert "served by n2, which led term 1, while n1 had led term 2 since 2.00 s" in said
    assert not re.search(r"\bT\d+\b", said), "Elle's own txn names leaked into the report"


# -- charts ------------------------------------------------------------------------------------------------


def test_log_ticks_are_1_2_5_steps_bracketing_the_data_or_decades_when_wide() -> None:
    assert log_ticks(1.06, 40.0) == [1, 2, 5, 10, 20, 50]
    assert log_ticks(0.6, 1664.0) == [0.1, 1, 10, 100, 1000, 10000]
    assert log_ticks(3.0, 3.0) == [2, 5]


def test_throughput_leaves_out_the_final_reads_and_counts_quiet_seconds_as_zero() -> None:
    ops = []
    for i, t in enumerate([0.2, 0.5, 0.7, 3.1]):
        ops += [{"time": round(t * S), "process": 0, "type": "invoke", "f": "read", "value": None},
                {"time": round(t * S) + 1000, "process": 0, "type": "ok", "f": "read", "value": i}]
    ops += [{"time": 9 * S, "process": 7, "type": "invoke", "f": "read", "value": None, "final": True},
            {"time": 9 * S + 10, "process": 7, "type": "ok", "f": "read", "value": 3, "final": True}]
    rates = throughput(pairs(ops), 5)
    assert rates["ok"] == [3, 0, 0, 1, 0]


def test_the_timeline_has_a_row_per_client_slot_and_one_for_the_final_reads() -> None:
    ops = []
    t = 0

    def op(process: int, outcome: str, **extra: Any) -> None:
        nonlocal t
        ops.append({"time": t, "process": process, "type": "invoke", "f": "read", "value": None, **extra})
        ops.append({"time": t + 5, "process": process, "type": outcome, "f": "read", "value": 1, **extra})
        t += 10**8

    op(0, "info")  # p0 retires ...
    op(2, "ok")  # ... and slot 0 carries on as p2 (concurrency 2)
    op(1, "ok")
    for p in (3, 4, 5):
        op(p, "ok", final=True)
    history = [{"index": i, **o} for i, o in enumerate(ops)]
    page = render(TestSpec(system="echo", workload="echo", nemesis=(), concurrency=2), history,
                  {"valid": True, "checkers": {}})
    timeline = page[page.index("<h2>Operations per client</h2>"):]
    labels = re.findall(r'<text x="2" y="[\d.]+">([^<]*)</text>', timeline)
    assert labels == ["p0, p2", "p1", "final reads"]
    assert "op 0 (process 0" in html.unescape(timeline) and " s</title>" in timeline


def test_evidence_times_are_seconds() -> None:
    page = render(TestSpec(system="echo", workload="echo", nemesis=()), [],
                  {"valid": False, "checkers": {"x": {"valid": False, "summary": "s",
                                                      "stuck": [{"index": 4, "time": 21668612489}]}}})
    assert "21.669 s" in page and "21668612489" not in page


def test_a_kv_op_is_told_with_its_coordinators_ring_view_and_quorum() -> None:
    from systems.kv.client import Ring
    from workloads.kv_account import account

    members = ["n1", "n2", "n4", "n5"]
    ops = [
        {"time": 1 * S, "process": 0, "type": "invoke", "f": "ring", "value": None, "node": "n3"},
        {"time": 1 * S + 10, "process": 0, "type": "ok", "f": "ring", "node": "n3",
         "value": {"node": "n3", "members": members, "n": 3, "vnodes": 16}},
        {"time": 2 * S, "process": 0, "type": "invoke", "f": "read", "key": "reg1", "value": None, "node": "n3"},
        {"time": 2 * S + 10, "process": 0, "type": "ok", "f": "read", "key": "reg1", "value": 4, "node": "n3",
         "quorum": "sloppy"},
        {"time": 3 * S, "process": 1, "type": "invoke", "f": "read", "key": "reg1", "value": None, "node": "n1"},
        {"time": 3 * S + 10, "process": 1, "type": "ok", "f": "read", "key": "reg1", "value": 4, "node": "n1",
         "quorum": "strict"},
    ]
    history = [{"index": i, **o} for i, o in enumerate(ops)]
    test = {"nodes": ["n1", "n2", "n3", "n4", "n5"], "options": {"vnodes": 16}}
    told = account(history, test)
    replicas = " ".join(Ring.of(members, 16).preference_list("reg1", 3))
    node, text = told.describe(history[2], history[3])
    assert node == "n3"
    assert text == (f"coordinated by n3, whose ring view (as it reported at 1.00 s) had members n1 n2 n4 n5, "
                    f"which makes {replicas} the replicas of reg1; answered by a sloppy quorum (stand-ins for "
                    "replicas it could not reach)")
    initial = " ".join(Ring.of(test["nodes"], 16).preference_list("reg1", 3))
    assert told.describe(history[4], history[5])[1] == (
        f"coordinated by n1, under the initial ring of n1 n2 n3 n4 n5, which makes {initial} the replicas of reg1; "
        "answered by a strict quorum of those replicas")
