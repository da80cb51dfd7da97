// Two runs: tests, verdicts and checkers side by side; the first op where their histories differ.
"use strict";

const p = params();

function side(s, label) {
  const t = s.test || {};
  const checkers = Object.entries(s.checkers).map(([name, c]) => el("tr", {}, el("td", {}, name), el("td", {}, badge(c.valid)), el("td", {}, c.summary)));
  return [el("h2", {}, `${label}: `, runLink(s.path), " ", badge(s.valid)),
    el("p", { class: "muted" }, `${t.system} / ${t.workload} · ${t.backend} · seed ${t.seed} · bugs: ${(t.bugs || []).join(", ") || "none"}`),
    s.error ? el("div", { class: "error" }, s.error) : null,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "checker"), el("th", {}, "verdict"), el("th", {}, "summary"))), el("tbody", {}, checkers))]
    .filter((x) => x !== null);
}

function opLine(op) {
  if (!op) return "(history ends)";
  const { index, time, ...rest } = op;
  return `${String(index).padStart(5)}  ${(time / 1e9).toFixed(3).padStart(8)} s  ${JSON.stringify(rest)}`;
}

function context(ops, from, at) {
  return el("pre", { class: "ops" }, ops.map((op, i) => el("span", { class: from + i === at ? "hit" : "same" }, opLine(op))));
}

function diagramLink(run, op) {
  return op !== null && op !== undefined ? el("a", { class: "flow", href: diagramHref(run, { op: String(op) }) }, "⇄ messages around it") : null;
}

async function main() {
  let data;
  try { data = await api(`/api/compare?a=${encodeURIComponent(p.get("a") || "")}&b=${encodeURIComponent(p.get("b") || "")}`); } catch (err) { showError(document.getElementById("problem"), err); return; }
  document.getElementById("a").replaceChildren(...side(data.a, "left"));
  document.getElementById("b").replaceChildren(...side(data.b, "right"));
  const diffs = data.test_differences.map((d) => el("tr", {}, el("td", {}, d.field), el("td", {}, el("code", {}, JSON.stringify(d.a))), el("td", {}, el("code", {}, JSON.stringify(d.b)))));
  document.querySelector("#diffs tbody").replaceChildren(...(diffs.length ? diffs : [el("tr", {}, el("td", { colspan: 3 }, "the same test"))]));
  const d = data.divergence, out = document.getElementById("divergence");
  if (d.identical) {
    const times = d.time_index === null ? "and at the same times" : `but times first differ at op ${d.time_index}`;
    out.replaceChildren(el("p", { id: "verdict-line" }, `The histories are the same: ${d.a_ops} ops, op for op, ${times}.`));
  } else {
    const fields = d.fields.length ? ` (${d.fields.join(", ")} differ)` : "";
    out.replaceChildren(
      el("p", { id: "verdict-line" }, el("b", {}, `First divergence at line ${d.index}`), fields,
        `; the left history has ${d.a_ops} ops, the right ${d.b_ops}.`,
        d.time_index !== null ? ` Times already differed from op ${d.time_index}.` : ""),
      el("div", { class: "cols" },
        el("div", {}, el("h3", {}, "left ", (data.a.flow ? diagramLink(data.a.path, d.a_op) : null)), context(d.a_context, d.context_from, d.index)),
        el("div", {}, el("h3", {}, "right ", (data.b.flow ? diagramLink(data.b.path, d.b_op) : null)), context(d.b_context, d.context_from, d.index))));
  }
  markLoaded();
}

main();
