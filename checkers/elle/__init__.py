"""An Elle-like checker for transactional histories (list-append and rw-register).

Rules (Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from
Experimental Observations", VLDB 2020; Adya's dependency graphs):

- Input is a picluster history (or a Jepsen EDN one, via edn.py): txn ops
  with f "txn" whose value is a list of ["append", k, v] / ["r", k, v]
  (list-append) or ["w", k, v] / ["r", k, v] (rw-register) micro-ops; ok
  completions carry the reads. fail txns did not happen, info txns may have;
  nemesis ops are ignored.
- Output, Elle's result with picluster's evidence: {"valid": True | False |
  "unknown", "summary", "anomaly_types", "anomalies": {type: [evidence]},
  "anomaly_counts", "not", "also_not", "other_anomalies", "witness",
  "stats", "warnings"} ("error" instead when the input is bad). Each cycle's
  evidence has prose ("explanation") and its steps, which `render_html`
  draws as SVG.
- Pure functions of the history: the same history gives the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from checkers.elle.anomalies import MODELS
from checkers.elle.check import check
from checkers.elle.explain import render_html

__all__ = ["MODELS", "check", "check_list_append", "check_rw_register", "checker", "render_html"]


def check_list_append(
    history: list[dict[str, Any]],
    *,
    consistency: str | Iterable[str] | None = "strict-serializable",
    anomalies: Iterable[str] | None = None,
    time_limit_s: float = 120.0,
) -> dict[str, Any]:
    """Check a list-append history against consistency models (and/or specific anomalies)."""
    return check(history, "list-append", consistency=consistency, anomalies=anomalies, time_limit_s=time_limit_s)


def check_rw_register(
    history: list[dict[str, Any]],
    *,
    consistency: str | Iterable[str] | None = "strict-serializable",
    anomalies: Iterable[str] | None = None,
    time_limit_s: float = 120.0,
    initial: Any = None,
    initial_by_key: dict[Any, Any] | None = None,
    wfr_keys: bool = True,
    sequential_keys: bool = False,
    linearizable_keys: bool = False,
) -> dict[str, Any]:
    """Check a read-write register history.

    Every key starts at `initial` (or `initial_by_key[k]`); wfr_keys assumes a
    txn's writes follow its reads, sequential_keys / linearizable_keys that
    each key is sequentially consistent / linearizable, and so order versions
    by process / real-time order.
    """
    return check(
        history, "rw-register", consistency=consistency, anomalies=anomalies, time_limit_s=time_limit_s,
        initial=initial, initial_by_key=initial_by_key, wfr_keys=wfr_keys, sequential_keys=sequential_keys,
        linearizable_keys=linearizable_keys,
    )


def checker(
    workload: str = "list-append", **options: Any
) -> Callable[[list[dict[str, Any]], dict[str, Any]], dict[str, Any]]:
    """A workload checker, (history, test) -> result, for "list-append" or "rw-register" with fixed options."""
    fn = {"list-append": check_list_append, "rw-register": check_rw_register}[workload]

    def run(history: list[dict[str, Any]], test: dict[str, Any]) -> dict[str, Any]:
        return fn(history, **options)

    return run
