"""Two runs side by side: how their tests differ, their verdicts, and where their histories first part.

Rules this module keeps:

- Ops are compared without their `time` (two runs of the same seed before
  and after a change keep the same ops at slightly different times): the
  first line whose op differs in any other field is the first divergence. A
  history that is a prefix of the other diverges where it ends. Times are
  compared apart: the first op whose time differs is reported too (in sim,
  equal seeds give equal times, so a time difference is a real change).
- Context: `CONTEXT` ops either side of the divergence from each history.
- The test difference is every test.json field whose value differs, apart
  from the run directory and the versions' timestamps.
- A history that cannot be read is reported as such, never an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from base.history import read_history

CONTEXT = 4
IGNORED_TEST_FIELDS = frozenset({"run_dir"})


def _ops(run_dir: Path) -> tuple[list[dict[str, Any]], str]:
    try:
        return read_history(run_dir / "history.jsonl").ops, ""
    except (OSError, ValueError) as e:
        return [], f"history unreadable: {e}"


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _bare(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in op.items() if k not in ("time", "index")}


def first_divergence(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, Any]:
    """Where two histories first differ (ignoring times), and where their times first differ."""
    n = min(len(a), len(b))
    at = next((i for i in range(n) if _bare(a[i]) != _bare(b[i])), None)
    if at is None and len(a) != len(b):
        at = n
    time_at = next((i for i in range(n if at is None else at) if a[i].get("time") != b[i].get("time")), None)
    out: dict[str, Any] = {"index": at, "time_index": time_at, "a_ops": len(a), "b_ops": len(b)}
    if at is None:
        out["identical"] = True
        return out
    lo, hi = max(0, at - CONTEXT), at + CONTEXT + 1
    out["a_op"], out["b_op"] = invocation_of(a, at), invocation_of(b, at)
    out.update({
        "identical": False,
        "a": a[at] if at < len(a) else None,
        "b": b[at] if at < len(b) else None,
        "fields": sorted(k for k in set(_bare(a[at]) if at < len(a) else {}) | set(_bare(b[at]) if at < len(b) else {})
                         if at < len(a) and at < len(b) and a[at].get(k) != b[at].get(k)),
        "context_from": lo,
        "a_context": a[lo:hi],
        "b_context": b[lo:hi],
    })
    return out


def invocation_of(ops: list[dict[str, Any]], at: int) -> int | None:
    """The history index of the invocation of the op at line `at` (itself, or its process's last invoke)."""
    if at >= len(ops) or ops[at].get("process") == "nemesis":
        return None
    process = ops[at].get("process")
    for i in range(at, -1, -1):
        if ops[i].get("process") == process and ops[i].get("type") == "invoke":
            return int(ops[i].get("index", i))
    return None


def test_differences(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted((set(a) | set(b)) - IGNORED_TEST_FIELDS)
    return [{"field": k, "a": a.get(k), "b": b.get(k)} for k in keys if a.get(k) != b.get(k)]


def _checkers(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"valid": r.get("valid"), "summary": str(r.get("summary", ""))}
            for name, r in (results.get("checkers") or {}).items() if isinstance(r, dict)}


def _has_flow(run_dir: Path) -> bool:
    return (run_dir / "journal.jsonl").is_file() or (run_dir / "capture.pcap").is_file()


def compare(root: Path, a_path: str, b_path: str) -> dict[str, Any]:
    a_dir, b_dir = root / a_path, root / b_path
    a_ops, a_err = _ops(a_dir)
    b_ops, b_err = _ops(b_dir)
    a_res, b_res = _json(a_dir / "results.json"), _json(b_dir / "results.json")
    return {
        "a": {"path": a_path, "test": _json(a_dir / "test.json"), "valid": a_res.get("valid", "unchecked"),
              "checkers": _checkers(a_res), "error": a_err, "flow": _has_flow(a_dir)},
        "b": {"path": b_path, "test": _json(b_dir / "test.json"), "valid": b_res.get("valid", "unchecked"),
              "checkers": _checkers(b_res), "error": b_err, "flow": _has_flow(b_dir)},
        "test_differences": test_differences(_json(a_dir / "test.json"), _json(b_dir / "test.json")),
        "divergence": first_divergence(a_ops, b_ops),
    }
