"""Check a whole history: split it into independent parts and search them all.

Rules:

- P-compositionality: the history is linearizable iff every part (key) is.
- Parts are searched interleaved in slices (growing from a few hundred
  steps), smallest part first, as if in parallel; with `stop_on_failure`
  (the default) the first part found not linearizable stops the others
  after at most `after_failure_steps` more steps each (check_history: a
  cheap AFTER_FAILURE_STEPS, so small keys still get their own verdict);
  those stopped are "unknown" (not finished): the verdict is already False.
- Budgets: one wall-clock time limit for the whole check, a memory limit
  on the memo caches (estimated from their sizes), and optionally a step
  limit per part (machine-independent). A part that cannot finish
  within them is "unknown" with the reason and how far it got: never a pass,
  never a hang.
- The verdict is False if any part is, else "unknown" if any part is, else True;
  a history with no operation to check is "unknown", never linearizable.
- Notes from reading the history (ops left out, a torn last line) are kept in
  "notes" and said in the summary; `numbering` ("op" or "line") says what
  the numbers in the summary and evidence count.
"""

from __future__ import annotations

import time
from typing import Any

from checkers.linearizable.evidence import WINDOW_PREFIX_OPS, key_name, part_result, summary
from checkers.linearizable.models import Model, Operation, make_model
from checkers.linearizable.parse import ParseError, from_history
from checkers.linearizable.portfolio import Portfolio

FIRST_SLICE_STEPS = 256
MAX_SLICE_STEPS = 16384
AFTER_FAILURE_STEPS = 20_000
"""check_history: how far the other keys go on once one fails (cheap ones still get their verdict)."""


def check_operations(
    ops: list[Operation],
    model: Model,
    *,
    time_limit_s: float = 60.0,
    memory_limit_mb: int = 1024,
    stop_on_failure: bool = True,
    after_failure_steps: int = 0,
    step_limit: int | None = None,
    notes: list[str] | None = None,
    numbering: str = "op",
) -> dict[str, Any]:
    """The linearizability verdict for ops already parsed for `model`.

    With `stop_on_failure`, once a part fails every other part gets at most
    `after_failure_steps` more steps (0: stop at once, as Porcupine does).
    `step_limit` bounds each part's search steps (a budget that does not
    depend on the machine's speed, for tests and reproducible reports).
    """
    started = time.monotonic()
    deadline = started + time_limit_s
    memory_limit = memory_limit_mb * 1024 * 1024
    parts = model.partition(ops)
    searches = {k: Portfolio(model, p) for k, p in parts.items()}
    verdicts: dict[Any, Any] = {}
    reasons: dict[Any, str] = {}
    caps: dict[Any, tuple[int, str]] = {}  # part -> (step cap, why)
    if step_limit is not None:
        caps = {k: (step_limit, f"step limit of {step_limit} reached") for k in searches}
    active = sorted(searches, key=lambda k: (len(parts[k]), key_name(k)))
    failed_first: Any = None
    slice_steps = FIRST_SLICE_STEPS
    while active:
        for k in list(active):
            cap = caps.get(k)
            budget = slice_steps if cap is None else min(slice_steps, cap[0] - searches[k].progress.steps)
            r = searches[k].run(budget) if budget > 0 else None
            if r is None and cap is not None and searches[k].progress.steps >= cap[0]:
                verdicts[k] = "unknown"
                reasons[k] = cap[1]
                active.remove(k)
            elif r is not None:
                verdicts[k] = r
                active.remove(k)
                if r is False and failed_first is None:
                    failed_first = k
                    if stop_on_failure:
                        why = f"not finished: stopped once key {key_name(k)} was found not linearizable"
                        for j in searches:
                            cap_j = searches[j].progress.steps + after_failure_steps
                            caps[j] = min(caps.get(j, (cap_j, why)), (cap_j, why))
                        break
            if time.monotonic() > deadline:
                break
        slice_steps = min(MAX_SLICE_STEPS, slice_steps * 2)
        if active and time.monotonic() > deadline:
            for k in active:
                verdicts[k] = "unknown"
                reasons[k] = f"time limit of {time_limit_s:g} s reached"
            active = []
        if active and sum(searches[k].memory_bytes() for k in active) > memory_limit:
            k = max(active, key=lambda k: searches[k].memory_bytes())
            verdicts[k] = "unknown"
            reasons[k] = (f"memory limit of {memory_limit_mb} MB reached "
                          f"(memo of {searches[k].progress.cache_entries} entries)")
            searches[k].drop_cache()
            active.remove(k)
    elapsed = time.monotonic() - started
    keys = {key_name(k): part_result(model, searches[k], verdicts[k], reasons.get(k)) for k in searches}
    valid = _merge(verdicts.values()) if ops else "unknown"
    failures = [name for name, r in keys.items() if r["valid"] is False]
    text = summary(valid, keys, len(ops), numbering) if ops else "unknown: no operations to check"
    if notes:
        text += " (" + "; ".join(notes) + ")"
    result = {
        "valid": valid,
        "model": model.name,
        "summary": text,
        "ops": len(ops),
        "numbering": numbering,
        "elapsed_s": round(elapsed, 6),
        "keys": keys,
        "failures": failures,
        "notes": list(notes or []),
    }
    if failures:
        first = keys[failures[0]]
        result["evidence"] = {
            "key": failures[0], "longest_prefix": first["longest_prefix"], "state": first["state"],
            "last_linearized": first["prefix"][-WINDOW_PREFIX_OPS:], "cannot_come_next": first["stuck"],
        }
    return result


def _merge(verdicts: Any) -> Any:
    vs = list(verdicts)
    if any(v is False for v in vs):
        return False
    if any(v is not True for v in vs):
        return "unknown"
    return True


def check_history(
    history: list[dict[str, Any]],
    model: str = "cas-register",
    *,
    time_limit_s: float = 60.0,
    memory_limit_mb: int = 1024,
) -> dict[str, Any]:
    """Check a picluster history (DESIGN.md format) against a named model."""
    m = make_model(model)
    notes: list[str] = []
    try:
        ops = from_history(history, m, notes)
    except ParseError as e:
        return {"valid": "unknown", "model": model, "summary": f"cannot check: {e}", "keys": {}, "error": str(e)}
    return check_operations(ops, m, time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb,
                            after_failure_steps=AFTER_FAILURE_STEPS, notes=notes)
