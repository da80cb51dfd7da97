"""The Elle-like checker against brute force, on random small histories.

Brute force decides serializability and strict serializability of a history
of at most 7 transactions exactly: it tries every order of the committed
txns together with every choice of which info txns happened (failed ones did
not), replays each order serially (a list starts empty, a register null) and
asks whether every committed read returns what the replay gives it; for
strict serializability the order must also respect real time (a txn that
completed before another was invoked comes first).

The checker must agree in the direction that matters for trust:
- when brute force finds an order, the checker reports no anomaly: its
  verdict is True (or "unknown" only because no txn depends on another);
- when brute force finds none, the checker never says True: it names an
  anomaly (False) or says "unknown".

Histories come from a simulated store that runs each txn atomically at some
instant (inside its real-time interval, or anywhere, to get serializable but
not strict histories), with info txns that took effect or not, failed ones
that did not, and sometimes one read corrupted (an element dropped, added or
moved, a stale or foreign value) so that many histories are not serializable.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.elle import check
from checkers.elle.graph import ALL, NAMES, RW, WR, WW, DepGraph, sccs

KEYS = ("x", "y")


@st.composite
def histories(draw: Any, kind: str) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 7))
    counter = 0
    txns = []
    for _ in range(n):
        mops = []
        for _ in range(draw(st.integers(1, 3))):
            k = draw(st.sampled_from(KEYS))
            if draw(st.booleans()):
                counter += 1
                mops.append(["append" if kind == "list-append" else "w", k, counter])
            else:
                mops.append(["r", k, None])
        fate = draw(st.sampled_from(["ok"] * 5 + ["info", "info", "fail"]))
        start = draw(st.integers(0, 20))
        end = start + draw(st.integers(1, 12))
        txns.append({"mops": mops, "fate": fate, "start": start, "end": end})
    strict = draw(st.booleans())
    # When each txn takes effect (info txns: maybe never; failed ones: never).
    for t in txns:
        if t["fate"] == "fail" or (t["fate"] == "info" and draw(st.booleans())):
            t["at"] = None
        elif strict:
            t["at"] = draw(st.integers(t["start"], t["end"])) + draw(st.floats(0, 0.9))
        else:
            t["at"] = draw(st.floats(0, 40))
    db: dict[str, Any] = {}
    for t in sorted((t for t in txns if t["at"] is not None), key=lambda t: t["at"]):
        out = []
        for f, k, v in t["mops"]:
            if f == "append":
                db[k] = [*db.get(k, []), v]
            elif f == "w":
                db[k] = v
            else:
                v = list(db.get(k, [])) if kind == "list-append" else db.get(k)
            out.append([f, k, v])
        t["result"] = out
    oks = [t for t in txns if t["fate"] == "ok"]
    if oks and draw(st.integers(0, 2)) == 0:
        _corrupt(draw, draw(st.sampled_from(oks)), kind, counter)
    events = []
    for p, t in enumerate(txns):
        events.append((t["start"], 0, p, "invoke", [[f, k, None if f == "r" else v] for f, k, v in t["mops"]]))
        if t["fate"] == "ok":
            events.append((t["end"], 1, p, "ok", t["result"]))
        else:
            events.append((t["end"], 1, p, t["fate"], [[f, k, None if f == "r" else v] for f, k, v in t["mops"]]))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return [{"index": i, "time": e[0], "process": e[2], "type": e[3], "f": "txn", "value": e[4]}
            for i, e in enumerate(events)]


def _corrupt(draw: Any, t: dict[str, Any], kind: str, counter: int) -> None:
    reads = [i for i, m in enumerate(t["result"]) if m[0] == "r"]
    if not reads:
        return
    i = draw(st.sampled_from(reads))
    f, k, v = t["result"][i]
    if kind == "list-append":
        how = draw(st.sampled_from(["drop-last", "drop-first", "extra", "swap", "empty"]))
        v = list(v)
        if how == "drop-last" and v:
            v.pop()
        elif how == "drop-first" and v:
            v.pop(0)
        elif how == "extra":
            v.append(draw(st.integers(1, counter + 1)))
        elif how == "swap" and len(v) > 1:
            v[0], v[-1] = v[-1], v[0]
        else:
            v = []
    else:
        v = draw(st.sampled_from([None, *range(1, counter + 2)]))
    t["result"][i] = [f, k, v]


def brute_force(history: list[dict[str, Any]], kind: str, strict: bool) -> bool:
    """Is there a serial order (respecting real time if strict) of the txns that happened, replaying every read?"""
    invoked: dict[int, dict[str, Any]] = {}
    txns: list[dict[str, Any]] = []
    for op in history:
        if op["type"] == "invoke":
            invoked[op["process"]] = {"start": op["index"], "mops": op["value"]}
        else:
            t = invoked.pop(op["process"])
            t.update(type=op["type"], end=op["index"] if op["type"] == "ok" else None,
                     mops=op["value"] if op["type"] == "ok" else t["mops"])
            txns.append(t)
    txns += [{**t, "type": "info", "end": None} for t in invoked.values()]
    ok = [t for t in txns if t["type"] == "ok"]
    info = [t for t in txns if t["type"] == "info"]
    for mask in range(1 << len(info)):
        chosen = ok + [t for i, t in enumerate(info) if mask >> i & 1]
        if _orderable(chosen, kind, strict):
            return True
    return False


def _orderable(txns: list[dict[str, Any]], kind: str, strict: bool) -> bool:
    n = len(txns)

    def before(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return a["end"] is not None and a["end"] < b["start"]

    def run(t: dict[str, Any], db: dict[str, Any]) -> dict[str, Any] | None:
        db = dict(db)
        for f, k, v in t["mops"]:
            if f == "append":
                db[k] = (*db.get(k, ()), v)
            elif f == "w":
                db[k] = v
            elif t["type"] == "ok":
                cur = list(db.get(k, ())) if kind == "list-append" else db.get(k)
                if cur != (v if v is not None or kind != "list-append" else []):
                    return None
        return db

    def dfs(placed: list[int], db: dict[str, Any]) -> bool:
        if len(placed) == n:
            return True
        for i in range(n):
            if i in placed:
                continue
            if strict and any(before(txns[j], txns[i]) for j in range(n) if j not in placed and j != i):
                continue
            nxt = run(txns[i], db)
            if nxt is not None and dfs([*placed, i], nxt):
                return True
        return False

    return dfs([], {})


def _agree(history: list[dict[str, Any]], kind: str) -> None:
    for model, strict in (("serializable", False), ("strict-serializable", True)):
        r = check(history, kind, consistency=model)
        assert "error" not in r, r["error"]
        possible = brute_force(history, kind, strict)
        if possible:
            assert r["valid"] is not False, (model, r["summary"], history)
            assert r["valid"] is True or r["anomaly_types"] == ["empty-transaction-graph"], (model, r, history)
        else:
            assert r["valid"] is not True, (model, r["summary"], history)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories("list-append"))
def test_list_append_agrees_with_brute_force(history: list[dict[str, Any]]) -> None:
    _agree(history, "list-append")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories("rw-register"))
def test_rw_register_agrees_with_brute_force(history: list[dict[str, Any]]) -> None:
    _agree(history, "rw-register")


def test_brute_force_itself_rejects_a_stale_read_and_accepts_its_fix() -> None:
    h = [
        {"index": 0, "process": 0, "type": "invoke", "f": "txn", "value": [["append", "x", 1]]},
        {"index": 1, "process": 0, "type": "ok", "f": "txn", "value": [["append", "x", 1]]},
        {"index": 2, "process": 1, "type": "invoke", "f": "txn", "value": [["r", "x", None]]},
        {"index": 3, "process": 1, "type": "ok", "f": "txn", "value": [["r", "x", []]]},
    ]
    assert brute_force(h, "list-append", strict=False) and not brute_force(h, "list-append", strict=True)
    h[3]["value"] = [["r", "x", [1]]]
    assert brute_force(h, "list-append", strict=True)


# --- the dependency graph against networkx ------------------------------------------------------------

edge_lists = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7), st.sampled_from(sorted(NAMES))), max_size=20)


@settings(max_examples=300, deadline=None)
@given(edge_lists, st.permutations(range(8)), st.sampled_from([WW, WW | WR, ALL]))
def test_components_agree_with_networkx(edges: list[tuple[int, int, int]], roots: list[int], mask: int) -> None:
    """Non-trivial strongly connected components of the mask's projection, whatever order the roots come in."""
    g = DepGraph(8)
    nxg = nx.DiGraph()
    nxg.add_nodes_from(range(8))
    for a, b, rel in edges:
        g.link(a, b, rel)
        if rel & mask and a != b:
            nxg.add_edge(a, b)
    want = sorted(sorted(c) for c in nx.strongly_connected_components(nxg) if len(c) > 1)
    assert sccs(roots, g.successors(mask)) == want
    members = set(range(0, 8, 2)) | {1}
    want_in = sorted(sorted(c) for c in nx.strongly_connected_components(nxg.subgraph(members)) if len(c) > 1)
    assert sccs(sorted(members), g.successors(mask, members)) == want_in


def test_a_component_is_found_after_roots_already_visited() -> None:
    succ = {0: [1], 1: [], 2: [3], 3: [2]}
    assert sccs([0, 1, 2, 3], lambda u: succ[u]) == [[2, 3]]
    assert sccs([0, 1], lambda u: [u]) == [[0], [1]]  # a self-loop makes a component of one


def test_relation_counts_count_each_edge_once_per_relation() -> None:
    g = DepGraph(3)
    g.link(0, 1, WW)
    g.link(0, 1, WR)
    g.link(0, 1, WW)  # already there
    g.link(1, 2, RW)
    g.link(1, 2, WW)
    g.link(2, 2, RW)  # self-edges are never stored
    assert g.rel_counts() == {"ww": 2, "wr": 1, "rw": 1, "process": 0, "realtime": 0}
    assert g.edge_count() == 2
