"""History files for the command line: picluster JSONL and Jepsen EDN, with line numbers.

Rules:

- jsonl: one JSON object a line (DESIGN.md "History"); blank lines are
  skipped; a last line cut short by a crash (no newline after it) is skipped
  and noted, as the harness does; any other line that is not a JSON object is
  a FileError naming the line.
- edn: see edn.py.
- Every op comes with the line it starts on, so every later error about it
  names that line (one numbering throughout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from checkers.elle.edn import EdnError, read_history

FORMATS = ("jsonl", "edn")


class FileError(ValueError):
    """A history file that cannot be read, with where it broke."""


def guess_format(path: Path | str) -> str:
    return "edn" if str(path).endswith(".edn") else "jsonl"


def read_jsonl(text: str, source: str, notes: list[str]) -> tuple[list[dict[str, Any]], list[int]]:
    ops: list[dict[str, Any]] = []
    lines: list[int] = []
    raw = text.splitlines()
    for n, line in enumerate(raw, start=1):
        if not line.strip():
            continue
        try:
            op = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(raw) and not text.endswith("\n"):
                notes.append(f"{source}:{n}: the last line is cut short (a crash mid-write); skipped")
                break
            raise FileError(f"{source}:{n}: not JSON ({e.msg})") from None
        if not isinstance(op, dict):
            raise FileError(f"{source}:{n}: expected a JSON object, got {type(op).__name__}")
        ops.append(op)
        lines.append(n)
    return ops, lines


def load(path: Path | str, fmt: str | None, notes: list[str]) -> tuple[list[dict[str, Any]], list[int]]:
    """The ops of a history file and the line each starts on; FileError for anything unreadable."""
    path = Path(path)
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise FileError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FileError(f"{path}: cannot read: {e}") from None
    if fmt == "jsonl":
        return read_jsonl(text, str(path), notes)
    try:
        return read_history(text)
    except EdnError as e:
        raise FileError(f"{path}: {e}") from None
