"""The heartbeat checker's rules at their edges: each fault kind excuses a false death while it lasts
plus the settling time, and not a moment later; bounds come from the test options; the first
`recognise_s` of a test excuse everything; a node named by the test but never an observer is still
judged as a subject. Each case is a pair: the history it must accept and the one it must reject.

Written against the module docstring's rules (issue 20's mutants in fault windows, `running_since`,
the bounds and the node list), through `check` only (with the nemesis vocabulary), so they hold
whatever way the faults are read.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_heartbeat_checker import KILL, NODES, TEST, build, check, good_inc, good_status, n3_down

FAULTS = {
    "cable": ([(12.0, "link-down", ["n2"]), (14.0, "link-up", ["n2"])], ("n1", "n2")),
    "cable of the observer": ([(12.0, "link-down", ["n1"]), (14.0, "link-up", ["n1"])], ("n1", "n2")),
    "switch": ([(12.0, "switch-off", None), (14.0, "switch-on", None)], ("n1", "n2")),
    "faulty link": ([(12.0, "start-links", [{"src": "n2", "dst": "n1", "drop": 1.0}]), (14.0, "stop-links", None)],
                    ("n1", "n2")),
    "partition": ([(12.0, "start-partition", {"n1": ["n2"]}), (14.0, "stop-partition", None)], ("n1", "n2")),
    "paused observer": ([(12.0, "pause", ["n1"]), (14.0, "resume", ["n1"])], ("n1", "n2")),
}


def dead_between(pair: tuple[str, str], start: float, end: float):
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if (o, s) == pair and start <= t < end:
            return ("dead", 1)
        return good_status(o, s, t)

    return status


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_excuses_a_false_death_until_the_settling_time_after_it(fault: str) -> None:
    nemesis, pair = FAULTS[fault]
    paused_observer = fault == "paused observer"
    down = (lambda n, t: n3_down(n, t) or (n == "n1" and 12.0 <= t < 14.0)) if paused_observer else n3_down
    ok = build([*KILL, *nemesis], dead_between(pair, 12.5, 15.5), good_inc, down=down)  # 2 s settling: 16.0
    r = check(ok, TEST)
    assert r["valid"] is True, r["summary"]
    late = build([*KILL, *nemesis], dead_between(pair, 12.5, 17.0), good_inc, down=down)
    r = check(late, TEST)
    assert r["valid"] is False, r["summary"]
    assert r["false_dead"][0]["observer"] == pair[0] and r["false_dead"][0]["subject"] == pair[1]
    # A longer settling time from the test's options excuses the same history.
    assert check(late, {**TEST, "options": {"check_settle_s": 4.0}})["valid"] is True


def test_a_fault_between_two_other_nodes_excuses_nothing_here() -> None:
    nemesis = [(12.0, "start-links", [{"src": "n3", "dst": "n2", "drop": 1.0}]), (14.0, "stop-links", None)]
    r = check(build([*KILL, *nemesis], dead_between(("n1", "n2"), 12.5, 13.0), good_inc, down=n3_down), TEST)
    assert r["valid"] is False


def test_the_test_start_excuses_deaths_only_for_recognise_s() -> None:
    early = build(KILL, dead_between(("n1", "n2"), 0.0, 3.9), good_inc, down=n3_down)
    assert check(early, TEST)["valid"] is True
    late = build(KILL, dead_between(("n1", "n2"), 4.3, 4.6), good_inc, down=n3_down)
    assert check(late, TEST)["valid"] is False
    assert check(late, {**TEST, "options": {"check_recognise_s": 5.0}})["valid"] is True


def test_detection_is_demanded_from_detect_s_after_the_kill() -> None:
    def slow(o: str, s: str, t: float) -> tuple[str, int]:
        if s == "n3" and o == "n1" and 5.0 <= t < 7.3:
            return ("alive", 1)  # n1 notices 2.3 s after the kill: within the 2.5 s bound
        return good_status(o, s, t)

    assert check(build(KILL, slow, good_inc, down=n3_down), TEST)["valid"] is True

    def slower(o: str, s: str, t: float) -> tuple[str, int]:
        if s == "n3" and o == "n1" and 5.0 <= t < 8.0:
            return ("alive", 1)
        return good_status(o, s, t)

    r = check(build(KILL, slower, good_inc, down=n3_down), TEST)
    assert r["valid"] is False and r["missed_detections"][0]["observer"] == "n1"
    assert check(build(KILL, slower, good_inc, down=n3_down), {**TEST, "options": {"check_detect_s": 3.5}})[
        "valid"] is True


def test_an_observer_that_was_itself_down_owes_no_detection() -> None:
    """An observer restarted 1 s before it sees the kill has not been running detect_s: not a miss."""
    nemesis = [(3.0, "kill", ["n1"]), (7.0, "restart", ["n1"]), *KILL]

    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n3" and 7.0 <= t < 8.5:
            return ("alive", 1)
        return good_status(o, s, t)

    def down(n: str, t: float) -> bool:
        return n3_down(n, t) or (n == "n1" and 3.0 <= t < 7.0)

    r = check(build(nemesis, status, lambda n, t: 2 if n == "n1" and t >= 7 else good_inc(n, t), down=down), TEST)
    assert not [m for m in r["missed_detections"] if m["subject"] == "n3"], r["missed_detections"]
    late = build(nemesis, lambda o, s, t: ("alive", 1) if (o, s) == ("n1", "n3") and 7.0 <= t < 10.0
                 else status(o, s, t), lambda n, t: 2 if n == "n1" and t >= 7 else good_inc(n, t), down=down)
    r = check(late, TEST)  # running 2.5 s by 9.5: from then on n1 owes the detection
    assert [m["seen_at"][0] >= 9.5 for m in r["missed_detections"] if m["subject"] == "n3"] == [True] * 2


def test_a_subject_the_test_names_is_judged_even_if_it_never_reports() -> None:
    h = build(KILL, good_status, good_inc, down=n3_down)
    for op in h:
        if op["type"] == "ok" and op.get("f") == "view" and op["node"] == "n1" and 15.0 <= op["time"] / 1e9 < 16.0:
            op["value"]["peers"]["n4"] = {"status": "dead", "incarnation": 1, "since_s": 0.0}
    assert check(h, TEST)["valid"] is True  # n4 is no node of this test
    r = check(h, {**TEST, "nodes": [*NODES, "n4"]})
    assert r["valid"] is False and r["false_dead"][0]["subject"] == "n4"


def test_counts_and_summary_of_a_clean_run() -> None:
    r = check(build(KILL, good_status, good_inc, down=n3_down), TEST)
    assert r["valid"] is True
    assert r["violation_counts"] == {"missed_detections": 0, "false_dead": 0, "unrecognised_restarts": 0}
    assert r["bounds"] == {"detect_s": 2.5, "settle_s": 2.0, "recognise_s": 4.0}
    assert "1/1 restarts recognised by someone" in r["summary"]
    assert r["summary"].endswith("unexcused")


def with_violations(r: dict[str, Any]) -> int:
    return sum(r["violation_counts"].values())


def test_violations_add_up_across_kinds() -> None:
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n2" and 15.0 <= t < 15.2:
            return ("dead", 1)
        if o == "n2" and s == "n3" and 5.0 <= t < 10.0:
            return ("alive", 1)
        return good_status(o, s, t)

    r = check(build(KILL, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is False
    assert r["violation_counts"]["false_dead"] == 1 and r["violation_counts"]["missed_detections"] > 0
    assert with_violations(r) == len(r["false_dead"]) + len(r["missed_detections"]) + len(r["unrecognised_restarts"])
