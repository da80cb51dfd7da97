"""The echo system's status view: each node's durable counter (base.status explains views). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.status import GOOD, Cell, NodeReply, Table, row, silent_note, unreachable_row

METHOD = "count"
REQUEST: Any = None

COLUMNS = ("node", "count")


def tables(replies: Mapping[str, NodeReply]) -> list[Table]:
    rows = [row(n, str(r.reply)) if r.ok else unreachable_row(r, len(COLUMNS)) for n, r in sorted(replies.items())]
    notes = silent_note(replies) or [Cell("every node answers", GOOD)]
    return [Table("echo: each node's durable counter", COLUMNS, tuple(rows), tuple(notes))]
