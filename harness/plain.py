"""Plain words for a report: what an anomaly means, what an op did, why one op precedes another.

Rules this module keeps:

- Every op is named one way: "op N", N being the history index of its
  invocation (the line of history.jsonl, counted from 0). Elle's "T383" is
  op 383; the linearizability checker's "op 706" is op 706.
- Times are seconds since the test began, two decimals ("21.67 s").
- `anomaly_sentence(name)` is one sentence a person without the theory can
  follow, for every anomaly the checkers name (Adya's and Elle's, with their
  -process and -realtime variants); an unknown name gets a neutral sentence,
  never an error.
- `step_words` reads Elle's structured steps (from, to, rel, why), not its
  prose, so the report can number ops its own way; a step it cannot read
  falls back to the checker's own text.
- Pure functions; no HTML (the caller escapes).
"""

from __future__ import annotations

import re
from typing import Any

from base.history import Op

NS = 1e9

BASE_SENTENCES = {
    "G0": "Writes were ordered in a loop: each transaction wrote after another one in a cycle, so no order of "
    "them explains the final values (dirty write).",
    "G1a": "A transaction read a value written by a transaction that failed (aborted read).",
    "G1b": "A transaction read a value that its writer replaced before it finished (intermediate read).",
    "G1c": "Transactions read each other's writes in a loop: each saw something the next one wrote, so none of "
    "them can have come first (circular information flow).",
    "G-single": "A transaction saw the effects of some transactions but missed a write that had to come before "
    "them: it read an older state than it should have (read skew).",
    "G-nonadjacent": "Several transactions each missed a write that had to come before them: they read older "
    "states than they should have, and no order explains all the reads.",
    "G2-item": "Transactions each missed the other's write, as if each ran alone: no order of them explains what "
    "they read (write skew).",
    "internal": "A transaction's read disagrees with its own earlier writes.",
    "duplicate-elements": "A value that was appended once appears twice in a list.",
    "dirty-update": "A transaction built on a write of a transaction that failed (it appended after an aborted "
    "write).",
    "future-read": "A transaction read a value that was only written later, as if it saw the future.",
    "no-serial-order": "No one-at-a-time order of the transactions explains what they all read, although no "
    "single loop of dependencies could be named.",
    "incompatible-order": "Two reads of one key saw orders of appends that cannot both be true.",
    "garbage-read": "A read returned a value that no operation ever wrote.",
    "cyclic-versions": "The versions of a key were ordered in a loop.",
    "lost-update": "Two transactions read the same value and both wrote over it: one update was lost.",
}
SUFFIX_SENTENCES = {
    "realtime": "Counting real time: a transaction that started after another had finished did not see its "
    "effects, so someone read stale data.",
    "process": "Counting each client's own order: a client did not see the effects of its own earlier transaction.",
}


def anomaly_sentence(name: str) -> str:
    """One plain sentence (or two short ones) for an anomaly name such as "G-single-realtime"."""
    base, suffix = name, ""
    for s in SUFFIX_SENTENCES:
        if name.endswith(f"-{s}"):
            base, suffix = name[: -len(s) - 1], s
    base = base.removesuffix("-item") if base.endswith("-item") and base != "G2-item" else base
    if base == "G-single" and suffix == "realtime":
        return ("A transaction saw the data as it was before another transaction that had already finished: "
                "a stale read.")
    text = BASE_SENTENCES.get(base, f"The checker found a {name} anomaly: no order of the transactions explains "
                                    "what they observed.")
    return f"{text} {SUFFIX_SENTENCES[suffix]}" if suffix else text


def linearizability_sentence(key: str, state: Any, stuck: list[dict[str, Any]]) -> str:
    """Why a key is not linearizable, in one sentence."""
    what = " or ".join(str(s.get("description", "an op")) for s in stuck[:3]) or "the next operation"
    return (f"No order of the operations on key {key} explains what they returned: the operations that can be "
            f"put in order leave it at {_v(state)}, and {what} cannot come next, since it returned what the "
            "register did not hold (a stale or lost value).")


def seconds(ns: Any) -> str:
    return f"{ns / NS:.2f} s" if isinstance(ns, int | float) else "?"


def _v(x: Any) -> str:
    return "nothing" if x is None else str(x)


def _list(xs: Any, keep: int = 3) -> str:
    if not isinstance(xs, list):
        return _v(xs)
    if len(xs) <= keep:
        return "[" + ", ".join(map(str, xs)) + "]"
    return "[…, " + ", ".join(map(str, xs[-keep:])) + f"] ({len(xs)} items)"


def mops_words(mops: Any) -> str:
    """A transaction's micro-ops, short: "r t0 → […, 209, 212] (37 items); append t6 224"."""
    if not isinstance(mops, list):
        return str(mops)
    out = []
    for m in mops:
        if isinstance(m, list | tuple) and len(m) == 3:
            f, k, v = m
            out.append(f"r {k} → {_list(v)}" if f == "r" else f"{f} {k} {_v(v)}")
        else:
            out.append(str(m))
    return "; ".join(out)


def op_words(invoke: Op, complete: Op | None) -> str:
    """What an op did: "read r3 → 3", "write r3 ← 2", "cas r3 2→1 failed", "txn r t0 → […]"."""
    f, key = invoke.get("f"), invoke.get("key")
    done = complete if complete is not None else {"type": "info"}
    outcome = {"ok": "", "fail": " (failed)", "info": " (outcome unknown)"}.get(str(done.get("type")), "")
    k = f" {key}" if key is not None else ""
    v = done.get("value", invoke.get("value"))
    if f == "read":
        return f"read{k} → {_list(v)}" + ("" if done.get("type") == "ok" else outcome)
    if f == "write":
        return f"write{k} ← {_v(invoke.get('value'))}{outcome}"
    if f == "cas" and isinstance(invoke.get("value"), list) and len(invoke["value"]) == 2:
        a, b = invoke["value"]
        return f"cas{k} {_v(a)}→{_v(b)}{outcome}"
    if f == "txn":
        return f"txn {mops_words(v)}{outcome}"
    return f"{f}{k} {_v(invoke.get('value'))}{outcome}"


def op_name(index: Any) -> str:
    return f"op {index}"


TXN_NAME = re.compile(r"^T(\d+)$")


def txn_index(name: Any) -> int | None:
    """Elle's txn name "T383" -> 383 (the op's invocation index); None if it is not one."""
    m = TXN_NAME.match(str(name))
    return int(m.group(1)) if m else None


def step_words(step: dict[str, Any], times: dict[int, tuple[Any, Any]], list_append: bool) -> str:
    """Why Elle orders step["from"] before step["to"], with ops named the report's way.

    `times` maps an op's invocation index to (invocation time, completion time) in ns."""
    a, b = txn_index(step.get("from")), txn_index(step.get("to"))
    rel, why = step.get("rel"), step.get("why") or []
    if a is None or b is None:
        return str(step.get("text", ""))
    A, B = op_name(a), op_name(b)
    if rel == "ww" and len(why) == 3:
        k, v1, v2 = why
        if list_append:
            return f"{A} appended {_v(v1)} to {k}, and {B} appended {_v(v2)} right after it"
        return f"{A} wrote {_v(v1)} to {k}, and {B} later overwrote it with {_v(v2)}"
    if rel == "wr" and len(why) == 2:
        k, v = why
        return f"{B} read {A}'s {'append' if list_append else 'write'} of {_v(v)} to {k}"
    if rel == "rw" and len(why) == 3:
        k, seen, nxt = why
        if list_append:
            saw = "an empty list" if seen is None else f"the list end at {_v(seen)}"
            return f"{A} read {k} without {B}'s append of {_v(nxt)} (it saw {saw}), so {A} came before {B}"
        return f"{A} read {_v(seen)} from {k} before {B} wrote {_v(nxt)} over it"
    if rel == "process":
        return f"the same client ran {A} before {B}"
    if rel == "realtime":
        done, start = times.get(a, (None, None))[1], times.get(b, (None, None))[0]
        return f"{A} had finished (at {seconds(done)}) before {B} started (at {seconds(start)})"
    return str(step.get("text", f"{A} → {B} ({rel})"))
