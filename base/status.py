"""What a system's status view is: tables of cells, built from its nodes' own status replies.

A running cluster's dashboard (`harness cluster status`) asks every node one
status RPC and hands the replies to the system's view, a small pure module
`systems/<name>/status.py` that declares:

    METHOD: str                      the RPC every node answers with its own status
    REQUEST: Any                     its request body (usually None)
    def tables(replies: Mapping[str, NodeReply]) -> list[Table]

Rules this module keeps (and every view with it):

- A view is a pure function of the replies: it never calls anything, so it
  renders the same in the terminal, as JSON and in a test.
- A node that did not answer is a `NodeReply` with `reply` None and `error`
  saying why ("unreachable: connection refused", "killed by hand"); a view
  shows such a node as unreachable with that reason, never as healthy and
  never by leaving it out.
- Cells carry a tone (good, warn, bad, dim, or none) instead of colours, so
  the harness picks the colours and plain-text renderers can ignore them.
- `notes` are one-line findings a person reads first ("leader n1 in term 3",
  "n2 is dead to n1 n3").

This module imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GOOD, WARN, BAD, DIM = "good", "warn", "bad", "dim"
TONES = (GOOD, WARN, BAD, DIM, "")


@dataclass(frozen=True, slots=True)
class NodeReply:
    """One node's answer to the view's status RPC, or why there is none."""

    node: str
    reply: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    tone: str = ""

    def __post_init__(self) -> None:
        if self.tone not in TONES:
            raise ValueError(f"unknown tone {self.tone!r}; known: {', '.join(t for t in TONES if t)}")


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[Cell, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.title!r}: a row of {len(row)} cells under {len(self.columns)} columns")

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [[{"text": c.text, "tone": c.tone} for c in row] for row in self.rows],
            "notes": [{"text": c.text, "tone": c.tone} for c in self.notes],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Table:
        def cell(x: Mapping[str, Any]) -> Cell:
            return Cell(str(x.get("text", "")), str(x.get("tone", "")))

        return cls(str(d["title"]), tuple(str(c) for c in d["columns"]),
                   tuple(tuple(cell(c) for c in row) for row in d["rows"]),
                   tuple(cell(n) for n in d.get("notes", [])))


def row(*cells: Cell | str) -> tuple[Cell, ...]:
    """A row from cells or plain strings (a string is a cell without a tone)."""
    return tuple(c if isinstance(c, Cell) else Cell(c) for c in cells)


def unreachable_row(reply: NodeReply, width: int) -> tuple[Cell, ...]:
    """A node that did not answer: its id, then the gist of the reason (padded with blanks to `width`).

    The gist is the reason up to its first parenthesis or semicolon; a view's notes carry the whole."""
    gist = (reply.error or "").split(" (")[0].split(";")[0].strip()
    why = Cell(f"unreachable: {gist}" if gist else "unreachable", BAD)
    return (Cell(reply.node), why, *(Cell("") for _ in range(max(0, width - 2))))


def silent_note(replies: Mapping[str, NodeReply]) -> list[Cell]:
    """One note per node that did not answer, with the whole reason."""
    return [Cell(f"{n} did not answer: {r.error or 'no reason given'}", BAD)
            for n, r in sorted(replies.items()) if not r.ok]


def plain_text(tables: Sequence[Table]) -> str:
    """The tables as plain aligned text (for terminals without the harness, e.g. on a Pi)."""
    out: list[str] = []
    for t in tables:
        widths = [len(c) for c in t.columns]
        for r in t.rows:
            widths = [max(w, len(c.text)) for w, c in zip(widths, r, strict=True)]
        out.append(t.title)
        out.append("  ".join(c.ljust(w) for c, w in zip(t.columns, widths, strict=True)).rstrip())
        for r in t.rows:
            out.append("  ".join(c.text.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        out.extend(n.text for n in t.notes)
        out.append("")
    return "\n".join(out)
