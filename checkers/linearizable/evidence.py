"""Evidence: what a result says about each part, in data and in prose.

Rules: an op is named by its history index and process, with a one-line
description from the model; for a part that is not linearizable the result
carries the longest linearizable prefix found (its last MAX_PREFIX_OPS ops),
the model state after it, the ops that could come next and why each cannot
(or leads nowhere), and the ops to draw around that point (at most
MAX_DRAWN_OPS). Values appear as plain JSON, and states and descriptions
print them as JSON (an object as {"a": 1}, not as Python tuples). Nothing here
decides a verdict.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from checkers.linearizable.models import Model, Operation
from checkers.linearizable.parse import JsonDict, JsonList, json_value, plain

if TYPE_CHECKING:
    from checkers.linearizable.portfolio import Portfolio

WINDOW_PREFIX_OPS = 12
MAX_DRAWN_OPS = 300
MAX_PREFIX_OPS = 100
"""Only the last ops of a long prefix are listed; `prefix_start` numbers the first one listed."""


def key_name(key: Any) -> str:
    if isinstance(key, str):
        return key
    try:
        return json.dumps(key)
    except TypeError:
        return repr(key)


def op_ref(model: Model, op: Operation) -> dict[str, Any]:
    """How an operation appears in results: enough to find it in the history and to draw it."""
    return {
        "index": op.index, "complete_index": op.ret_index, "process": op.process, "f": op.f,
        "value": plain(op.out if op.f in model.read_fs and op.f != "cas-failed" else op.arg), "type": op.status,
        "time": op.time, "complete_time": op.ret_time, "call": op.call, "ret": op.ret,
        "description": model.describe(op),
    }


def describe_state(model: Model, state: Any) -> str:
    """The model's description of a state, with any value built by the model (a tuple) printed as JSON."""
    if isinstance(state, tuple) and not isinstance(state, JsonList | JsonDict):
        state = JsonList(json_value(v) for v in state)
    return model.describe_state(state)


def part_result(model: Model, s: Portfolio, valid: Any, reason: str | None) -> dict[str, Any]:
    pr = s.progress
    out: dict[str, Any] = {
        "valid": valid, "ops": len(s.ops), "steps": pr.steps, "cache_entries": pr.cache_entries,
        "longest_prefix": len(pr.best_prefix),
    }
    if s.decided_by:
        out["decided_by"] = s.decided_by
    if reason:
        out["reason"] = reason
    if valid is False or (valid is not True and s.progress.steps > 0):
        out.update(_evidence(model, s, valid))
    return out


def _evidence(model: Model, s: Portfolio, valid: Any) -> dict[str, Any]:
    pr = s.progress
    prefix = pr.best_prefix
    stuck = s.stuck_ops() if valid is False else []
    stuck_refs = []
    dead_ends = set()
    for i in stuck:
        op = s.ops[i]
        legal = model.step(pr.best_state, op)[0]
        if legal:
            dead_ends.add(i)
        ref = op_ref(model, op)
        ref["legal_here"] = legal
        ref["why"] = (
            "could take effect here, but no continuation after it is linearizable" if legal
            else f"cannot take effect when the state is {describe_state(model, pr.best_state)}"
        )
        stuck_refs.append(ref)
    stuck_refs.sort(key=lambda ref: ref["legal_here"])  # the ops that cannot take effect first
    shown = set(prefix[-WINDOW_PREFIX_OPS:]) | set(stuck)
    window = _window(s.ops, shown)
    return {
        "prefix": [op_ref(model, s.ops[i]) for i in prefix[-MAX_PREFIX_OPS:]],
        "prefix_start": max(1, len(prefix) - MAX_PREFIX_OPS + 1),
        "state": describe_state(model, pr.best_state),
        "stuck": stuck_refs,
        "drawn": [dict(op_ref(model, s.ops[i]), role=_role(i, set(prefix), set(stuck), dead_ends)) for i in window],
    }


def _role(i: int, prefix: set[int], stuck: set[int], dead_ends: set[int]) -> str:
    if i in dead_ends:
        return "dead-end"
    if i in stuck:
        return "stuck"
    if i in prefix:
        return "prefix"
    return "other"


def _window(ops: list[Operation], shown: set[int]) -> list[int]:
    if not shown:
        return list(range(min(len(ops), MAX_DRAWN_OPS)))
    end = max((o.ret or o.call) for o in ops) + 1
    lo = min(ops[i].call for i in shown)
    hi = max(ops[i].ret if ops[i].ret is not None else ops[i].call for i in shown)
    inside = [i for i, o in enumerate(ops) if o.call <= hi and (o.ret if o.ret is not None else end) >= lo]
    keep = [i for i in inside if i in shown]
    rest = [i for i in inside if i not in shown][: max(0, MAX_DRAWN_OPS - len(keep))]
    return sorted(keep + rest, key=lambda i: ops[i].call)


def summary(valid: Any, keys: dict[str, dict[str, Any]], n_ops: int, numbering: str = "op") -> str:
    if valid is True:
        return f"linearizable: all {n_ops} ops in {len(keys)} key(s) have a legal order"
    if valid is False:
        name = next(k for k, r in keys.items() if r["valid"] is False)
        r = keys[name]
        bad = sum(1 for x in keys.values() if x["valid"] is False)
        head = f"not linearizable: {bad} of {len(keys)} key(s) fail. Key {name}: "
        head += (f"the longest linearizable prefix has {r['longest_prefix']} of {r['ops']} ops and leaves "
                 f"the state {r['state']}; ")
        blocked = [f"{ref['description']} by process {ref['process']} ({numbering} {ref['index']})"
                   for ref in r["stuck"] if not ref["legal_here"]]
        dead = [f"{ref['description']} ({numbering} {ref['index']})" for ref in r["stuck"] if ref["legal_here"]]
        if blocked:
            head += f"{'; '.join(blocked)} cannot take effect in that state"
        if dead:
            head += ("; " if blocked else "") + (
                f"{len(dead)} other op(s) could take effect there but every continuation fails: "
                + ", ".join(dead[:6]) + (f" and {len(dead) - 6} more" if len(dead) > 6 else ""))
        if not blocked and not dead:
            head += "no op can come next"
        return head + "."
    unk = [k for k, r in keys.items() if r["valid"] is not True]
    r = keys[unk[0]]
    return (f"unknown: {len(unk)} of {len(keys)} key(s) not decided; key {unk[0]}: {r.get('reason', '')} after "
            f"{r['steps']} steps (longest linearizable prefix {r['longest_prefix']} of {r['ops']} ops)")
