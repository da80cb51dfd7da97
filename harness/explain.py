"""Why a verdict is invalid, in the system's own terms: the "What went wrong" part of a report.

For every linearizability or Elle result that is invalid, the offending
operations are tied to what the system said about itself and to the faults
in force, in sentences like

    op 706: read r3 → 3 at 21.67 s, served by n4, which led term 3, while n5 had
    led term 4 since 21.50 s, during the partition 20.36–24.61 s that isolated n4.

Rules this module keeps:

- The offending ops are the checker's own: a linearizability key's `stuck`
  ops (those that cannot take effect after the longest linearizable
  prefix); every transaction of an Elle cycle, or the op an Elle non-cycle
  anomaly names. Ops are found in the history by their invocation index.
- The node's state comes from the workload's `account(history, test)` hook
  (workloads/<system>.py), an object whose `describe(invoke, complete)`
  returns (node, clause) or None; without the hook the clause is only the
  node the client asked (the history's `node`).
- The faults are every fault window (base.faults) overlapping the op,
  described relative to that node: a network fault says whether it
  isolated the node, cut it off with others from the majority, or left it
  on the majority side.
- Each anomaly gets its one plain sentence (harness.plain) above its formal
  name. Elle results are rendered here entirely (cycles in plain steps, op
  numbering as everywhere on the page, the checker's own diagram); the
  linearizability checker keeps its own picture further down.
- Each offending op links to the message-flow diagram around it
  (`diagram.html?op=N`, relative to the report; `harness serve` answers it)
  when the run has a sim journal or a bridge capture.
- Everything from the history is HTML-escaped; a result whose shape this
  module does not know is skipped, never an error.
"""

from __future__ import annotations

import html
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from base.faults import Effect, FaultWindow
from base.history import Op, Pair, pairs
from base.spec import TestSpec
from harness import plain

MAX_EXAMPLES = 3
"""Anomalies explained per Elle anomaly type, and keys per linearizability result."""

Describe = Callable[[Op, Op | None], "tuple[str, str] | None"]


class Context:
    """What every explanation needs: the ops by invocation index, the faults, the system's account."""

    def __init__(self, spec: TestSpec, history: list[Op], windows: list[FaultWindow]) -> None:
        self.spec = spec
        self.windows = windows
        try:
            ps = pairs(history)
        except ValueError:
            ps = []
        self.by_index: dict[int, Pair] = {p.invoke["index"]: p for p in ps if isinstance(p.invoke.get("index"), int)}
        self.end_ns = max((op.get("time", 0) for op in history), default=0)
        self.describe = _account(spec, history)

    def times(self) -> dict[int, tuple[Any, Any]]:
        return {i: (p.invoke.get("time"), p.complete.get("time") if p.complete else None)
                for i, p in self.by_index.items()}

    def op_sentence(self, index: Any) -> str:
        """"op 706: read r3 → 3 at 21.67 s, served by n4, …, during the partition … that isolated n4"."""
        p = self.by_index.get(index) if isinstance(index, int) else None
        if p is None:
            return f"{plain.op_name(index)} (not in the history)"
        start = p.invoke.get("time", 0)
        end = p.complete.get("time", start) if p.complete else self.end_ns
        when = (f"at {plain.seconds(end)}" if end - start < 5e6
                else f"from {plain.seconds(start)} to {plain.seconds(end)}")
        what = plain.op_words(p.invoke, p.complete)
        text = f"{plain.op_name(index)} (process {p.invoke.get('process')}): {what} {when}"
        told = self.describe(p.invoke, p.complete) if self.describe is not None else None
        node = told[0] if told else p.invoke.get("node")
        if told:
            text += f", {told[1]}"
        elif isinstance(node, str):
            text += f", sent to {node}"
        faults = [fault_words(w, node if isinstance(node, str) else None, self.spec.nodes)
                  for w in self.windows if _overlaps(w, start / 1e9, end / 1e9)]
        if faults:
            text += ", during " + " and ".join(faults)
        return text + "."


FLOW_SOURCES = ("journal.jsonl", "capture.pcap")
"""A run with one of these has a message-flow diagram (harness/lamport.py), opened under `harness serve`."""


def op_item(ctx: Context, index: Any) -> str:
    """An offending op as a list item: its sentence, and a link to the messages around it when the run has them."""
    item = f"<li>{_e(ctx.op_sentence(index))}"
    run_dir = Path(ctx.spec.run_dir) if ctx.spec.run_dir else None
    if isinstance(index, int) and run_dir is not None and any((run_dir / f).exists() for f in FLOW_SOURCES):
        item += (f' <a class="flow" href="diagram.html?op={index}" target="_top" title="the messages between '
                 'the nodes around this op (opens under harness serve)">⇄ messages</a>')
    return item + "</li>"


def _account(spec: TestSpec, history: list[Op]) -> Describe | None:
    try:
        module = importlib.import_module(f"workloads.{spec.system}")
        hook = getattr(module, "account", None)
        return hook(history, spec.to_json()).describe if hook is not None else None
    except Exception:  # an account that cannot be read leaves the bare node name, never a broken report
        return None


def _overlaps(w: FaultWindow, start_s: float, end_s: float) -> bool:
    w_end = w.start_s if w.end_s is None else w.end_s
    return w.start_s <= end_s and start_s <= w_end


def fault_words(w: FaultWindow, node: str | None, nodes: list[str]) -> str:
    """A fault as it touched `node`: "the partition 3.89–7.08 s that isolated n2"."""
    end = w.start_s if w.end_s is None else w.end_s
    span = f"{w.start_s:.2f}–{end:.2f} s"
    name = f"the {w.kind} {span}"
    if node is None:
        return f"{name} ({w.description})"
    if w.effect is Effect.NETWORK and w.links:
        others = [m for m in nodes if m != node]
        cut = [m for m in others if w.cuts(node, m) or w.cuts(m, node)]
        side = [node, *(m for m in others if m not in cut)]
        if not cut:
            return f"{name} ({w.description}), which left {node}'s links alone"
        if len(cut) == len(others):
            return f"{name} that isolated {node}"
        if len(side) <= len(nodes) // 2:
            return f"{name} that cut {' '.join(side)} off from the majority"
        if w.kind == "partition":
            return f"{name} that kept {node} on the majority side ({' '.join(side)})"
        return f"{name} that cut {node} off from {' '.join(cut)}"
    if node in w.nodes:
        return f"{name} ({w.description}), which hit {node} itself"
    return f"{name} ({w.description})"


# -- sections ---------------------------------------------------------------------------------------


def render(spec: TestSpec, history: list[Op], results: dict[str, Any], windows: list[FaultWindow]) -> str:
    """The "What went wrong" section's body, or "" when no linearizability or Elle result is invalid."""
    ctx: Context | None = None
    parts = []
    for name, r in (results.get("checkers") or {}).items():
        if r.get("valid") is not False:
            continue
        if is_elle(r) or is_linearizable(r):
            ctx = ctx or Context(spec, history, windows)
            parts.append(elle_html(name, r, ctx) if is_elle(r) else linearizable_html(name, r, ctx))
    return "".join(parts)


def is_elle(r: dict[str, Any]) -> bool:
    return isinstance(r.get("anomalies"), dict)


def is_linearizable(r: dict[str, Any]) -> bool:
    return isinstance(r.get("keys"), dict) and "model" in r


def _e(x: Any) -> str:
    return html.escape(str(x))


def linearizable_html(name: str, r: dict[str, Any], ctx: Context) -> str:
    bad = [(k, kr) for k, kr in sorted(r["keys"].items()) if isinstance(kr, dict) and kr.get("valid") is False]
    designed = " (as designed: a documented weakness)" if r.get("as_designed") else ""
    out = [f"<h3>{_e(name)}: not linearizable on {len(bad)} key(s){_e(designed)}</h3>"]
    for key, kr in bad[:MAX_EXAMPLES]:
        stuck = [s for s in kr.get("stuck") or [] if isinstance(s, dict)]
        out.append(f'<p class="plain">{_e(plain.linearizability_sentence(key, kr.get("state"), stuck))}</p>')
        out.append(f'<p class="formal">key {_e(key)}: not linearizable (model {_e(r.get("model"))})</p><ul>')
        out += [op_item(ctx, s.get("index")) for s in stuck]
        out.append("</ul>")
    if len(bad) > MAX_EXAMPLES:
        out.append(f"<p>… and {len(bad) - MAX_EXAMPLES} more key(s); the pictures below show each.</p>")
    return "".join(out)


def elle_html(name: str, r: dict[str, Any], ctx: Context) -> str:
    model = r.get("consistency")
    out = [f"<h3>{_e(name)}: {_e(f'not {model}' if model else 'anomalies found')}</h3>"]
    if r.get("not"):
        out.append(f"<p class='muted'>Ruled out: {_e(', '.join(map(str, r['not'])))}.</p>")
    counts = r.get("anomaly_counts") or {}
    times = ctx.times()
    for typ, evs in r["anomalies"].items():
        evs = [ev for ev in evs if isinstance(ev, dict)] if isinstance(evs, list) else []
        out.append(f'<p class="plain">{_e(plain.anomaly_sentence(str(typ)))}</p>')
        out.append(f'<h4 class="formal">{_e(typ)} ({_e(counts.get(typ, len(evs)))})</h4>')
        for ev in evs[:MAX_EXAMPLES]:
            out.append(_cycle_html(ev, ctx, times) if isinstance(ev.get("steps"), list) else _single_html(typ, ev, ctx))
        if len(evs) > MAX_EXAMPLES:
            out.append(f"<p>… and {len(evs) - MAX_EXAMPLES} more in results.json.</p>")
    for w in r.get("warnings") or []:
        out.append(f"<p class='muted'>Warning: {_e(w)}</p>")
    return "".join(out)


def _cycle_html(ev: dict[str, Any], ctx: Context, times: dict[int, tuple[Any, Any]]) -> str:
    steps = [s for s in ev["steps"] if isinstance(s, dict)]
    list_append = any(isinstance(m, list) and m and m[0] == "append"
                      for t in ev.get("cycle") or [] if isinstance(t, dict) for m in t.get("value") or [])
    out = ['<div class="cycle"><p>Each arrow says one op must come before the next; the last closes the loop, '
           "so no order of them is possible:</p><ol>"]
    for s in steps:
        a, b = plain.txn_index(s.get("from")), plain.txn_index(s.get("to"))
        arrow = f"{plain.op_name(a)} → {plain.op_name(b)}" if a is not None and b is not None else ""
        out.append(f"<li><b>{_e(arrow)}</b> ({_e(s.get('rel'))}): {_e(plain.step_words(s, times, list_append))}</li>")
    out.append("</ol><p>The ops, and what the system said about them:</p><ul>")
    for s in steps:
        out.append(op_item(ctx, plain.txn_index(s.get("from"))))
    out.append("</ul>")
    out.append(_cycle_picture(ev, steps))
    out.append("</div>")
    return "".join(out)


def _cycle_picture(ev: dict[str, Any], steps: list[dict[str, Any]]) -> str:
    """The Elle checker's own diagram, its txns named as ops."""
    try:
        from checkers.elle.explain import cycle_svg

        def renamed(name: Any) -> str:
            i = plain.txn_index(name)
            return plain.op_name(i) if i is not None else str(name)

        named = [{**s, "from": renamed(s.get("from")), "to": renamed(s.get("to"))} for s in steps]
        return str(cycle_svg({**ev, "steps": named}))
    except Exception:
        return ""


def _single_html(typ: Any, ev: dict[str, Any], ctx: Context) -> str:
    op = ev.get("op") if isinstance(ev.get("op"), dict) else None
    text = ev.get("text") or ev.get("explanation") or _elle_words(typ, ev)
    text = re.sub(r"\bT(\d+)\b", r"op \1", str(text))  # Elle names a txn T<its invocation index>
    out = [f"<p>{_e(text)}</p>"] if text else []
    if op is not None:
        out.append(f"<ul>{op_item(ctx, op.get('index'))}</ul>")
    return "".join(out) or f"<pre>{_e(ev)}</pre>"


def _elle_words(typ: Any, ev: dict[str, Any]) -> str:
    try:
        from checkers.elle.explain import describe

        return str(describe(str(typ), ev))
    except Exception:
        return ""
