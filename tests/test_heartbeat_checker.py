"""The heartbeat checker on hand-built histories: it accepts a good one and rejects each bad kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from base.history import Op
from checkers import heartbeat
from nemesis.catalog import VOCABULARY
from workloads.heartbeat import report_sections


def check(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    return heartbeat.check(history, test, VOCABULARY)


def fault_timeline(history: list[Op]) -> heartbeat.Faults:
    return heartbeat.fault_timeline(history, VOCABULARY)

NODES = ["n1", "n2", "n3"]
NS = 1_000_000_000

# status_of(observer, subject, t) -> (status, incarnation); self_inc(node, t) -> incarnation
StatusFn = Callable[[str, str, float], tuple[str, int]]
IncFn = Callable[[str, float], int]


def build(
    nemesis: list[tuple[float, str, Any]],
    status_of: StatusFn,
    self_inc: IncFn,
    *,
    end_s: float = 24.0,
    step_s: float = 0.25,
    down: Callable[[str, float], bool] = lambda n, t: False,
) -> list[Op]:
    """Views from every node every `step_s` (10 ms each), nemesis ops at their times, sorted by time."""
    events: list[tuple[float, int, Op]] = []
    for t, f, v in nemesis:
        events.append((t, 0, {"process": "nemesis", "type": "info", "f": f, "value": v}))
    for p, node in enumerate(NODES):
        t = 0.05 + p * 0.03
        while t < end_s:
            if not down(node, t):
                peers = {
                    s: {"status": st, "incarnation": inc, "phi": 0.0, "since_s": 0.0, "heard_s": 0.0}
                    for s in NODES
                    if s != node
                    for st, inc in [status_of(node, s, t)]
                }
                view = {"node": node, "incarnation": self_inc(node, t), "peers": peers, "stalls": 0}
                events.append((t, 1, {"process": p, "type": "invoke", "f": "view", "value": None, "node": node}))
                events.append((t + 0.01, 2, {"process": p, "type": "ok", "f": "view", "value": view, "node": node}))
            t += step_s
    events.sort(key=lambda e: (e[0], e[1]))
    return [{"index": i, "time": round(t * NS), **op} for i, (t, _, op) in enumerate(events)]


TEST = {"nodes": NODES, "options": {}}
KILL = [(5.0, "kill", ["n3"]), (10.0, "restart", ["n3"])]


def n3_down(n: str, t: float) -> bool:
    return n == "n3" and 5.0 <= t < 10.0


def good_status(o: str, s: str, t: float) -> tuple[str, int]:
    if s == "n3":
        if 5.0 + 0.9 <= t < 10.0:
            return ("dead", 1)
        if 5.0 + 0.7 <= t < 10.0:
            return ("suspect", 1)
        if t >= 10.3:
            return ("alive", 2)
    return ("alive", 1)


def good_inc(n: str, t: float) -> int:
    return 2 if n == "n3" and t >= 10.0 else 1


def test_kills_none_of_which_could_be_judged_leave_detection_untested_unknown_never_valid() -> None:
    """A kill that demands detection (down for detect_s or more, or for good) that nobody saw dead and no view
    could call a miss proves nothing about detection: with no other such kill judged, the run is unknown. A
    kill shorter than the bound (a reboot) demands nothing; one judged kill makes the run valid again."""
    def unheard(o: str, s: str, t: float) -> tuple[str | None, int]:
        return (None, 1) if s == "n3" else ("alive", 1)  # n3 died before anyone heard of it

    r = check(build([(0.01, "kill", ["n3"])], unheard, good_inc, down=lambda n, t: n == "n3" and t >= 0.01), TEST)
    assert r["valid"] == "unknown", r["summary"]
    assert r["kills"][0]["judged"] is False and "detection untested" in r["summary"]

    reboot = [(5.0, "kill", ["n3"]), (6.0, "restart", ["n3"])]

    def unseen(o: str, s: str, t: float) -> tuple[str, int]:
        return ("alive", 2 if s == "n3" and t >= 6.0 else 1)

    def inc(n: str, t: float) -> int:
        return 2 if n == "n3" and t >= 6.0 else 1

    r = check(build(reboot, unseen, inc, down=lambda n, t: n == "n3" and 5.0 <= t < 6.0), TEST)
    assert r["valid"] is True and r["kills"][0]["judged"] is False, r["summary"]
    r = check(build(KILL, good_status, good_inc, down=n3_down), TEST)
    assert r["valid"] is True and r["kills"][0]["judged"] is True


def test_accepts_a_good_history_and_measures_detection_and_recovery() -> None:
    h = build(KILL, good_status, good_inc, down=n3_down)
    r = check(h, TEST)
    assert r["valid"] is True, r["summary"]
    (kill,) = r["kills"]
    assert kill["subject"] == "n3" and 0.9 <= kill["first_s"] <= kill["last_s"] <= 1.2
    (restart,) = r["restarts"]
    assert restart["old_incarnation"] == 1 and restart["new_incarnation"] == 2
    assert set(restart["recognised_by"]) == {"n1", "n2"} and 0.3 <= restart["recovery_s"] <= 0.6
    assert r["suspicions"]["unexcused"] == 0
    assert "1/1 kills detected" in r["summary"]
    # The evidence whole: the builder is deterministic (views every 0.25s, each 10 ms long).
    assert r["kills"] == [{"subject": "n3", "killed_at": 5.0, "restarted_at": 10.0,
                           "detected_by": {"n1": 1.06, "n2": 1.09}, "first_s": 1.06, "last_s": 1.09, "watched": True,
                           "judged": True}]
    assert r["restarts"] == [{"subject": "n3", "killed_at": 5.0, "restarted_at": 10.0, "old_incarnation": 1,
                              "new_incarnation": 2, "recognised_by": {"n1": 0.31, "n2": 0.34}, "recovery_s": 0.34}]
    assert r["summary"] == ("1/1 kills detected (worst first/last observer 1.06s/1.09s); 1/1 restarts recognised "
                            "by someone, worst recovery 0.34s; 0 suspicion episode(s) of live nodes (0.0s), "
                            "0 unexcused")


def test_rejects_a_missed_detection_naming_observer_subject_and_times() -> None:
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n2" and s == "n3" and t < 10.3:
            return ("alive", 1)  # n2 never notices that n3 died
        return good_status(o, s, t)

    r = check(build(KILL, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is False
    ev = r["missed_detections"][0]
    assert ev["observer"] == "n2" and ev["subject"] == "n3" and ev["killed_at"] == 5.0
    assert ev["seen_at"][0] >= 5.0 + 2.5
    assert r["kills"][0]["detected_by"].keys() == {"n1"}
    assert "missed detection" in r["summary"]
    why = "n2 still showed n3 alive at 7.58s, 2.58s after n3 was killed (bound 2.5s)"
    assert ev == {"observer": "n2", "subject": "n3", "killed_at": 5.0, "seen_at": [7.58, 7.59], "status": "alive",
                  "index": ev["index"], "why": why}


def test_rejects_a_dead_node_that_nobody_ever_detects() -> None:
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        return ("alive", 2 if s == "n3" and t >= 10.0 else 1)

    r = check(build(KILL, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is False
    assert {e["observer"] for e in r["missed_detections"]} == {"n1", "n2"}
    assert r["kills"][0]["first_s"] is None and "0/1 kills detected" in r["summary"]


def test_rejects_a_live_reachable_node_held_dead_past_the_bound() -> None:
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n2" and 15.0 <= t < 16.0:
            return ("dead", 1)
        return good_status(o, s, t)

    r = check(build(KILL, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is False
    (ev,) = r["false_dead"]
    assert ev["observer"] == "n1" and ev["subject"] == "n2"
    assert 15.0 <= ev["start"] < ev["end"] <= 16.1 and ev["views"] == 4
    assert "n1 showed live, reachable n2 dead in 4 view(s) from 15.05s" in ev["why"]
    why = "n1 showed live, reachable n2 dead in 4 view(s) from 15.05s to 15.81s with no fault to explain it"
    assert ev == {"observer": "n1", "subject": "n2", "start": 15.05, "end": 15.81, "duration_s": 0.76, "views": 4,
                  "worst": "dead", "excused_by": [], "violation": True, "index": ev["index"], "why": why}
    assert r["suspicions"] == {"episodes": 1, "total_s": 0.76, "unexcused": 1, "list": [ev]}
    assert r["summary"].startswith(f"INVALID: 1 live node(s) held dead past the bound (e.g. {why}); ")
    assert r["summary"].endswith("; 1 suspicion episode(s) of live nodes (0.8s), 1 unexcused")


def test_even_a_single_brief_false_death_outside_every_fault_is_rejected() -> None:
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n2" and s == "n1" and 18.0 <= t < 18.25:
            return ("dead", 1)
        return good_status(o, s, t)

    r = check(build(KILL, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is False and r["false_dead"][0]["views"] == 1


def test_suspicions_explained_by_faults_are_excused_within_the_settling_time() -> None:
    nemesis = [
        *KILL,
        (12.0, "start-partition", {"n1": ["n2"], "n2": ["n1"], "n3": []}),
        (14.0, "stop-partition", None),
        (16.0, "pause", ["n2"]),
        (18.0, "resume", ["n2"]),
    ]

    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if {o, s} == {"n1", "n2"} and 13.0 <= t < 15.5:
            return ("dead", 1)  # cut, then settling after the heal
        if s == "n2" and 17.0 <= t < 19.5:
            return ("dead", 1)  # paused, then settling after the resume
        if o == "n2" and 18.0 <= t < 19.0:
            return ("dead", 1)  # the paused observer itself, right after it resumed
        return good_status(o, s, t)

    r = check(build(nemesis, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is True, r["summary"]
    episodes = r["suspicions"]["list"]
    assert any(e["observer"] == "n1" and e["subject"] == "n2" and e["excused_by"] for e in episodes)
    assert all(not e["violation"] for e in episodes)


def test_a_suspicion_that_outlasts_the_settling_time_after_a_heal_is_rejected() -> None:
    nemesis = [*KILL, (12.0, "start-partition", {"n1": ["n2"], "n2": ["n1"], "n3": []}), (14.0, "stop-partition", None)]

    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n2" and 13.0 <= t < 20.0:
            return ("dead", 1)  # never revived after the heal
        return good_status(o, s, t)

    r = check(build(nemesis, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is False
    (ev,) = r["false_dead"]
    assert ev["observer"] == "n1" and ev["subject"] == "n2" and "n2->n1 cut from 12.00s" in ev["excused_by"]


def test_rejects_a_restart_announcing_its_old_incarnation() -> None:
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        st, _ = good_status(o, s, t)
        return (st, 1)

    r = check(build(KILL, status, lambda n, t: 1, down=n3_down), TEST)
    assert r["valid"] is False
    whys = [e["why"] for e in r["unrecognised_restarts"]]
    assert any("n3 restarted at 10.00s but announces incarnation 1" in w for w in whys)
    assert {e["observer"] for e in r["unrecognised_restarts"]} == {"n1", "n2", "n3"}
    assert r["restarts"][0]["recognised_by"] == {}
    (own,) = [e for e in r["unrecognised_restarts"] if e["observer"] == "n3"]
    assert own == {"observer": "n3", "subject": "n3", "restarted_at": 10.0, "seen_at": [10.11, 10.12],
                   "index": own["index"], "why": "n3 restarted at 10.00s but announces incarnation 1, not above 1 "
                                                 "seen before its kill at 5.00s"}
    assert r["restarts"] == [{"subject": "n3", "killed_at": 5.0, "restarted_at": 10.0, "old_incarnation": 1,
                              "new_incarnation": 1, "recognised_by": {}, "recovery_s": None}]


def test_a_restart_of_a_node_never_seen_before_its_kill_is_not_judged() -> None:
    early = [(0.01, "kill", ["n3"]), (3.0, "restart", ["n3"])]
    r = check(build(early, lambda o, s, t: ("alive", 1), lambda n, t: 1, down=lambda n, t: n == "n3" and t < 3.0),
              TEST)
    assert r["restarts"] == [{"subject": "n3", "killed_at": 0.01, "restarted_at": 3.0, "old_incarnation": None,
                              "new_incarnation": None, "recognised_by": {}, "recovery_s": None,
                              "note": "no view of the old instance: recognition not judged"}]
    assert r["unrecognised_restarts"] == []


def test_rejects_an_observer_that_never_recognises_the_new_incarnation() -> None:
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n3" and t >= 10.0:
            return ("alive", 1)  # n1 still believes in the old instance
        return good_status(o, s, t)

    r = check(build(KILL, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is False
    (ev,) = r["unrecognised_restarts"]
    assert ev["observer"] == "n1" and ev["subject"] == "n3" and ev["seen_at"][0] >= 14.0
    why = ("n1 still showed n3 alive with incarnation 1 at 14.05s, 4.05s after its restart (old incarnation 1, "
           "bound 4s)")
    assert ev == {"observer": "n1", "subject": "n3", "restarted_at": 10.0, "seen_at": [14.05, 14.06],
                  "index": ev["index"], "why": why}
    assert r["restarts"] == [{"subject": "n3", "killed_at": 5.0, "restarted_at": 10.0, "old_incarnation": 1,
                              "new_incarnation": 2, "recognised_by": {"n2": 0.34}, "recovery_s": 0.34}]
    assert r["summary"].startswith(f"INVALID: 1 unrecognised restart(s) (e.g. {why}); 1/1 kills detected")


def test_violations_of_different_kinds_add_up() -> None:
    """One false death and one unrecognised restart in one history: invalid, each kind counted once (no kind
    cancels another)."""
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n3" and t >= 10.0:
            return ("alive", 1)  # n1 still believes in the old instance
        if o == "n2" and s == "n1" and 15.0 <= t < 16.0:
            return ("dead", 1)  # n2 holds live n1 dead
        return good_status(o, s, t)

    r = check(build(KILL, status, good_inc, down=n3_down), TEST)
    assert r["violation_counts"] == {"missed_detections": 0, "false_dead": 1, "unrecognised_restarts": 1}
    assert r["valid"] is False, r["summary"]


def test_an_old_fault_of_the_subject_does_not_excuse_a_false_death_long_after_it() -> None:
    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n3" and 15.0 <= t < 16.0:
            return ("dead", 2)  # n3 was killed at 5s and is back since 10s: this death is false
        return good_status(o, s, t)

    r = check(build(KILL, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is False
    (ev,) = r["false_dead"]
    assert (ev["observer"], ev["subject"]) == ("n1", "n3")


def test_each_excuse_names_its_fault_and_when_it_began() -> None:
    """The test's start, a subject just restarted, a paused node (as subject and as observer) and a moved clock
    each excuse a suspicion, and the evidence says which, naming the node and the fault's start."""
    nemesis = [*KILL, (16.0, "pause", ["n2"]), (18.0, "resume", ["n2"]),
               (20.0, "clock-skew", {"n1": {"rate": 4.0, "offset_s": 0.0}}), (21.0, "clock-reset", ["n1"])]

    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n2" and t < 1.0:
            return ("suspect", 1)  # nothing heard yet
        if o == "n1" and s == "n3" and 10.0 <= t < 11.0:
            return ("dead", 2)  # the new instance, not yet believed
        if o == "n1" and s == "n2" and 17.0 <= t < 18.5:
            return ("dead", 1)
        if o == "n2" and s == "n3" and 18.0 <= t < 19.0:
            return ("dead", 1)
        if o == "n1" and s == "n2" and 20.5 <= t < 21.5:
            return ("dead", 1)
        return good_status(o, s, t)

    r = check(build(nemesis, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is True, r["summary"]
    excuses = {(e["observer"], e["subject"], e["start"] // 1): e["excused_by"] for e in r["suspicions"]["list"]}
    assert excuses[("n1", "n2", 0.0)] == ["test start"]
    assert excuses[("n1", "n3", 10.0)] == ["subject n3 down/restarting from 5.00s"]
    assert excuses[("n1", "n2", 18.0)] == ["subject n2 paused from 16.00s"]
    assert excuses[("n2", "n3", 18.0)] == ["observer n2 paused from 16.00s"]
    assert excuses[("n1", "n2", 20.0)] == ["observer n1's clock moved from 20.00s"]


def test_no_views_is_unknown() -> None:
    h = [{"index": 0, "time": 0, "process": "nemesis", "type": "info", "f": "kill", "value": ["n1"]}]
    assert check(h, TEST)["valid"] == "unknown"


def test_fault_timeline_reads_every_kind_of_nemesis_op() -> None:
    h = build(
        [
            (1.0, "kill", ["n1"]),
            (2.0, "restart", ["n1"]),
            (3.0, "pause", ["n2"]),
            (
                4.0,
                "start-links",
                [{"src": "n1", "dst": "n3", "drop": 0.5, "delay_s": 0, "jitter_s": 0, "duplicate": 0}],
            ),
            (5.0, "stop-links", None),
            (6.0, "power-off", ["n1", "n3"]),
            (7.0, "power-on", ["n1", "n3"]),
        ],
        good_status,
        good_inc,
        end_s=8.0,
    )
    f = fault_timeline(h)
    assert f.down["n1"] == [(1.0, 2.0), (6.0, 7.0)] and f.down["n3"] == [(6.0, 7.0)]
    assert f.paused["n2"] == [(3.0, float("inf"))]
    assert [(w.start_s, w.end_s) for w in f.cut("n3", "n1")] == [(4.0, 5.0)]
    assert [(r.node, r.restarted_at) for r in f.restarts] == [("n1", 2.0), ("n1", 7.0), ("n3", 7.0)]


def test_report_section_draws_every_observer() -> None:
    h = build(
        [*KILL, (12.0, "start-partition", {"n1": ["n2"], "n2": ["n1"]}), (14.0, "stop-partition", None)],
        good_status,
        good_inc,
        down=n3_down,
    )
    [(title, svg)] = report_sections(h, {})
    assert "who thought whom" in title and svg.startswith("<svg") and svg.endswith("</svg>")
    for n in NODES:
        assert f">{n} sees<" in svg
    assert "#e53935" in svg and "n3 down" in svg and "partition" in svg


def test_the_restarted_instance_seen_just_before_the_restart_op_is_no_missed_detection() -> None:
    """The harness writes `restart` once the node is up, so a view may show the new instance a moment earlier."""

    def status(o: str, s: str, t: float) -> tuple[str, int]:
        if s == "n3" and 9.0 <= t < 10.0:
            return ("alive", 2)  # back a second before the op says so
        return good_status(o, s, t)

    r = check(build(KILL, status, good_inc, down=n3_down), TEST)
    assert r["valid"] is True, r["summary"]

    def stale(o: str, s: str, t: float) -> tuple[str, int]:
        if s == "n3" and 9.0 <= t < 10.0:
            return ("alive", 1)  # the old instance revived: that is a miss
        return good_status(o, s, t)

    r = check(build(KILL, stale, good_inc, down=n3_down), TEST)
    assert r["valid"] is False and r["missed_detections"][0]["seen_at"][0] >= 9.0


def test_a_moved_clock_excuses_suspicions_until_it_settles_and_no_longer() -> None:
    """A detector times peers with its own clock: a clock fault on the observer or the subject explains a
    suspicion while it lasts and `settle_s` after its reset, never later."""
    nemesis = [*KILL, (12.0, "clock-skew", {"n1": {"rate": 4.0, "offset_s": 0.0}}), (14.0, "clock-reset", ["n1"])]

    def excused(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n2" and 12.5 <= t < 15.5:
            return ("dead", 1)
        return good_status(o, s, t)

    r = check(build(nemesis, excused, good_inc, down=n3_down), TEST)
    assert r["valid"] is True, r["summary"]
    assert any("clock moved" in " ".join(e["excused_by"] or []) for e in r["suspicions"]["list"])

    def outlasts(o: str, s: str, t: float) -> tuple[str, int]:
        if o == "n1" and s == "n2" and 12.5 <= t < 20.0:
            return ("dead", 1)
        return good_status(o, s, t)

    r = check(build(nemesis, outlasts, good_inc, down=n3_down), TEST)
    assert r["valid"] is False
    assert r["false_dead"] and all(ev["observer"] == "n1" and ev["subject"] == "n2" for ev in r["false_dead"])
