"""Checker results and how they compose.

A checker is a pure function of (history, test) -> dict with "valid" set to
True, False or "unknown", plus whatever evidence explains the verdict. The
worst verdict wins when checkers are combined: False beats "unknown" beats True.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Verdict = bool | str


def merge_valid(verdicts: Iterable[Verdict]) -> Verdict:
    """Combine verdicts: any False -> False; else any "unknown" -> "unknown"; else True."""
    seen_unknown = False
    for v in verdicts:
        if v is False:
            return False
        if v is not True:
            seen_unknown = True
    return "unknown" if seen_unknown else True


def compose(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The top-level results.json object for a set of named checker results."""
    return {"valid": merge_valid(r.get("valid", "unknown") for r in results.values()), "checkers": results}


CheckResult = dict[str, Any]
"""What a checker returns: {"valid": True | False | "unknown", "summary": ..., evidence...}."""

Checker = Callable[[list[dict[str, Any]], dict[str, Any]], CheckResult]
"""A checker: a pure function of (history, test as JSON) -> CheckResult."""
