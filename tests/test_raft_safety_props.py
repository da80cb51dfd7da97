"""The Raft safety checker on generated reports of every shape, against an oracle that reads the rules directly.

Fast tier (no simulator): hypothesis builds histories of status reports (well-formed or not, one run
or many, concurrent or ordered, across restarts) and client replies (from leaders and followers),
from a true log and forks of it, and the oracle computes each verdict the slow, obvious way: every
index, every pair of reports, every claim. Then hand-made cases pin the shapes issue 20 named.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers import raft_safety

# Examples: hypothesis's default (100), or the mutation profile's (tests/conftest.py).
SETTINGS = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
NODES = ["n1", "n2", "n3"]
MAX_INDEX = 7

# ---------------------------------------------------------------------------------------------------------------
# generation


@st.composite
def logs(draw: st.DrawFn) -> list[list[int]]:
    """A true log of terms (index 1..MAX_INDEX, nondecreasing) and a few forks that share a prefix of it."""
    terms = sorted(draw(st.lists(st.integers(1, 3), min_size=MAX_INDEX, max_size=MAX_INDEX)))
    out = [terms]
    for _ in range(draw(st.integers(0, 2))):
        k = draw(st.integers(0, MAX_INDEX - 1))
        bump = draw(st.integers(1, 2))
        out.append(terms[:k] + [t + bump for t in terms[k:]])
    return out


def runs_of(log: list[int], first: int, last: int) -> list[list[int]]:
    out: list[list[int]] = []
    for i in range(first, last + 1):
        if not out or out[-1][1] != log[i - 1]:
            out.append([i, log[i - 1]])
    return out


def digest(log: list[int], i: int) -> str:
    return "d" + "".join(map(str, log[:i]))


@st.composite
def status_value(draw: st.DrawFn, all_logs: list[list[int]]) -> dict[str, Any]:
    log = draw(st.sampled_from(all_logs))
    applied = draw(st.integers(0, MAX_INDEX))
    v: dict[str, Any] = {
        "incarnation": draw(st.sampled_from(["a", "a", "b"])),
        "term": draw(st.integers(1, 4)),
        "role": draw(st.sampled_from(["leader", "follower", "follower", "candidate"])),
        "last_applied": applied,
        "applied_digest": (digest(log, applied) if applied and draw(st.booleans())
                           else draw(st.sampled_from(["", None]))),
        "checkpoints": {str(i): digest(log, i) for i in draw(st.sets(st.integers(0, applied), max_size=2))},
    }
    if draw(st.integers(0, 4)) == 0:
        v["checkpoints"]["x"] = "junk"  # not an index: ignored
    if draw(st.booleans()):
        v["led_terms"] = draw(st.lists(st.one_of(st.integers(1, 4), st.just("x")), max_size=2))
    if applied and draw(st.integers(0, 3)):
        first = draw(st.integers(1, applied))
        runs: Any = runs_of(log, first, applied)
        shape = draw(st.integers(0, 9))
        if shape == 0:
            runs = [*runs, [applied + 1, 9]]  # a run past last_applied
        elif shape == 1 and len(runs) > 1:
            runs = [runs[1], runs[0]]  # not increasing
        elif shape == 2:
            runs = [[runs[0][0], runs[0][1], 0]]  # not a pair
        elif shape == 3:
            runs = [[runs[0][0], "t"]]  # not ints
        elif shape == 4 and len(runs) > 1:
            runs = [runs[0], [runs[0][0], runs[1][1]]]  # a repeated start
        elif shape == 5:
            runs = {"1": 1}  # not a list
        v["term_runs"] = runs
    if draw(st.integers(0, 5)) == 0:
        v["last_applied"] = draw(st.sampled_from([None, "7"]))  # no applied index: no runs, no digest point
    return v


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Status ops (reports and non-reports) and client replies, each on its own process, interleaved."""
    all_logs = draw(logs())
    items: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for _ in range(draw(st.integers(0, 6))):
        node = draw(st.sampled_from(NODES))
        inv = {"process": 0, "type": "invoke", "f": "status", "value": None, "node": node}
        kind = draw(st.integers(0, 9))
        value: Any = draw(status_value(all_logs))
        if draw(st.integers(0, 3)):
            value["node"] = node  # else the checker takes the completion's node
        comp: dict[str, Any] | None = {"process": 0, "type": "ok", "f": "status", "value": value, "node": node}
        if kind == 0:
            comp = None  # never completed
        elif kind == 1:
            comp = {**comp, "type": draw(st.sampled_from(["fail", "info"]))}
        elif kind == 2:
            comp = {**comp, "value": draw(st.sampled_from([None, "up", [1]]))}
        elif kind == 3:
            comp = {**comp, "value": {**value, "term": draw(st.sampled_from([None, "3"]))}}
        items.append((inv, comp))
    for _ in range(draw(st.integers(0, 4))):
        meta: Any = {"node": draw(st.sampled_from([*NODES, ""])), "term": draw(st.sampled_from([1, 2, 3, "2"])),
                     "role": draw(st.sampled_from(["leader", "follower"]))}
        if draw(st.integers(0, 5)) == 0:
            meta = "n1"
        typ = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        inv = {"process": 0, "type": "invoke", "f": "read", "key": "x", "value": None}
        items.append((inv, {"process": 0, "type": typ, "f": "read", "key": "x", "value": 1, "raft": meta}))
    events = []
    for p, (inv, comp) in enumerate(items):
        start = draw(st.integers(0, 30))
        events.append((start, 0, p, {**inv, "process": p}))
        if comp is not None:
            events.append((start + draw(st.integers(1, 12)), 1, p, {**comp, "process": p}))
    events.sort(key=lambda e: e[:3])
    return [{"index": i, **e[3]} for i, e in enumerate(events)]


# ---------------------------------------------------------------------------------------------------------------
# the oracle


def reports_of(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    invokes = {op["process"]: op for op in history if op["type"] == "invoke"}
    out = []
    for c in history:
        inv = invokes[c["process"]]
        if c["type"] != "ok" or inv["f"] != "status" or not isinstance(c["value"], dict):
            continue
        v = c["value"]
        if not isinstance(v["term"], int):
            continue
        out.append({"v": v, "node": v.get("node", c["node"]), "invoke": inv["index"], "complete": c["index"]})
    return sorted(out, key=lambda r: r["invoke"])


def well_formed_runs(v: dict[str, Any]) -> list[list[int]] | None:
    runs, last = v.get("term_runs"), v.get("last_applied")
    if not isinstance(runs, list) or not isinstance(last, int):
        return None
    for k, r in enumerate(runs):
        if not isinstance(r, list) or len(r) != 2 or not all(isinstance(x, int) for x in r):
            return None
        if r[0] > last or (k and r[0] <= runs[k - 1][0]):
            return None
    return runs or None


def term_at(runs: list[list[int]], last: int, i: int) -> int | None:
    if not runs[0][0] <= i <= last:
        return None
    return [t for s, t in runs if s <= i][-1]


def digests_at(r: dict[str, Any]) -> dict[int, set[str]]:
    v = r["v"]
    out: dict[int, set[str]] = {}
    if isinstance(v["last_applied"], int) and v["applied_digest"]:
        out.setdefault(v["last_applied"], set()).add(v["applied_digest"])
    for k, d in v["checkpoints"].items():
        if k.isdigit():
            out.setdefault(int(k), set()).add(d)
    out.pop(0, None)
    return out


def oracle(history: list[dict[str, Any]]) -> dict[str, Any]:
    reports = reports_of(history)
    claims: dict[int, dict[str, list[int]]] = {}
    for r in reports:
        led = {t for t in r["v"].get("led_terms") or [] if isinstance(t, int)}
        if r["v"]["role"] == "leader":
            led.add(r["v"]["term"])
        for t in led:
            claims.setdefault(t, {}).setdefault(r["node"], []).append(r["complete"])
    for op in history:
        meta = op.get("raft")
        if op["type"] == "ok" and isinstance(meta, dict) and meta["role"] == "leader" and meta["node"] \
                and isinstance(meta["term"], int):
            claims.setdefault(meta["term"], {}).setdefault(meta["node"], []).append(op["index"])
    terms_at: dict[int, set[int]] = {}
    for r in reports:
        runs = well_formed_runs(r["v"])
        if runs:
            for i in range(1, MAX_INDEX + 2):
                t = term_at(runs, r["v"]["last_applied"], i)
                if t is not None:
                    terms_at.setdefault(i, set()).add(t)
    all_digests: dict[int, set[str]] = {}
    for r in reports:
        for i, ds in digests_at(r).items():
            all_digests.setdefault(i, set()).update(ds)
    regressions, lost = set(), set()
    for b in reports:
        for a in reports:
            if a["node"] == b["node"] and a["complete"] < b["invoke"] and a["v"]["term"] > b["v"]["term"]:
                (regressions if a["v"]["incarnation"] == b["v"]["incarnation"] else lost).add(b["invoke"])
    bad_terms = sorted(i for i, ts in terms_at.items() if len(ts) > 1)
    bad_digests = sorted(i for i, ds in all_digests.items() if len(ds) > 1)
    two = sorted(t for t, by in claims.items() if len(by) > 1)
    problems = bool(two or bad_terms or bad_digests or regressions or lost)
    return {
        "valid": False if problems else ("unknown" if not reports else True),
        "reports": reports, "claims": claims, "two": two, "bad_terms": bad_terms, "bad_digests": bad_digests,
        "terms_at": terms_at, "digests": all_digests, "regressions": regressions, "lost": lost,
    }


# ---------------------------------------------------------------------------------------------------------------
# the properties


@SETTINGS
@given(histories())
def test_verdict_and_evidence_match_the_oracle(history: list[dict[str, Any]]) -> None:
    want = oracle(history)
    got = raft_safety.check(history, {})
    assert got["valid"] == want["valid"], (got, history)
    reports = want["reports"]
    assert got["stats"] == {"status_reports": len(reports), "terms_with_leader": len(want["claims"])}
    assert got["leaders_by_term"] == {str(t): sorted(by) for t, by in sorted(want["claims"].items())}

    # Election safety: every term with two claimants, in term order, with the ops that claimed it.
    assert [x["term"] for x in got["two_leaders"]] == want["two"][: raft_safety.MAX_EVIDENCE]
    for x in got["two_leaders"]:
        assert x == {"term": x["term"], "leaders": {n: sorted(ops)[:3] for n, ops in
                                                    sorted(want["claims"][x["term"]].items())}}

    by_complete = {r["complete"]: r for r in reports}
    # State machine safety by digests and by terms: one entry per index that two reports disagree on.
    assert [c["index"] for c in got["digest_conflicts"]] == want["bad_digests"][: raft_safety.MAX_EVIDENCE]
    for c in got["digest_conflicts"]:
        assert set(c) == {"index", "reports"} and len(c["reports"]) == 2
        first, second = c["reports"]
        assert first["digest"] != second["digest"]
        for e in (first, second):
            r = by_complete[e["op"]]
            assert e == {"node": r["node"], "op": r["complete"], "digest": e["digest"]}
            assert e["digest"] in digests_at(r)[c["index"]]
    assert [c["index"] for c in got["term_conflicts"]] == want["bad_terms"][: raft_safety.MAX_EVIDENCE]
    for c in got["term_conflicts"]:
        assert set(c) == {"index", "reports"} and len(c["reports"]) == 2
        first, second = c["reports"]
        assert first["term"] != second["term"]
        for e in (first, second):
            r = by_complete[e["op"]]
            assert e == {"node": r["node"], "op": r["complete"], "term": e["term"]}
            runs = well_formed_runs(r["v"])
            assert runs and term_at(runs, r["v"]["last_applied"], c["index"]) == e["term"]

    # Terms never go down: one entry per later report that follows a higher term of its node.
    by_invoke = {r["invoke"]: r for r in reports}
    for key, expected in (("term_regressions", want["regressions"]), ("term_lost_in_restart", want["lost"])):
        assert sorted(x["later"]["op"] for x in got[key]) == sorted(expected)[: raft_safety.MAX_EVIDENCE]
        for x in got[key]:
            a, b = by_complete[x["earlier"]["op"]], by_invoke[x["later"]["op"]]
            assert x == {"node": b["node"],
                         "earlier": {"op": a["complete"], "term": a["v"]["term"], "incarnation": a["v"]["incarnation"]},
                         "later": {"op": b["invoke"], "term": b["v"]["term"], "incarnation": b["v"]["incarnation"]}}
            assert a["node"] == b["node"] and a["v"]["term"] > b["v"]["term"] and a["complete"] < b["invoke"]
            assert (a["v"]["incarnation"] == b["v"]["incarnation"]) == (key == "term_regressions")

    summary = got["summary"]
    assert ("two leaders" in summary) == bool(want["two"])
    assert ("different commands" in summary) == bool(want["bad_digests"])
    assert ("different terms" in summary) == bool(want["bad_terms"])
    assert ("went down within one run" in summary) == bool(want["regressions"])
    assert ("forgot its term" in summary) == bool(want["lost"])
    if got["valid"] is True:
        assert summary == (f"{len(reports)} status reports, {len(want['claims'])} terms with a leader: "
                           "one leader per term, applied prefixes agree, terms never went down")
    if got["valid"] == "unknown":
        assert summary == "no node status reports in the history"


# ---------------------------------------------------------------------------------------------------------------
# shapes named by issue 20


def status(index: int, process: int, node: str, **value: Any) -> list[dict[str, Any]]:
    v = {"node": node, "incarnation": "a", "term": 1, "role": "follower", "last_applied": 0,
         "applied_digest": "", "checkpoints": {}, **value}
    return [{"index": index, "process": process, "type": "invoke", "f": "status", "value": None, "node": node},
            {"index": index + 1, "process": process, "type": "ok", "f": "status", "value": v, "node": node}]


def test_a_report_with_a_single_run() -> None:
    h = status(0, 0, "n1", last_applied=4, term_runs=[[1, 2]]) + status(2, 1, "n2", last_applied=3, term_runs=[[2, 2]])
    assert raft_safety.check(h, {})["valid"] is True
    h = status(0, 0, "n1", last_applied=4, term_runs=[[1, 2]]) + status(2, 1, "n2", last_applied=3, term_runs=[[2, 3]])
    r = raft_safety.check(h, {})
    assert r["valid"] is False and [c["index"] for c in r["term_conflicts"]] == [2]


def test_two_nodes_that_applied_different_terms_from_their_first_index() -> None:
    """Compared from each report's first run: a check starting at its second run misses index 1..4 here."""
    h = status(0, 0, "n1", last_applied=6, term_runs=[[1, 1], [5, 2]])
    h += status(2, 1, "n2", last_applied=6, term_runs=[[1, 3], [5, 2]])
    r = raft_safety.check(h, {})
    assert r["valid"] is False and r["term_conflicts"][0]["index"] == 1
    assert r["term_conflicts"][0]["reports"] == [{"node": "n1", "op": 1, "term": 1}, {"node": "n2", "op": 3, "term": 3}]


def test_a_follower_answering_a_read_is_no_claim_of_leadership() -> None:
    h = status(0, 0, "n1", term=4, role="leader")
    h += [{"index": 2, "process": 1, "type": "invoke", "f": "read", "key": "x", "value": None},
          {"index": 3, "process": 1, "type": "ok", "f": "read", "key": "x", "value": 1,
           "raft": {"node": "n2", "term": 4, "role": "follower"}}]
    r = raft_safety.check(h, {})
    assert r["valid"] is True and r["leaders_by_term"] == {"4": ["n1"]}
    h[3]["raft"]["role"] = "leader"
    r = raft_safety.check(h, {})
    assert r["valid"] is False and r["two_leaders"] == [{"term": 4, "leaders": {"n1": [1], "n2": [3]}}]


def test_malformed_runs_are_ignored_not_trusted() -> None:
    good = status(0, 0, "n1", last_applied=5, term_runs=[[1, 1], [3, 2]])
    for bad in ([[1, 1], [1, 3]], [[3, 3], [1, 3]], [[1, 3], [6, 3]], [[1, 3, 0]], [[1, "3"]], [1, 3], "1:3"):
        h = good + status(2, 1, "n2", last_applied=5, term_runs=bad)
        assert raft_safety.check(h, {})["valid"] is True, bad
    h = good + status(2, 1, "n2", last_applied=None, term_runs=[[1, 3]])
    assert raft_safety.check(h, {})["valid"] is True


def test_digest_at_index_zero_and_junk_checkpoints_are_ignored() -> None:
    h = status(0, 0, "n1", last_applied=0, applied_digest="a", checkpoints={"0": "b", "x": "c"})
    h += status(2, 1, "n2", last_applied=0, applied_digest="z", checkpoints={"0": "y"})
    assert raft_safety.check(h, {})["valid"] is True
    h += status(4, 2, "n3", last_applied=2, applied_digest="", checkpoints={"2": "q"})
    h += status(6, 3, "n1", last_applied=2, applied_digest="r")
    r = raft_safety.check(h, {})
    assert r["valid"] is False and r["digest_conflicts"][0]["reports"] == [
        {"node": "n3", "op": 5, "digest": "q"}, {"node": "n1", "op": 7, "digest": "r"}]


def test_report_node_defaults_to_the_completion_node() -> None:
    h = status(0, 0, "n1", term=3, role="leader") + status(2, 1, "n2", term=3, role="leader")
    del h[3]["value"]["node"]
    r = raft_safety.check(h, {})
    assert r["leaders_by_term"] == {"3": ["n1", "n2"]} and r["valid"] is False


def test_evidence_is_capped() -> None:
    h: list[dict[str, Any]] = []
    for t in range(1, 13):
        h += status(len(h), len(h), "n1", term=t, role="leader") + status(len(h) + 2, len(h) + 2, "n2", term=t,
                                                                           role="leader")
    for i in range(5):
        h += status(len(h), len(h), "n1", term=1, led_terms=[1])
        del i
    r = raft_safety.check(h, {})
    assert len(r["two_leaders"]) == raft_safety.MAX_EVIDENCE and r["two_leaders"][0]["term"] == 1
    assert len(r["two_leaders"][0]["leaders"]["n1"]) == 3
    assert "12 term(s) with two leaders (first: term 1)" in r["summary"]


def test_report_node_is_the_one_the_status_names() -> None:
    """A status answered through another node's address is that node's report (its value names it)."""
    h = status(0, 0, "n2", term=3, role="leader") + status(2, 1, "n2", term=3, role="leader")
    h[1]["node"] = "n1"
    r = raft_safety.check(h, {})
    assert r["leaders_by_term"] == {"3": ["n2"]} and r["valid"] is True


def test_one_entry_per_index_in_index_order_whatever_the_report_order() -> None:
    h = status(0, 0, "n1", last_applied=6, term_runs=[[1, 1], [4, 2]])
    h += status(2, 1, "n2", last_applied=6, term_runs=[[4, 3]])  # disagrees with n1 at 4
    h += status(4, 2, "n3", last_applied=2, term_runs=[[1, 5]])  # disagrees with n1 at 1, found later
    h += status(6, 3, "n2", last_applied=6, term_runs=[[4, 3]])  # a third opinion at 4: still one entry
    r = raft_safety.check(h, {})
    assert [c["index"] for c in r["term_conflicts"]] == [1, 4]
    h = status(0, 0, "n1", applied_digest="a", last_applied=5, checkpoints={"3": "c"})
    h += status(2, 1, "n2", applied_digest="b", last_applied=5)
    h += status(4, 2, "n3", applied_digest="b", last_applied=5, checkpoints={"3": "d"})
    r = raft_safety.check(h, {})
    assert [c["index"] for c in r["digest_conflicts"]] == [3, 5]


def test_junk_checkpoints_do_not_hide_the_ones_after_them() -> None:
    h = status(0, 0, "n1", last_applied=5, applied_digest="", checkpoints={"x": "junk", "0": "z", "3": "q"})
    h += status(2, 1, "n2", last_applied=3, applied_digest="r")
    r = raft_safety.check(h, {})
    assert r["valid"] is False and r["digest_conflicts"][0]["index"] == 3


def test_a_report_without_positions_is_skipped_for_ordering_only() -> None:
    h = status(0, 0, "n1", term=5) + status(2, 1, "n1", term=3)
    del h[1]["index"]  # a report with no completion position: cannot be ordered
    h += status(4, 2, "n1", term=2)
    r = raft_safety.check(h, {})
    assert r["valid"] is False and [x["later"]["op"] for x in r["term_regressions"]] == [4]
    assert r["term_regressions"][0]["earlier"]["op"] == 3


def test_every_problem_is_named_in_the_summary() -> None:
    h = status(0, 0, "n1", term=5, role="leader") + status(2, 0, "n1", term=3)
    h += status(4, 1, "n2", term=5, role="leader")
    r = raft_safety.check(h, {})
    assert r["summary"] == ("1 term(s) with two leaders (first: term 5); term went down within one run of node n1")
