// The message-flow (Lamport) diagram: /api/diagram's window drawn as SVG, zoomable to a time window.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const state = params();
const run = state.get("run") || "";
const OUTCOME = { ok: "#2da44e", fail: "#cf222e", info: "#d4a72c" };
const PALETTE = ["#0969da", "#8250df", "#1a7f37", "#bc4c00", "#bf3989", "#0a3069", "#6639ba", "#116329", "#953800", "#4d2d00"];
const LAYOUT = { top: 56, axis: 90, opCol: 11, laneGap: 150, right: 160, bottom: 30, opsGap: 110 };
let data = null;

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}
function title(text) { return svg("title", {}, text); }

// Each message type its own colour, given in order of the names (stable for a run's window).
let COLOURS = {};
function assignColours() {
  const names = [...new Set(data.messages.map((m) => m[5] || m[4]))].sort();
  COLOURS = Object.fromEntries(names.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
}
function colourOf(method) { return COLOURS[method] || PALETTE[0]; }

function niceStep(span, target) {
  const raw = span / target, p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
}

// Client ops packed into columns: an op goes in the first column free at its start.
function packOps(ops) {
  const ends = [];
  return ops.slice().sort((a, b) => a.start - b.start).map((o) => {
    let col = ends.findIndex((e) => e < o.start);
    if (col < 0) { col = ends.length; ends.push(0); }
    ends[col] = o.end;
    return { ...o, col };
  });
}

// Linear time: y proportional to time in the window.
function timeScale(t0, t1, height) {
  const pxs = (height - LAYOUT.top - LAYOUT.bottom) / (t1 - t0);
  const y = (t) => LAYOUT.top + (Math.min(Math.max(t, t0), t1) - t0) * pxs;
  const tAt = (py) => t0 + (Math.min(Math.max(py, LAYOUT.top), height - LAYOUT.bottom) - LAYOUT.top) / pxs;
  const step = niceStep(t1 - t0, Math.max(4, (height - 100) / 70));
  const list = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-12; t += step) list.push(t);
  ticks = () => list;
  return { y, tAt };
}

// Event order, as Lamport drew it: every distinct event time (a send, an arrival, an op or a fault starting
// or ending) gets its own row, evenly spaced; between two events y is interpolated. Order is kept, so an
// arrow still runs from its send to its arrival, but a burst of messages within a millisecond is as
// readable as one spread over seconds.
function eventScale(msgs, ops, faults, t0, t1, height) {
  const times = [t0, t1];
  for (const m of msgs) { times.push(m.sent); if (m.recv !== null) times.push(m.recv); }
  for (const o of ops) times.push(o.start, o.end);
  for (const f of faults) times.push(f.start, f.end);
  const keys = [...new Set(times.filter((t) => t >= t0 && t <= t1))].sort((a, b) => a - b);
  const row = (height - LAYOUT.top - LAYOUT.bottom) / Math.max(1, keys.length - 1);
  const y = (t) => {
    t = Math.min(Math.max(t, t0), t1);
    let lo = 0, hi = keys.length - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (keys[mid] <= t) lo = mid; else hi = mid; }
    const frac = keys[hi] > keys[lo] ? (t - keys[lo]) / (keys[hi] - keys[lo]) : 0;
    return LAYOUT.top + (lo + frac) * row;
  };
  const tAt = (py) => {
    const r = Math.min(Math.max((py - LAYOUT.top) / row, 0), keys.length - 1), i = Math.floor(r);
    return i >= keys.length - 1 ? keys[keys.length - 1] : keys[i] + (r - i) * (keys[i + 1] - keys[i]);
  };
  ticks = () => keys;
  return { y, tAt };
}
let ticks = () => [];

function draw() {
  const d = data, [t0, t1] = d.window;
  const msgs = d.messages.map(([src, dst, sent, recv, kind, method, fate, note]) => ({ src, dst, sent, recv, kind, method, fate, note }));
  const ops = packOps(d.ops);
  const cols = Math.max(1, ...ops.map((o) => o.col + 1));
  const opsWidth = Math.min(cols, 40) * LAYOUT.opCol;
  const x0 = LAYOUT.axis + Math.max(opsWidth, 70) + LAYOUT.opsGap;
  const lanes = d.lanes, laneX = {};
  lanes.forEach((name, i) => { laneX[name] = x0 + i * LAYOUT.laneGap; });
  const width = x0 + (lanes.length - 1) * LAYOUT.laneGap + LAYOUT.right;
  const height = Math.max(560, Math.min(8000, 90 + msgs.length * 18));
  const { y, tAt } = document.getElementById("by-event").checked
    ? eventScale(msgs, ops, d.faults, t0, t1, height) : timeScale(t0, t1, height);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "flow-svg", "font-family": "system-ui,sans-serif", "font-size": 11 });
  const defs = svg("defs", {}), heads = {};
  const head = (colour) => {  // one arrowhead marker per colour
    if (!(colour in heads)) {
      heads[colour] = `head${Object.keys(heads).length}`;
      defs.append(svg("marker", { id: heads[colour], viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", fill: colour })));
    }
    return `url(#${heads[colour]})`;
  };
  root.append(defs);
  // fault windows: network-wide bands, node faults on their lane
  for (const f of d.faults) {
    const ya = y(f.start), yb = Math.max(y(f.end), ya + 2);
    const label = `${f.kind} ${f.start.toFixed(3)}–${f.end.toFixed(3)} s: ${f.description}`;
    const onLanes = f.nodes.filter((n) => n in laneX);
    if (["kill", "pause", "power-off", "link-down", "leave"].includes(f.kind) && onLanes.length) {
      for (const n of onLanes) root.append(svg("rect", { x: laneX[n] - 7, y: ya, width: 14, height: yb - ya, fill: f.colour, opacity: 0.45, class: "fault" }, title(label)));
    } else {
      root.append(svg("rect", { x: x0 - 40, y: ya, width: width - LAYOUT.right + 120 - x0, height: yb - ya, fill: f.colour, opacity: 0.13, class: "fault" }, title(label)));
    }
    root.append(svg("text", { x: width - LAYOUT.right + 50, y: ya + 12, fill: f.colour, "font-weight": 600 }, f.kind));
  }
  // the op asked about
  if (d.focus) {
    const f = d.focus;
    root.append(svg("rect", { x: LAYOUT.axis, y: y(f.start), width: width - LAYOUT.axis, height: Math.max(2, y(f.end) - y(f.start)), fill: "#fff8c5", stroke: "#d4a72c", "stroke-dasharray": "4 3", id: "focus" },
      title(`op ${f.index}: ${f.f} ${f.key ?? ""} → ${JSON.stringify(f.value)} (${f.type})`)));
  }
  // time axis: evenly spaced times, or (event order) the times of events at least 40 px apart
  let lastY = -1e9;
  for (const t of ticks(t0, t1, height)) {
    if (y(t) - lastY < 40) continue;
    lastY = y(t);
    root.append(svg("line", { x1: LAYOUT.axis - 4, x2: width - LAYOUT.right + 40, y1: y(t), y2: y(t), stroke: "#eaeef2" }));
    root.append(svg("text", { x: LAYOUT.axis - 8, y: y(t) + 4, "text-anchor": "end", fill: "#59636e" }, `${+t.toFixed(6)} s`));
  }
  // lanes
  for (const name of lanes) {
    const node = d.nodes.includes(name);
    root.append(svg("line", { x1: laneX[name], x2: laneX[name], y1: LAYOUT.top - 6, y2: height - LAYOUT.bottom + 6, stroke: node ? "#57606a" : "#8c959f", "stroke-width": node ? 2 : 1.5, "stroke-dasharray": node ? null : "5 3" }));
    root.append(svg("text", { x: laneX[name], y: LAYOUT.top - 16, "text-anchor": "middle", "font-weight": 700, "font-size": 13, class: "lane" }, name));
  }
  // client ops
  root.append(svg("text", { x: LAYOUT.axis + 4, y: LAYOUT.top - 16, "font-weight": 700, "font-size": 12 }, "client ops"));
  for (const o of ops) {
    if (o.col >= 40) continue;
    const x = LAYOUT.axis + 6 + o.col * LAYOUT.opCol, ya = y(o.start), yb = Math.max(y(o.end), ya + 3);
    const bar = svg("rect", { x, y: ya, width: LAYOUT.opCol - 3, height: yb - ya, rx: 2, fill: OUTCOME[o.type] || "#8c959f", class: "op", "data-op": o.index, cursor: "pointer",
      stroke: d.focus && d.focus.index === o.index ? "#24292f" : null, "stroke-width": 2 },
      title(`op ${o.index} (process ${o.process}): ${o.f} ${o.key ?? ""} → ${JSON.stringify(o.value)} [${o.type}] via ${o.node}, ${o.start.toFixed(4)}–${o.end.toFixed(4)} s`));
    bar.addEventListener("click", () => focusOp(o.index));
    root.append(bar);
  }
  // messages
  const labels = document.getElementById("labels").checked && msgs.length <= 400;
  for (const m of msgs) {
    if (!(m.src in laneX) || !(m.dst in laneX)) continue;
    const xa = laneX[m.src], xb = laneX[m.dst], ya = y(m.sent);
    const colour = m.fate === "delivered" ? colourOf(m.method || m.kind) : "#cf222e";
    let x2 = xb, y2 = m.recv === null ? ya + 12 : y(m.recv);
    if (m.fate === "lost") x2 = xa + (xb - xa) * 0.35;
    const tip = `${m.src} → ${m.dst}  ${m.method || "(reply)"} [${m.kind}]  sent ${m.sent.toFixed(6)} s` +
      (m.recv === null ? "" : `, ${m.fate === "delivered" ? "received" : "dropped"} ${m.recv.toFixed(6)} s`) + `  ${m.fate}${m.note ? ": " + m.note : ""}`;
    const g = svg("g", { class: `msg ${m.fate}` }, title(tip));
    g.append(svg("line", { x1: xa, y1: ya, x2, y2, stroke: colour, "stroke-width": 1.3, "stroke-dasharray": m.fate === "delivered" ? null : "4 3", "marker-end": m.fate === "delivered" ? head(colour) : null }));
    if (m.fate !== "delivered") {
      g.append(svg("path", { d: `M${x2 - 4},${y2 - 4} L${x2 + 4},${y2 + 4} M${x2 - 4},${y2 + 4} L${x2 + 4},${y2 - 4}`, stroke: "#cf222e", "stroke-width": 2 }));
    }
    if (labels && m.method) {
      const mx = xa + (x2 - xa) * 0.5, my = ya + (y2 - ya) * 0.5;
      g.append(svg("text", { x: mx, y: my - 3, "text-anchor": "middle", fill: colour, "font-size": 10 }, m.method));
    }
    root.append(g);
  }
  // drag to zoom
  const brush = svg("rect", { x: 0, y: 0, width, height: 0, fill: "#0969da", opacity: 0.15, visibility: "hidden" });
  root.append(brush);
  let startY = null;
  const yAt = (ev) => ev.clientY - root.getBoundingClientRect().top;
  root.addEventListener("mousedown", (ev) => { if (ev.target.classList.contains("op")) return; startY = yAt(ev); ev.preventDefault(); });
  root.addEventListener("mousemove", (ev) => {
    if (startY === null) return;
    const a = Math.min(startY, yAt(ev)), b = Math.max(startY, yAt(ev));
    brush.setAttribute("y", a); brush.setAttribute("height", b - a); brush.setAttribute("visibility", "visible");
  });
  root.addEventListener("mouseup", (ev) => {
    if (startY === null) return;
    const a = Math.min(startY, yAt(ev)), b = Math.max(startY, yAt(ev));
    startY = null; brush.setAttribute("visibility", "hidden");
    if (b - a < 8) return;
    show(tAt(a), tAt(b));
  });
  document.getElementById("chart").replaceChildren(root);
}

function legend() {
  const methods = Object.keys(COLOURS).slice(0, 14);
  document.getElementById("legend").replaceChildren(
    ...methods.map((m) => el("span", {}, el("span", { class: "swatch", style: `border-color:${colourOf(m)}` }), m)),
    el("span", {}, el("span", { class: "swatch", style: "border-color:#cf222e;border-top-style:dashed" }), "dropped (×) or lost"),
    ...data.faults.map((f) => el("span", {}, el("span", { class: "swatch", style: `border-color:${f.colour};border-top-width:8px` }), f.kind)));
}

let latest = 0;  // the newest load: an older answer arriving after it (quick clicks on zoom) is dropped

async function load(query) {
  const mine = ++latest;
  if (!data) document.getElementById("info").textContent = "loading the messages (a capture is decoded the first time it is shown)…";
  let answer;
  try { answer = await api(`/api/diagram?${query}`); } catch (err) { if (mine === latest) showError(document.getElementById("problem"), err); return; }
  if (mine !== latest) return;
  data = answer;
  const [a, b] = data.window;
  document.getElementById("from").value = +a.toFixed(6);
  document.getElementById("to").value = +b.toFixed(6);
  const shown = data.cut ? `the first ${data.messages.length} of ${data.count} messages (zoom in to see every one)` : `${data.count} messages`;
  document.getElementById("info").textContent = `${shown} between ${seconds(a)} and ${seconds(b)} of a run spanning ${seconds(data.span[0])}–${seconds(data.span[1])}; ${data.ops.length} client ops, ${data.faults.length} faults. Source: ${data.alignment}.`;
  if (data.focus) document.getElementById("title").textContent = `Message flow around op ${data.focus.index}: ${data.focus.f} ${data.focus.key ?? ""}`;
  assignColours();
  legend();
  draw();
  markLoaded();
}

function show(a, b) {
  state.set("from", String(+a.toFixed(6))); state.set("to", String(+b.toFixed(6)));
  setParams(state);
  load(state.toString());
}

function focusOp(index) {
  state.delete("from"); state.delete("to"); state.set("op", String(index));
  setParams(state);
  load(state.toString());
}

const crumb = document.getElementById("crumb");
crumb.textContent = run; crumb.href = `/run?path=${encodeURIComponent(run)}`;
document.getElementById("controls").addEventListener("submit", (e) => { e.preventDefault(); show(Number(document.getElementById("from").value), Number(document.getElementById("to").value)); });
const span = () => data.window[1] - data.window[0];
document.getElementById("earlier").addEventListener("click", () => show(data.window[0] - span() / 2, data.window[1] - span() / 2));
document.getElementById("later").addEventListener("click", () => show(data.window[0] + span() / 2, data.window[1] + span() / 2));
document.getElementById("zoom-in").addEventListener("click", () => show(data.window[0] + span() / 4, data.window[1] - span() / 4));
document.getElementById("zoom-out").addEventListener("click", () => show(data.window[0] - span() / 2, data.window[1] + span() / 2));
document.getElementById("labels").addEventListener("change", () => data && draw());
document.getElementById("by-event").addEventListener("change", () => data && draw());
load(state.toString());
