"""The KV set checker against an oracle that reads its rules directly, on generated set histories.

Adds end ok, info, fail or never; reads (final or not, strict or sloppy quorum, on any node) see
any subset of the elements, including ones never added; the oracle recomputes lost, not converged,
unexpected, stale reads, quorum violations, recovered elements and stable visibility from the rules
in checkers/kv_set.py's docstring, each the obvious way.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers import kv_set

# Examples: hypothesis's default (100), or the mutation profile's (tests/conftest.py).
SETTINGS = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
KEYS = ["s", "t"]
NODES = ["n1", "n2", "n3"]


@st.composite
def set_histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    items = []
    for e in draw(st.lists(st.integers(1, 5), max_size=5, unique=True)):  # the workload adds each once
        key = draw(st.sampled_from(KEYS))
        outcome = draw(st.sampled_from(["ok", "ok", "info", "fail", None]))
        quorum = draw(st.sampled_from(["strict", "sloppy"]))
        inv = {"f": "add", "key": key, "value": e, "node": "n1"}
        comp = None if outcome is None else {"f": "add", "key": key, "value": e, "type": outcome,
                                             **({"quorum": quorum} if outcome == "ok" else {})}
        items.append((inv, comp))
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.sampled_from(KEYS))
        final = draw(st.integers(0, 2)) == 0
        node = draw(st.sampled_from(NODES))
        flag = {"final": True} if final else {}
        seen = sorted(draw(st.sets(st.integers(1, 6), max_size=5)))
        inv = {"f": "read", "key": key, "value": None, "node": node, **flag}
        comp = {"f": "read", "key": key, "value": seen, "type": "ok", "node": node,
                "quorum": draw(st.sampled_from(["strict", "sloppy"])), **flag}
        if draw(st.integers(0, 6)) == 0:
            comp = {**comp, "type": "fail", "value": None}
        items.append((inv, comp))
    events = []
    for p, (inv, comp) in enumerate(items):
        start = draw(st.integers(0, 40))
        events.append((start, 0, p, {**inv, "type": "invoke"}))
        if comp is not None:
            events.append((start + draw(st.integers(1, 15)), 1, p, comp))
    events.sort(key=lambda e: e[:3])
    history = [{"index": i, "time": 1_000_000 * t, "process": p, **op} for i, (t, _, p, op) in enumerate(events)]
    opts = {"r": draw(st.integers(1, 3)), "w": draw(st.integers(1, 3)), "n": 3}
    return history, {"options": opts} if draw(st.booleans()) else {}


def oracle(history: list[dict[str, Any]], test: dict[str, Any]) -> dict[str, Any]:
    invokes: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    for op in history:
        (invokes if op["type"] == "invoke" else done)[op["process"]] = op
    adds = [(inv, done.get(p)) for p, inv in invokes.items() if inv["f"] == "add"]
    attempted = {(i["key"], i["value"]) for i, _ in adds}
    acked = {(i["key"], i["value"]): (i, c) for i, c in adds if c and c["type"] == "ok"}
    failed = {(i["key"], i["value"]) for i, c in adds if c and c["type"] == "fail"}
    reads = [(inv, done[p]) for p, inv in invokes.items()
             if inv["f"] == "read" and p in done and done[p]["type"] == "ok"]
    lost, unconverged, unknown_keys = set(), set(), set()
    recovered = 0
    for key in KEYS:
        finals = [c for i, c in reads if i["key"] == key and i.get("final")]
        if not finals:
            if any(k == key for k, _ in acked):
                unknown_keys.add(key)
            continue
        for (k, e) in acked:
            if k == key:
                missing = [c for c in finals if e not in c["value"]]
                if len(missing) == len(finals):
                    lost.add((key, e))
                elif missing:
                    unconverged.add((key, e, tuple(sorted(c["node"] for c in missing))))
        seen = {e for c in finals for e in c["value"]}
        recovered += sum(1 for e in seen if (key, e) in attempted and (key, e) not in acked and (key, e) not in failed)
    unexpected = sorted((c["index"], e, "never attempted" if (i["key"], e) not in attempted else "its add failed")
                        for i, c in reads for e in c["value"]
                        if (i["key"], e) not in attempted or (i["key"], e) in failed)
    stale, violations = 0, 0
    for i, c in reads:
        if i.get("final"):
            continue
        misses = [(e, ac) for (k, e), (_, ac) in acked.items()
                  if k == i["key"] and ac["index"] < i["index"] and e not in c["value"]]
        if misses:
            stale += 1
            if c.get("quorum") == "strict":
                violations += min(3, sum(1 for _, ac in misses if ac.get("quorum") == "strict"))
    opts = test.get("options") or {}
    overlapping = opts.get("r", 2) + opts.get("w", 2) > opts.get("n", 3)
    latencies = []
    for (key, e), (ai, ac) in acked.items():
        rs = sorted(((i, c) for i, c in reads if i["key"] == key and c["time"] >= ai["time"]),
                    key=lambda ic: (ic[0]["time"], ic[1]["index"]))
        misses = [n for n, (_, c) in enumerate(rs) if e not in c["value"]]
        after = misses[-1] + 1 if misses else 0
        if after < len(rs):
            latencies.append((rs[after][0]["time"] - ac["time"]) / 1e9)
    bad = bool(lost or unconverged or unexpected or (violations and overlapping))
    return {"valid": False if bad else ("unknown" if unknown_keys else True), "lost": lost,
            "unconverged": unconverged, "unexpected": unexpected, "stale": stale, "violations": violations,
            "recovered": recovered, "acked": len(acked), "attempted": len(attempted),
            "latencies": sorted(latencies), "overlapping": overlapping}


@SETTINGS
@given(set_histories())
def test_set_checker_matches_the_oracle(case: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    history, test = case
    want = oracle(history, test)
    got = kv_set.check(history, test)
    assert got["valid"] == want["valid"], (got, history)
    assert {(x["key"], x["element"]) for x in got["lost"]} == want["lost"]
    assert got["lost_count"] == len(want["lost"])
    assert {(x["key"], x["element"], tuple(sorted(x["missing_on"]))) for x in got["not_converged"]} == \
        want["unconverged"]
    assert sorted((x["read_index"], x["element"], x["why"]) for x in got["unexpected"]) == want["unexpected"]
    assert got["stale_reads"] == want["stale"]
    assert got["quorum_violation_count"] == want["violations"]
    assert (got["recovered"], got["acknowledged"], got["attempted"]) == \
        (want["recovered"], want["acked"], want["attempted"])
    assert sorted(got["stable_latencies_s"]) == [round(x, 6) for x in want["latencies"]]
    assert got["stable_latency_s"]["count"] == len(want["latencies"])
    if want["latencies"]:
        assert got["stable_latency_s"]["max"] == max(want["latencies"])
    summary = got["summary"]
    assert summary.endswith(f"{want['stale']} stale reads")
    assert ("acknowledged adds lost" in summary) == bool(want["lost"])
    assert ("missing from some final reads" in summary) == bool(want["unconverged"])
    assert ("never (successfully) added" in summary) == bool(want["unexpected"])
    assert ("strict-quorum reads missed" in summary) == bool(want["violations"] and want["overlapping"])
    for x in got["lost"]:
        assert set(x) == {"key", "element", "add_index"}
    for x in got["quorum_violations"]:
        assert set(x) == {"key", "element", "add_index", "read_index"}


# ---------------------------------------------------------------------------------------------------------------
# convergence: the replicas' final dumps against the rules, recomputed over every key and held dot

MEMBERS = ["n1", "n2", "n3", "n4", "n5"]


@st.composite
def dump_histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from systems.kv.ring import Ring  # the system's own ring: an independent oracle for the checker's reference

    members = draw(st.sampled_from([MEMBERS[:3], MEMBERS[:4], MEMBERS]))
    n = draw(st.integers(2, 4))
    vnodes = draw(st.sampled_from([4, 8, 32]))
    dot_pool = [["n1", 1], ["n1", 2], ["n2", 1]]
    history: list[dict[str, Any]] = []
    for p, node in enumerate(members):
        if draw(st.integers(0, 7)) == 0:
            continue  # no final dump from this node at all
        outcome = draw(st.sampled_from(["ok"] * 6 + ["fail", "info"]))
        keys = {}
        for key in draw(st.sets(st.sampled_from(["a", "b", "c"]))):
            dots = draw(st.lists(st.sampled_from(dot_pool), max_size=2, unique_by=tuple))
            clock = {d[0]: draw(st.integers(d[1], 3)) for d in dots}
            keys[key] = {"dots": dots, "values": [f"v{c}" for _, c in dots], "clock": clock}
            pref = Ring.of(members, vnodes).preference_list(key, n)
            choice = draw(st.integers(0, 5))
            if choice == 0:
                keys[key]["pref"] = pref[::-1]  # placed by other rules than the ring's
            elif choice < 4:
                keys[key]["pref"] = pref
        value: dict[str, Any] = {"node": node, "keys": keys,
                                 "members": members if draw(st.integers(0, 6)) else members[:-1],
                                 "held": {k: [draw(st.sampled_from([["n1", 2], ["n3", 1]]))]
                                          for k in draw(st.sets(st.sampled_from(["a", "b"]), max_size=1))},
                                 "hints": draw(st.sampled_from([0, 0, 2]))}
        if draw(st.integers(0, 4)):
            value["n"] = n  # else the checker's default, 3
        if draw(st.integers(0, 4)):
            value["vnodes"] = vnodes  # else 32
        final = {"final": True} if draw(st.integers(0, 8)) else {}
        history.append({"process": p, "type": "invoke", "f": "dump", "value": None, "node": node, **final})
        history.append({"process": p, "type": outcome, "f": "dump", "node": node, **final,
                        "value": value if outcome == "ok" else None})
    for i, op in enumerate(history):
        op["index"] = i
    return history, {"options": {"vnodes": vnodes}}  # what the nodes were configured with


def convergence_oracle(history: list[dict[str, Any]], test: dict[str, Any]) -> dict[str, Any]:
    from systems.kv.ring import Ring

    finals = [(history[i], history[i + 1]) for i in range(0, len(history), 2) if history[i].get("final")]
    dumps = {inv["node"]: c["value"] for inv, c in finals if c["type"] == "ok"}
    failed = sorted(inv["node"] for inv, c in finals if c["type"] != "ok")
    if not dumps:
        return {"valid": "unknown", "failed": failed}
    views: dict[tuple[str, ...], int] = {}
    for d in dumps.values():
        views[tuple(sorted(d["members"]))] = views.get(tuple(sorted(d["members"])), 0) + 1
    members = max(views, key=lambda v: (views[v], -list(views).index(v)))
    first = next(iter(dumps.values()))
    n, vnodes = first.get("n", 3), first.get("vnodes") or test["options"]["vnodes"]
    ring = Ring.of(list(members), vnodes)
    keys = sorted({k for d in dumps.values() for k in d["keys"]})
    divergent = []
    for key in keys:
        seen = {repr(sorted(map(tuple, dumps[r]["keys"][key]["dots"])) if key in dumps[r]["keys"] else None)
                for r in ring.preference_list(key, n) if r in dumps}
        if len(seen) > 1:
            divergent.append(key)
    undelivered = []
    for holder, d in dumps.items():
        for key, dots in d["held"].items():
            for node, counter in dots:
                missing = sorted(r for r in ring.preference_list(key, n) if r in dumps
                                 and dumps[r]["keys"].get(key, {}).get("clock", {}).get(node, 0) < counter)
                if missing:
                    undelivered.append((key, node, counter, holder, tuple(missing)))
    misplaced = sorted((key, node) for node, d in dumps.items() for key, e in d["keys"].items()
                       if "pref" in e and e["pref"] != ring.preference_list(key, n)) if len(views) == 1 else []
    valid: Any = not divergent and len(views) == 1 and not undelivered and not misplaced
    if valid and failed:
        valid = "unknown"
    return {"valid": valid, "failed": failed, "divergent": divergent, "undelivered": sorted(undelivered),
            "misplaced": misplaced,
            "members": list(members), "keys": len(keys), "views": len(views),
            "hints": {k: d["hints"] for k, d in dumps.items() if d["hints"]}}


@settings(SETTINGS, max_examples=max(10, SETTINGS.max_examples // 2))
@given(dump_histories())
def test_convergence_checker_matches_the_oracle(case: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    from checkers import kv_convergence

    history, test = case
    want = convergence_oracle(history, test)
    got = kv_convergence.check(history, test)
    assert got["valid"] == want["valid"], (got, history)
    assert sorted(got["failed_dumps"]) == want["failed"]
    if "divergent" not in want:
        assert got["summary"] == "no final dump of the replicas"
        return
    assert [d["key"] for d in got["divergent"]] == want["divergent"]
    assert sorted((u["key"], *u["dot"], u["held_by"], tuple(sorted(u["missing_on"]))) for u in got["undelivered"]) \
        == want["undelivered"]
    assert (got["members"], got["keys"], len(got["ring_views"])) == (want["members"], want["keys"], want["views"])
    assert got["pending_hints"] == want["hints"]
    assert sorted((m["key"], m["node"]) for m in got["misplaced"]) == want["misplaced"]
    for d in got["divergent"]:
        assert set(d) == {"key", "replicas", "dots"} and set(d["replicas"]) == set(d["dots"])
        for node, dots in d["dots"].items():
            entry = next(c for i, c in enumerate(history) if i % 2 and c["node"] == node
                         and c.get("final") and c["type"] == "ok")["value"]["keys"].get(d["key"])
            assert d["replicas"][node] == (entry["values"] if entry else None)
            assert dots == (sorted(map(tuple, entry["dots"])) if entry else None)
    summary = got["summary"]
    assert ("differ between their replicas" in summary) == bool(want["divergent"])
    assert ("hinted handoff did not deliver" in summary) == bool(want["undelivered"] and not want["divergent"])
    assert ("placed on other nodes than the ring" in summary) == \
        bool(want["misplaced"] and not want["divergent"] and not want["undelivered"])
    assert ("disagree on the ring members" in summary) == \
        bool(want["views"] > 1 and not want["divergent"] and not want["undelivered"])
    assert ("no final dump from" in summary) == bool(want["failed"])
    assert ("hints still pending on" in summary) == bool(want["hints"])
    if want["valid"] is not False:
        assert summary.startswith(f"all replicas of {want['keys']} keys hold the same siblings")
    load = kv_convergence.check_load(history, test)
    first = next(c for i, c in enumerate(history) if i % 2 and c.get("final") and c["type"] == "ok")["value"]
    assert load["valid"] is True and load["vnodes"] == (first.get("vnodes") or test["options"]["vnodes"])
    assert sorted(load["shares"]) == want["members"]
    from statistics import pstdev

    from systems.kv.ring import Ring

    shares = Ring.of(want["members"], load["vnodes"]).shares()
    assert load["shares"] == {k: round(v, 6) for k, v in sorted(shares.items())}
    assert load["share_ideal"] == round(1 / len(want["members"]), 6)
    assert load["share_std_dev"] == round(pstdev(shares.values()), 6)
    counts = {inv["node"]: len(c["value"]["keys"]) for inv, c in zip(history[::2], history[1::2], strict=True)
              if inv.get("final") and c["type"] == "ok"}
    assert load["keys_per_node"] == dict(sorted(counts.items()))
    assert load["keys_std_dev"] == round(pstdev(counts.values()), 6)
    worst = max(load["shares"].items(), key=lambda kv: kv[1])
    assert load["summary"] == (f"{len(want['members'])} members x {load['vnodes']} vnodes: hash-space share std dev "
                               f"{load['share_std_dev']:.4f} (ideal share {load['share_ideal']}); "
                               f"largest {worst[0]} {worst[1]:.3f}")
    assert load["kind"] == "kv_convergence"


def test_load_without_dumps_is_unknown() -> None:
    from checkers import kv_convergence

    assert kv_convergence.check_load([], {}) == {"valid": "unknown", "summary": "no final dump of the replicas"}
