"""Message-flow (Lamport) diagrams: who sent what to whom and when, around a moment of a run.

A diagram is plain data, drawn by harness/web/diagram.js: one vertical line
per endpoint (the harness's clients first, then the nodes), one arrow per
message from (sender, time sent) to (receiver, time received), the client
ops of the history as bars beside the lines, and the fault windows as bands.

Rules this module keeps:

- Times are seconds of history time (0 = the runner's start), everywhere.
  A sim journal's clock is the virtual loop's: history time = journal time
  - clock.json's `t0_s`. A netns capture's clock is the wall's: history time
  = capture time - clock.json's `wall_s`. A run without clock.json (older
  runs) is aligned by its first client op: the first request the harness
  sent to that op's node is taken to leave at the op's invocation, and the
  diagram says so.
- Messages come from the sim journal (harness/lamport.py: `journal_messages`)
  or the capture (harness/lamport_capture.py), one `Message` per copy that
  was sent: `delivered` (it arrived), `dropped` (it reached the receiver's
  side and was thrown away there: a partition, a down or crashed node, a
  reply too late; in a capture, a frame the receiver never acknowledged) or
  `lost` (it never arrived anywhere: the simulated network lost it).
- A window shows the messages that are in flight at some point of it; at
  most `MAX_MESSAGES` of them (the earliest), and says how many there were.
  Asked for an op, the window spans the op with a margin either side.
- Parsed messages are cached per run by the source file's modification
  time; nothing is written.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.faults import fault_windows
from base.history import Op, pairs, read_history
from nemesis.catalog import VOCABULARY

MAX_MESSAGES = 2000
"""Arrows drawn in one window; the rest are counted and the page asks to zoom in."""
DEFAULT_SPAN_S = 1.0
"""The window shown when none is asked for: the run's first second with messages."""
CACHE_RUNS = 4


@dataclass(frozen=True, slots=True)
class Message:
    src: str
    dst: str
    sent_s: float
    recv_s: float | None
    """When it arrived (delivered) or was thrown away (dropped); None when lost."""
    kind: str
    """call, send (one-way), reply, error, refused, reset (sim); request, response, error, oneway (capture)."""
    method: str
    fate: str
    """delivered | dropped | lost."""
    note: str = ""
    """Why it was dropped or lost, a duplicate's mark, or a short account of the body (capture)."""

    def end_s(self) -> float:
        return self.sent_s if self.recv_s is None else self.recv_s

    def to_json(self) -> list[Any]:
        return [self.src, self.dst, round(self.sent_s, 6), None if self.recv_s is None else round(self.recv_s, 6),
                self.kind, self.method, self.fate, self.note]


@dataclass(frozen=True, slots=True)
class Flow:
    """Every message of a run, by send time, and where they came from."""

    source: str
    """journal | capture."""
    messages: list[Message]
    endpoints: list[str]
    alignment: str
    """How the source's clock was put on history time, in words."""


# -- the sim journal ---------------------------------------------------------------------------------


def read_clock(run_dir: Path) -> dict[str, float]:
    try:
        data = json.loads((run_dir / "clock.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)} if isinstance(data, dict) else {}


def journal_messages(lines: list[str], offset_s: float = 0.0) -> list[Message]:
    """The journal's send/recv/drop records paired by frame id into messages, times minus `offset_s`.

    A duplicated frame is delivered twice: two messages. A send whose frame
    neither arrived nor was dropped (lost, or still in flight at the end) is
    `lost` with the send's note."""
    sends: dict[int, dict[str, Any]] = {}
    ends: dict[int, list[dict[str, Any]]] = {}
    for line in lines:
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        if not isinstance(r, dict) or not isinstance(r.get("id"), int):
            continue
        if r.get("ev") == "send":
            sends[r["id"]] = r
        elif r.get("ev") in ("recv", "drop"):
            ends.setdefault(r["id"], []).append(r)
    out = []
    for fid, s in sends.items():
        sent = s["t"] / 1e9 - offset_s
        arrivals = ends.get(fid) or []
        if not arrivals:
            out.append(Message(s["src"], s["dst"], sent, None, s["kind"], s["method"], "lost", s.get("note") or "lost"))
        for i, e in enumerate(arrivals):
            fate = "delivered" if e["ev"] == "recv" else "dropped"
            note = e.get("note") or ("duplicate" if i else "")
            out.append(Message(s["src"], s["dst"], sent, e["t"] / 1e9 - offset_s, s["kind"], s["method"], fate, note))
    out.sort(key=lambda m: (m.sent_s, m.end_s()))
    return out


def first_client_offset(history: list[Op], messages: list[Message], nodes: list[str]) -> float | None:
    """For a run without clock.json: the offset that puts the first client request to the first client op's
    node at that op's invocation."""
    first = next((op for op in history if op.get("type") == "invoke" and op.get("process") != "nemesis"
                  and isinstance(op.get("node"), str)), None)
    if first is None:
        return None
    sent = next((m.sent_s for m in messages if m.src not in nodes and m.dst == first["node"]), None)
    return None if sent is None else sent - first["time"] / 1e9


def _endpoints(messages: list[Message], nodes: list[str]) -> list[str]:
    seen = {m.src for m in messages} | {m.dst for m in messages}
    clients = sorted(seen - set(nodes))
    return clients + list(nodes)


def journal_flow(run_dir: Path, history: list[Op], nodes: list[str]) -> Flow:
    lines = (run_dir / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    clock = read_clock(run_dir)
    if "t0_s" in clock:
        messages = journal_messages(lines, clock["t0_s"])
        alignment = "sim journal, virtual time; history time 0 from clock.json"
    else:
        messages = journal_messages(lines)
        offset = first_client_offset(history, messages, nodes)
        if offset:
            messages = journal_messages(lines, offset)
        alignment = "sim journal, virtual time; aligned on the first client op (no clock.json)"
    return Flow("journal", messages, _endpoints(messages, nodes), alignment)


# -- one window --------------------------------------------------------------------------------------


def _op_rows(history: list[Op]) -> list[dict[str, Any]]:
    try:
        ps = pairs(history)
    except ValueError:
        return []
    end = max((op.get("time", 0) for op in history), default=0) / 1e9
    rows = []
    for p in ps:
        if p.invoke.get("process") == "nemesis":
            continue
        c = p.complete
        rows.append({
            "index": p.invoke.get("index"), "process": p.invoke.get("process"), "f": p.invoke.get("f"),
            "key": p.invoke.get("key"), "node": p.invoke.get("node"),
            "value": (c or p.invoke).get("value"), "type": c.get("type") if c else "info",
            "start": p.invoke.get("time", 0) / 1e9, "end": c.get("time", 0) / 1e9 if c else end,
        })
    return rows


def _fault_rows(history: list[Op]) -> list[dict[str, Any]]:
    try:
        windows = fault_windows(history, VOCABULARY)
    except Exception:  # a history the vocabulary cannot read still gets its messages drawn
        return []
    return [{"kind": w.kind, "colour": w.colour, "start": w.start_s, "end": w.start_s if w.end_s is None else w.end_s,
             "nodes": list(w.nodes), "description": w.description} for w in windows]


def focus_window(op: dict[str, Any], span: tuple[float, float]) -> tuple[float, float]:
    """The op with a margin either side: its own length, at least 50 ms (the Raft traffic around a quick op)."""
    margin = max(0.05, op["end"] - op["start"])
    return max(span[0], op["start"] - margin), min(span[1], op["end"] + margin)


def window(flow: Flow, history: list[Op], nodes: list[str], *, start: float | None = None, end: float | None = None,
           op: int | None = None) -> dict[str, Any]:
    """The diagram's data for one time window (see the module's rules)."""
    msgs = flow.messages
    ops = _op_rows(history)
    faults = _fault_rows(history)
    times = [m.sent_s for m in msgs] + [m.end_s() for m in msgs] + [o["end"] for o in ops]
    span = (min(0.0, *times) if times else 0.0, max(times) if times else 0.0)
    focus = next((o for o in ops if o["index"] == op), None) if op is not None else None
    if start is None or end is None or end <= start:
        if focus is not None:
            start, end = focus_window(focus, span)
        else:
            first = msgs[0].sent_s if msgs else span[0]
            start, end = first, min(span[1], first + DEFAULT_SPAN_S)
            if end <= start:
                end = start + DEFAULT_SPAN_S
    sends = [m.sent_s for m in msgs]
    longest = max((m.end_s() - m.sent_s for m in msgs), default=0.0)
    lo = bisect.bisect_left(sends, start - longest)
    hi = bisect.bisect_right(sends, end)
    inside = [m for m in msgs[lo:hi] if m.sent_s <= end and m.end_s() >= start]
    return {
        "source": flow.source,
        "alignment": flow.alignment,
        "lanes": flow.endpoints if flow.endpoints else nodes,
        "nodes": nodes,
        "span": [span[0], span[1]],
        "window": [start, end],
        "count": len(inside),
        "messages": [m.to_json() for m in inside[:MAX_MESSAGES]],
        "cut": len(inside) > MAX_MESSAGES,
        "ops": [o for o in ops if o["start"] <= end and o["end"] >= start],
        "faults": [f for f in faults if f["start"] <= end and f["end"] >= start],
        "focus": focus,
        "fields": ["src", "dst", "sent", "recv", "kind", "method", "fate", "note"],
    }


# -- per run, cached ------------------------------------------------------------------------------------


class FlowError(ValueError):
    """The run has no message source, or it cannot be read (one line)."""


class FlowCache:
    """Parsed flows and histories of the last few runs asked for, keyed by their files' mtimes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[Path, tuple[tuple[int, ...], Flow, list[Op], list[str]]] = OrderedDict()

    def load(self, run_dir: Path) -> tuple[Flow, list[Op], list[str]]:
        files = [run_dir / n for n in ("journal.jsonl", "capture.pcap", "history.jsonl", "test.json", "clock.json")]
        sig = tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)
        with self._lock:
            hit = self._cache.get(run_dir)
            if hit is not None and hit[0] == sig:
                self._cache.move_to_end(run_dir)
                return hit[1], hit[2], hit[3]
        flow, history, nodes = load_flow(run_dir)
        with self._lock:
            self._cache[run_dir] = (sig, flow, history, nodes)
            while len(self._cache) > CACHE_RUNS:
                self._cache.popitem(last=False)
        return flow, history, nodes


def load_flow(run_dir: Path) -> tuple[Flow, list[Op], list[str]]:
    try:
        test = json.loads((run_dir / "test.json").read_text(encoding="utf-8"))
        nodes = [str(n) for n in test.get("nodes") or []]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise FlowError(f"{run_dir}: test.json unreadable: {e}") from None
    try:
        history = read_history(run_dir / "history.jsonl").ops
    except (OSError, ValueError):
        history = []
    if (run_dir / "journal.jsonl").exists():
        return journal_flow(run_dir, history, nodes), history, nodes
    if (run_dir / "capture.pcap").exists():
        from harness.lamport_capture import capture_flow

        return capture_flow(run_dir, history, nodes), history, nodes
    raise FlowError(f"{run_dir.name} has no message source: sim runs write journal.jsonl, "
                    "netns runs capture.pcap with --capture")
