"""An Elle-like checker for transactional histories (list-append and rw-register).

Rules (Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from
Experimental Observations"; Adya's dependency graphs):

- Input is a picluster history: txn ops with f "txn" whose value is a list of
  ["append", k, v], ["r", k, v], ["w", k, v] micro-ops; ok completions carry
  the reads. fail txns did not happen, info txns may have; nemesis ops are
  ignored.
- Output: {"valid": True | False | "unknown", "summary", "anomalies": {type:
  [evidence]}, "not": [models ruled out], "anomaly_types", "anomaly_counts",
  "consistency", "stats", "warnings"}; each cycle's evidence has prose
  ("explanation") and its steps, which `render_html` draws as SVG.
- Pure functions of the history: the same history gives the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checkers.elle import list_append, rw_register
from checkers.elle.anomalies import MODELS
from checkers.elle.check import run
from checkers.elle.explain import render_html

__all__ = ["MODELS", "check_list_append", "check_rw_register", "checker", "render_html"]


def check_list_append(
    history: list[dict[str, Any]],
    *,
    consistency: str = "strict-serializable",
    time_limit_s: float = 120.0,
) -> dict[str, Any]:
    """Check a list-append history against a consistency model."""
    return run(history, list_append.infer, "list-append", consistency=consistency, time_limit_s=time_limit_s)


def check_rw_register(
    history: list[dict[str, Any]],
    *,
    consistency: str = "strict-serializable",
    time_limit_s: float = 120.0,
    linearizable_keys: bool = False,
) -> dict[str, Any]:
    """Check a read-write register history; linearizable_keys assumes each key is linearizable
    and so orders the writes of a key by real time."""
    return run(
        history,
        rw_register.infer,
        "rw-register",
        consistency=consistency,
        time_limit_s=time_limit_s,
        linearizable_keys=linearizable_keys,
    )


def checker(
    workload: str = "list-append", **options: Any
) -> Callable[[list[dict[str, Any]], dict[str, Any]], dict[str, Any]]:
    """A workload checker, (history, test) -> result, for "list-append" or "rw-register" with fixed options."""
    fn = {"list-append": check_list_append, "rw-register": check_rw_register}[workload]

    def check(history: list[dict[str, Any]], test: dict[str, Any]) -> dict[str, Any]:
        return fn(history, **options)

    return check
