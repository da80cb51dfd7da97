"""The status dashboard: a status document (probe.gather) drawn with rich.

Rules this module keeps:

- It draws what the document says and nothing else (so `--json` and the
  picture never disagree): a header, the nodes as their processes stand, the
  faults in force in their kinds' colours, then each table of the system's
  own view with its notes, then the latest events.
- Tones map to colours here only: good green, warn yellow, bad red, dim grey.
- `watch(...)` redraws in place (rich Live) every `interval_s` until Ctrl-C,
  asking the nodes afresh each time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table as RichTable
from rich.text import Text

from base.status import Cell, Table

STYLE = {"good": "green", "warn": "yellow", "bad": "bold red", "dim": "grey50", "": ""}
PROCESS_STYLE = {"running": "green", "paused": "yellow", "killed": "bold red", "powered off": "bold red",
                 "crashed": "bold red", "restarting": "yellow", "unknown": "grey50", "stopped": "grey50"}
STATE_STYLE = {"up": "bold green", "starting": "yellow", "stopping": "yellow", "down": "grey50",
               "failed": "bold red", "supervisor gone": "bold red"}


def cell(c: Cell) -> Text:
    return Text(c.text, style=STYLE.get(c.tone, ""))


def header(status: dict[str, Any]) -> Text:
    state = str(status.get("state"))
    t = Text()
    t.append(f"{status.get('system')} ", style="bold")
    t.append(f"cluster {status.get('name')!r} on {status.get('backend')}: ")
    t.append(state, style=STATE_STYLE.get(state, ""))
    sup = status.get("supervisor") or {}
    if sup.get("alive"):
        t.append(f"  (supervisor pid {sup.get('pid')})", style="grey50")
    elif state == "supervisor gone":
        t.append(f"  the supervisor (pid {sup.get('pid')}) is gone; `harness cluster down` removes what is left",
                 style="red")
    if status.get("error"):
        t.append(f"\n{status['error']}", style="red")
    return t


def nodes_table(status: dict[str, Any]) -> RichTable:
    t = RichTable(title="nodes", title_justify="left", expand=False)
    for col in ("node", "address", "process", "pid", "restarts", "answers"):
        t.add_column(col)
    for n, s in sorted(status.get("nodes", {}).items()):
        process = str(s.get("process"))
        answers = Text(f"yes ({s['ping_ms']} ms)" if s.get("answers") and s.get("ping_ms") is not None else "yes",
                       style="green") if s.get("answers") else Text(f"no: {s.get('why')}", style="red")
        t.add_row(n, s.get("address", ""), Text(process, style=PROCESS_STYLE.get(process, "")),
                  str(s.get("pid") or "-"), str(s.get("restarts", 0)), answers)
    return t


def faults_block(status: dict[str, Any]) -> Text:
    faults = status.get("faults") or []
    if not faults:
        return Text("no faults in force", style="green")
    t = Text("faults in force:", style="bold")
    for f in faults:
        t.append("\n  ■ ", style=f.get("colour") or "")
        t.append(f"{f['kind']}: {f['description']}")
    return t


def view_table(table: Table) -> Group:
    t = RichTable(title=table.title, title_justify="left")
    for col in table.columns:
        t.add_column(col)
    for row in table.rows:
        t.add_row(*(cell(c) for c in row))
    notes = [cell(n) for n in table.notes]
    return Group(t, *notes)


def events_block(status: dict[str, Any]) -> Text:
    t = Text("recent events:", style="bold")
    for e in status.get("events", [])[-5:]:
        when = str(e.get("wall", ""))[-8:]
        who = f"{e['node']}: " if e.get("node") else ""
        t.append(f"\n  {when} {who}{e.get('what', '')}", style="grey70")
    return t


def render(status: dict[str, Any], footer: str = "") -> RenderableType:
    from harness.services.probe import tables_of

    parts: list[RenderableType] = [header(status)]
    if status.get("nodes"):
        parts += [nodes_table(status), faults_block(status)]
        parts += [view_table(t) for t in tables_of(status)]
    if status.get("events"):
        parts.append(events_block(status))
    if footer:
        parts.append(Text(footer, style="grey50"))
    return Panel(Group(*parts), title=f"picluster · {escape(str(status.get('name')))}", title_align="left")


def watch(console: Console, gather: Callable[[], dict[str, Any]], interval_s: float) -> None:
    """Redraw the dashboard every interval_s until Ctrl-C."""

    def frame() -> RenderableType:
        return render(gather(), footer=f"asked at {time.strftime('%H:%M:%S')}; every {interval_s:g} s; "
                                       "Ctrl-C to stop watching")

    with Live(frame(), console=console, refresh_per_second=4, auto_refresh=False) as live:
        while True:
            time.sleep(interval_s)
            live.update(frame(), refresh=True)
