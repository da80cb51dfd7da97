"""The heartbeat workload: read every node's membership view, over and over.

Rules:
- One client process per node (the default concurrency is the node count);
  each reads its node's `view` (op `{"f": "view", "value": None}`); at the
  default rate of 20 ops/s over five processes that is one read per node
  every ~0.25 s. The ok value is the node's whole view, own incarnation
  included.
- A view read changes nothing, so a read that times out or cannot reach its
  node completes `fail` (certainly no effect) and the process carries on.
- Final ops read every node's view once, after the quiet period.
- Checker: checkers/heartbeat.py, given the nemesis catalog's fault
  vocabulary (checkers never import nemesis; this module wires it in).
  Report: one picture of who thought whom alive / suspect / dead over time,
  network faults shaded in their kinds' colours.
"""

from __future__ import annotations

import functools
import html
import random
from typing import Any

from base.history import Op
from base.spec import TestSpec
from checkers.heartbeat import Faults, Observation, check, fault_timeline, observations
from nemesis.catalog import VOCABULARY
from systems.runtime.api import RpcError, Runtime
from workloads.base import Checker, Client


class ViewClient:
    def __init__(self, rt: Runtime, node: str, timeout_s: float) -> None:
        self.rt, self.node, self.timeout_s = rt, node, timeout_s

    async def invoke(self, op: Op) -> Op:
        try:
            view = await self.rt.call(self.node, "view", None, timeout=self.timeout_s)
        except RpcError as e:
            return {**op, "type": "fail", "error": e.code}
        return {**op, "type": "ok", "value": view}


class ViewWorkload:
    name = "view"

    def __init__(self, spec: TestSpec) -> None:
        self.timeout_s = spec.op_timeout_s

    def client(self, rt: Runtime, node: str) -> Client:
        return ViewClient(rt, node, self.timeout_s)

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        return {"f": "view", "value": None}

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        return [(n, {"f": "view", "value": None}) for n in nodes]

    def checkers(self) -> dict[str, Checker]:
        return {"heartbeat": functools.partial(check, vocabulary=VOCABULARY)}


WORKLOADS = {"view": ViewWorkload}
DEFAULT_WORKLOAD = "view"

# -- the report picture --------------------------------------------------------------------------

COLORS = {"alive": "#43a047", "suspect": "#ffb300", "dead": "#e53935"}
WIDTH, LEFT, ROW, GAP, TOP = 900, 90, 11, 10, 24
MAX_SEGMENT_S = 1.5


def report_sections(history: list[Op], results: dict[str, Any]) -> list[tuple[str, str]]:
    obs = observations(history)
    if not obs:
        return [("membership views", "<p>no view was read</p>")]
    faults = fault_timeline(history, VOCABULARY)
    return [("membership views: who thought whom alive / suspect / dead", membership_svg(obs, faults, history))]


def membership_svg(obs: list[Observation], faults: Faults, history: list[Op]) -> str:
    observers = sorted({o.observer for o in obs})
    nodes = sorted(set(observers) | {s for o in obs for s in o.peers})
    end = max([o.t1 for o in obs] + [float(op.get("time", 0)) / 1e9 for op in history] + [1.0])
    scale = (WIDTH - LEFT - 10) / end

    def x(t: float) -> float:
        return LEFT + max(0.0, min(t, end)) * scale

    rows_per_group = max(1, len(nodes) - 1)
    group_h = rows_per_group * ROW + GAP + 12
    height = TOP + len(observers) * group_h + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="10" shape-rendering="crispEdges">'
    ]
    for w in faults.network:
        t0, t1 = w.start_s, w.end_s if w.end_s is not None else end
        out.append(
            f'<rect x="{x(t0):.1f}" y="{TOP - 4}" width="{max(1.0, x(t1) - x(t0)):.1f}" '
            f'height="{height - TOP - 26}" fill="{w.colour}" opacity="0.25"><title>{html.escape(w.kind)}: '
            f"{html.escape(w.description)} {t0:.2f}-{min(t1, end):.2f}s</title></rect>"
        )
    for gi, o in enumerate(observers):
        gy = TOP + gi * group_h
        out.append(f'<text x="4" y="{gy + 8}" font-weight="bold">{html.escape(o)} sees</text>')
        for w0, w1 in faults.down.get(o, []) + faults.paused.get(o, []):
            out.append(
                f'<rect x="{x(w0):.1f}" y="{gy + 10}" width="{max(1.0, x(w1) - x(w0)):.1f}" '
                f'height="{rows_per_group * ROW}" fill="none" stroke="#555" stroke-dasharray="3,2"/>'
            )
        subjects = [s for s in nodes if s != o]
        mine = [ob for ob in obs if ob.observer == o]
        for ri, s in enumerate(subjects):
            y = gy + 10 + ri * ROW
            out.append(f'<text x="{LEFT - 30}" y="{y + ROW - 1}">{html.escape(s)}</text>')
            for w0, w1 in faults.down.get(s, []):
                out.append(_band(x(w0), x(w1), y, "#616161", f"{s} down {w0:.2f}-{min(w1, end):.2f}s"))
            for w0, w1 in faults.paused.get(s, []):
                out.append(_band(x(w0), x(w1), y, "#8e24aa", f"{s} paused {w0:.2f}-{min(w1, end):.2f}s"))
            for i, ob in enumerate(mine):
                st = ob.status(s)
                if st not in COLORS:
                    continue
                m = (ob.t0 + ob.t1) / 2
                nxt = (mine[i + 1].t0 + mine[i + 1].t1) / 2 if i + 1 < len(mine) else m + 0.25
                m1 = min(nxt, m + MAX_SEGMENT_S)
                inc = ob.incarnation_of(s)
                out.append(
                    f'<rect x="{x(m):.1f}" y="{y + 2}" width="{max(0.8, x(m1) - x(m)) + 0.6:.1f}" height="{ROW - 4}" '
                    f'fill="{COLORS[st]}"><title>{html.escape(o)}: {html.escape(s)} {st} inc {inc} '
                    f"at {m:.2f}s</title></rect>"
                )
    axis_y = height - 20
    out.append(f'<line x1="{LEFT}" y1="{axis_y}" x2="{x(end):.1f}" y2="{axis_y}" stroke="#333"/>')
    step = _tick_step(end)
    t = 0.0
    while t <= end + 1e-9:
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 12}" text-anchor="middle">{t:g}s</text>')
        t += step
    legend = [("alive", COLORS["alive"]), ("suspect", COLORS["suspect"]), ("dead", COLORS["dead"])]
    legend += [("subject down", "#616161"), ("subject paused", "#8e24aa")]
    legend += [(k, VOCABULARY.colour(k)) for k in sorted({w.kind for w in faults.network})]
    lx = LEFT
    for name, color in legend:
        out.append(f'<rect x="{lx}" y="4" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 14}" y="13">{name}</text>')
        lx += 20 + 7 * len(name)
    out.append(f'<text x="{lx}" y="13">dashed box: observer down or paused</text>')
    out.append("</svg>")
    return "\n".join(out)


def _band(x0: float, x1: float, y: float, color: str, title: str) -> str:
    return (
        f'<rect x="{x0:.1f}" y="{y}" width="{max(1.0, x1 - x0):.1f}" height="{ROW}" fill="{color}" '
        f'opacity="0.3"><title>{html.escape(title)}</title></rect>'
    )


def _tick_step(end: float) -> float:
    for step in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600):
        if end / step <= 12:
            return float(step)
    return 1200.0
