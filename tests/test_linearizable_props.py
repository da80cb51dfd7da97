"""Property tests: the checker against real sequential executions and an independent brute-force checker.

- A history made from a real sequential execution (each op's interval holds
  its linearization point; unknown outcomes did or did not take effect) is
  judged linearizable.
- With one read's value changed, the checker's verdict equals the brute
  force's, which tries every order of the ok ops and every subset of the
  unknown ones, with its own copy of the semantics.

Each property runs through the public API and through each search engine
alone (depth-first WGL and frontier JIT), in picluster, porcupine-etcd and
porcupine-kv semantics.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.linearizable import check_history, check_operations
from checkers.linearizable.jit import JitSearch
from checkers.linearizable.models import CasRegisterModel, make_model
from checkers.linearizable.parse import from_history, parse_porcupine_etcd
from checkers.linearizable.search import Search

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALUES = [0, 1, 2]

# ---------------------------------------------------------------------------------------------------------------
# brute force, with its own semantics


def _apply(model: str, state: Any, op: dict[str, Any]) -> tuple[bool, Any]:
    f, arg, out, known = op["f"], op["arg"], op["out"], op["status"] == "ok"
    if model == "kv":
        key = op["key"]
        cur = dict(state).get(key)
        if f == "get":
            return cur == out, state
        new = arg if f == "put" else [*(cur or []), arg]
        d = dict(state)
        d[key] = tuple(new) if isinstance(new, list) else new
        return True, tuple(sorted(d.items(), key=repr))
    if f == "read":
        return state == out, state
    if f == "write":
        return True, arg
    if f == "cas-failed":
        return state != arg[0], state
    a, b = arg
    if state == a:
        return True, b
    return (not known), state


def brute_force(model: str, ops: list[dict[str, Any]]) -> bool:
    """ops: dicts with f, key, arg, out, status ('ok'|'info'), call, ret (None for info)."""
    n = len(ops)
    must = [i for i in range(n) if ops[i]["status"] == "ok"]
    init: Any = () if model == "kv" else None

    def dfs(state: Any, done: frozenset[int]) -> bool:
        if all(i in done for i in must):
            return True
        for y in range(n):
            if y in done:
                continue
            if any(x not in done and ops[x]["ret"] is not None and ops[x]["ret"] < ops[y]["call"] for x in must):
                continue
            ok, nxt = _apply(model, state, ops[y])
            if ok and dfs(nxt, done | {y}):
                return True
        return False

    return dfs(init, frozenset())


# ---------------------------------------------------------------------------------------------------------------
# sequential executions turned into histories


@st.composite
def executions(draw: st.DrawFn, model: str, unknown_weight: int = 1, max_ops: int = 7) -> list[dict[str, Any]]:
    """A sequential execution: ops with distinct linearization points 10, 20, ... and intervals around them."""
    n = draw(st.integers(1, max_ops))
    keys = ["a", "b"] if model == "kv" else [None]
    state: dict[Any, Any] = {}
    ops = []
    for i in range(n):
        lin = 10 * (i + 1)
        key = draw(st.sampled_from(keys))
        if model == "kv":
            f = draw(st.sampled_from(["get", "put", "append", "append"]))
        else:
            f = draw(st.sampled_from(["read", "write", "cas"]))
        v = draw(st.sampled_from(VALUES))
        status = draw(st.sampled_from(["ok", "ok", "ok"] + ["info"] * unknown_weight))
        happened = status == "ok" or draw(st.booleans())
        cur = state.get(key)
        arg: Any = None
        out: Any = None
        if f in ("read", "get"):
            out = cur
            if status == "info":
                status = "ok"
        elif f in ("write", "put"):
            arg = v if f == "write" else [v]  # kv values are lists, so appends apply to them
            if happened:
                state[key] = arg
        elif f == "append":
            arg = v
            if happened:
                state[key] = [*(cur or []), v]
        else:  # cas
            arg = [draw(st.sampled_from([None, *VALUES])), v]
            if status == "ok" and cur != arg[0]:
                status = "fail"  # it did not swap: a definite failure
            elif happened and cur == arg[0]:
                state[key] = v
        call = lin - draw(st.integers(1, 35))
        ret = lin + draw(st.integers(1, 35))
        ops.append({"process": i, "f": f, "key": key, "arg": arg, "out": out, "status": status,
                    "call": call, "ret": ret, "happened": happened})
    return ops


def to_history(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    for op in ops:
        events.append((op["call"], 1, op, "invoke"))
        if op["status"] == "info" and op["ret"] % 3 == 0:
            continue  # sometimes no completion at all
        events.append((op["ret"], 0, op, op["status"]))
    events.sort(key=lambda e: (e[0], e[1]))
    history = []
    for i, (t, _, op, typ) in enumerate(events):
        value = op["arg"] if typ == "invoke" or op["f"] not in ("read", "get") else op["out"]
        if typ == "info":
            value = None
        h = {"index": i, "time": t, "process": op["process"], "type": typ, "f": op["f"], "value": value}
        if op["key"] is not None:
            h["key"] = op["key"]
        history.append(h)
    return history


def brute_ops(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The brute force's view of a picluster history, derived independently of checkers.linearizable.parse."""
    open_: dict[Any, dict[str, Any]] = {}
    out = []
    for pos, h in enumerate(history):
        if h["type"] == "invoke":
            open_[h["process"]] = {"f": h["f"], "key": h.get("key"), "arg": h["value"], "call": pos}
            continue
        inv = open_.pop(h["process"])
        if h["type"] == "fail" or (h["type"] == "info" and inv["f"] in ("read", "get")):
            continue
        known = h["type"] == "ok"
        out.append({**inv, "out": _freeze(h["value"]) if known else None, "status": "ok" if known else "info",
                    "ret": pos if known else None})
    for inv in open_.values():
        if inv["f"] not in ("read", "get"):
            out.append({**inv, "out": None, "status": "info", "ret": None})
    for o in out:
        o["arg"] = _freeze(o["arg"]) if o["f"] != "cas" else tuple(o["arg"])
    return out


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _mutations(history: list[dict[str, Any]], model: str) -> list[list[dict[str, Any]]]:
    out = []
    reads = [i for i, h in enumerate(history) if h["type"] == "ok" and h["f"] in ("read", "get")]
    for i in reads:
        old = history[i]["value"]
        if model == "kv":
            candidates: list[Any] = [None, [0], [1, 0], [*(old or []), 2], (old or [])[1:], list(reversed(old or []))]
        else:
            candidates = [None, *VALUES]
        for new in candidates:
            if new != old:
                h = [dict(x) for x in history]
                h[i]["value"] = new
                out.append(h)
    return out


def engine_verdict(history: list[dict[str, Any]], model: str, engine: str) -> Any:
    """One engine alone over every key: "check" (the public API), "dfs" or "jit"."""
    if engine == "check":
        return check_history(history, model)["valid"]
    m = make_model(model)
    verdicts = []
    for part in m.partition(from_history(history, m)).values():
        s = Search(m, part) if engine == "dfs" else JitSearch(m, part)
        verdicts.append(s.run(10**7))
    return False if False in verdicts else (True if all(v is True for v in verdicts) else "unknown")


@pytest.mark.parametrize("engine", ["dfs", "jit"])
@SETTINGS
@given(data=st.data())
def test_many_unknown_outcomes_match_brute_force(engine: str, data: st.DataObject) -> None:
    """Mostly unknown-outcome writes and cas ops: the dominance and subsumption rules at work."""
    ops = data.draw(executions("cas-register", unknown_weight=6, max_ops=8))
    history = to_history(ops)
    assert engine_verdict(history, "cas-register", engine) is True, history
    for h in _mutations(history, "cas-register")[:4]:
        assert engine_verdict(h, "cas-register", engine) is brute_force("cas-register", brute_ops(h)), h


@pytest.mark.parametrize("engine", ["check", "dfs", "jit"])
@pytest.mark.parametrize("model", ["cas-register", "kv"])
@SETTINGS
@given(data=st.data())
def test_executions_are_linearizable_and_mutations_match_brute_force(
        model: str, engine: str, data: st.DataObject) -> None:
    ops = data.draw(executions(model))
    history = to_history(ops)
    assert engine_verdict(history, model, engine) == expected(history, model, engine, True), history
    muts = _mutations(history, model)
    if muts:
        h = data.draw(st.sampled_from(muts))
        assert engine_verdict(h, model, engine) == expected(h, model, engine, brute_force(model, brute_ops(h))), h


def expected(history: list[dict[str, Any]], model: str, engine: str, verdict: bool) -> Any:
    """The public API says "unknown" when nothing is left to check (every op failed, or was a read of unknown
    outcome): an empty history proves nothing. The engines alone see no parts and pass."""
    if engine == "check" and not from_history(history, make_model(model)):
        return "unknown"
    return verdict


# ---------------------------------------------------------------------------------------------------------------
# Porcupine's etcd semantics: a failed cas is a definite "compare failed" that constrains the state


def to_etcd(ops: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Render as a porcupine-etcd log; return it with the brute force's view (fail cas -> cas-failed)."""
    events = []
    view = []
    for op in ops:
        events.append((op["call"], 1, op, "invoke"))
        events.append((op["ret"], 0, op, op["status"]))
    events.sort(key=lambda e: (e[0], e[1]))
    pos = {}
    lines = []

    def fmt(v: Any) -> str:
        if v is None:
            return "nil"
        if isinstance(v, list):
            return f"[{fmt(v[0])} {fmt(v[1])}]"
        return str(v)

    for n, (_, _, op, typ) in enumerate(events, start=1):
        pos[(id(op), typ == "invoke")] = n
        if typ == "invoke":
            v = op["arg"] if op["f"] != "read" else None
        elif typ == "info":
            v = ":timed-out"
        else:
            v = op["out"] if op["f"] == "read" else op["arg"]
        text = fmt(v) if v != ":timed-out" else v
        lines.append(f"INFO  jepsen.util - {op['process']}\t:{typ}\t:{op['f']}\t{text}")
    for op in ops:
        f = "cas-failed" if op["status"] == "fail" else op["f"]
        known = op["status"] in ("ok", "fail")
        arg = tuple(op["arg"]) if op["f"] == "cas" else op["arg"]
        view.append({"f": f, "key": None, "arg": arg, "out": op["out"] if known else None,
                     "status": "ok" if known else "info", "call": pos[(id(op), True)],
                     "ret": pos[(id(op), False)] if known else None})
    return "\n".join(lines), view


@SETTINGS
@given(st.data())
def test_porcupine_etcd_semantics_match_brute_force(data: st.DataObject) -> None:
    ops = data.draw(executions("cas-register"))
    # the etcd values are integers: no cas expecting nil
    for op in ops:
        if op["f"] == "cas" and op["arg"][0] is None:
            op["arg"][0] = 0
            op["status"] = "fail"  # keep it simple: it becomes a definite compare failure or no-op below
    ops = _replay(ops)
    text, view = to_etcd(ops)
    m = CasRegisterModel()
    assert check_operations(parse_porcupine_etcd(text, m), m)["valid"] is True, text
    reads = [o for o in ops if o["f"] == "read" and o["out"] is not None]
    if reads:
        victim = data.draw(st.sampled_from(reads))
        victim["out"] = data.draw(st.sampled_from([v for v in VALUES if v != victim["out"]]))
        text, view = to_etcd(ops)
        assert check_operations(parse_porcupine_etcd(text, m), m)["valid"] is brute_force("cas-register", view), text


def _replay(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recompute reads and cas outcomes along the linearization order after an edit (etcd: fail = compare failed)."""
    state = None
    for op in ops:  # ops are in linearization order
        if op["f"] == "read":
            op["out"] = state
        elif op["f"] == "write":
            if op["status"] == "ok" or op["happened"]:
                state = op["arg"]
        elif op["status"] == "info":
            if op["happened"] and state == op["arg"][0]:
                state = op["arg"][1]
        elif state == op["arg"][0]:
            op["status"] = "ok"
            state = op["arg"][1]
        else:
            op["status"] = "fail"
    return ops


# ---------------------------------------------------------------------------------------------------------------
# Porcupine's kv semantics: string values, append concatenates, keys start as ""


def _kv_strings(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rewrite a kv execution with string values (every op completes ok) and replay it for the gets."""
    state: dict[Any, str] = {}
    out = []
    for op in ops:  # in linearization order
        op = dict(op, status="ok")
        key = op["key"]
        if op["f"] == "put":
            op["arg"] = f"p{op['arg'][0]} "
            state[key] = op["arg"]
        elif op["f"] == "append":
            op["arg"] = f"x{op['arg']} "
            state[key] = state.get(key, "") + op["arg"]
        else:
            op["out"] = state.get(key, "")
        out.append(op)
    return out


def to_edn(ops: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    events = []
    for op in ops:
        events.append((op["call"], 1, op, "invoke"))
        events.append((op["ret"], 0, op, "ok"))
    events.sort(key=lambda e: (e[0], e[1]))
    lines, pos = [], {}
    for n, (_, _, op, typ) in enumerate(events, start=1):
        pos[(id(op), typ)] = n
        v = op["arg"] if op["f"] != "get" else (None if typ == "invoke" else op["out"])
        edn = "nil" if v is None else f'"{v}"'
        lines.append(f'{{:process {op["process"]}, :type :{typ}, :f :{op["f"]}, :key "{op["key"]}", :value {edn}}}')
    view = [{"f": op["f"], "key": op["key"], "arg": op["arg"], "out": op["out"], "status": "ok",
             "call": pos[(id(op), "invoke")], "ret": pos[(id(op), "ok")]} for op in ops]
    return "\n".join(lines), view


def brute_force_strings(ops: list[dict[str, Any]]) -> bool:
    """Per-key brute force with string concatenation (independent of the checker's models)."""
    for key in {o["key"] for o in ops}:
        part = [o for o in ops if o["key"] == key]

        def dfs(state: str, done: frozenset[int], part: list[dict[str, Any]] = part) -> bool:
            if len(done) == len(part):
                return True
            for y, op in enumerate(part):
                if y in done or any(x not in done and part[x]["ret"] < op["call"] for x in range(len(part))):
                    continue
                if op["f"] == "get":
                    if op["out"] == state and dfs(state, done | {y}):
                        return True
                elif dfs(op["arg"] if op["f"] == "put" else state + op["arg"], done | {y}):
                    return True
            return False

        if not dfs("", frozenset()):
            return False
    return True


@SETTINGS
@given(st.data())
def test_porcupine_kv_semantics_match_brute_force(data: st.DataObject) -> None:
    from checkers.linearizable.models import KvModel
    from checkers.linearizable.parse import parse_porcupine_kv

    ops = _kv_strings(data.draw(executions("kv")))
    text, view = to_edn(ops)
    m = KvModel(initial="")
    assert check_operations(parse_porcupine_kv(text, m), m)["valid"] is True, text
    gets = [o for o in ops if o["f"] == "get"]
    if gets:
        victim = data.draw(st.sampled_from(gets))
        old = victim["out"]
        pieces = old.split(" ")[:-1]
        choices = {"", old + "x9 ", " ".join(pieces[1:]) + (" " if pieces[1:] else ""),
                   " ".join(reversed(pieces)) + (" " if pieces else ""), "p0 x1 "} - {old}
        victim["out"] = data.draw(st.sampled_from(sorted(choices)))
        text, view = to_edn(ops)
        got = check_operations(parse_porcupine_kv(text, m), m)["valid"]
        assert got is brute_force_strings(view), text


def test_brute_force_rejects_a_stale_read() -> None:
    ops = [{"f": "write", "key": None, "arg": 1, "out": None, "status": "ok", "call": 0, "ret": 1},
           {"f": "read", "key": None, "arg": None, "out": None, "status": "ok", "call": 2, "ret": 3}]
    assert brute_force("cas-register", ops) is False
    ops[1]["out"] = 1
    assert brute_force("cas-register", ops) is True
