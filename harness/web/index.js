// The index: runs (filtered, searched, sorted, paged by /api/runs) and sweeps. State lives in the URL.
"use strict";

const FILTERS = ["system", "workload", "nemesis", "bug", "backend", "verdict", "interrupted", "sweep"];
const state = params();
const picked = new Set();
let searchTimer = null;
let latest = 0;  // the newest load: an older answer arriving after it is dropped, never drawn over it

function fillSelect(name, values) {
  const select = document.getElementById(`f-${name}`);
  const want = state.get(name) || "";
  select.replaceChildren(el("option", { value: "" }, "any"),
    ...values.map(([v, n]) => el("option", { value: v, selected: v === want }, `${v} (${n})`)));
  if (want && !values.some(([v]) => v === want)) select.append(el("option", { value: want, selected: true }, `${want} (0)`));
}

function row(r) {
  const notes = [];
  if (r.interrupted) notes.push(el("span", { class: "tag", title: r.partial || "" }, "interrupted"));
  else if (r.partial) notes.push(el("span", { class: "tag", title: r.partial }, "partial"));
  if (r.sweep) notes.push(el("a", { class: "tag sweep", href: `/files/${r.sweep}/` }, "sweep"));
  if (r.flow) notes.push(el("a", { class: "flow", href: diagramHref(r.path) }, "⇄ messages"));
  if (!r.checked) notes.push(el("code", {}, `harness check results/${r.path}`));
  const box = el("input", { type: "checkbox", class: "pick", "data-path": r.path, checked: picked.has(r.path),
    onchange: (e) => { e.target.checked ? picked.add(r.path) : picked.delete(r.path); updatePicked(); } });
  return el("tr", { class: "run", "data-path": r.path },
    el("td", {}, box), el("td", {}, runLink(r.path, r.name)), el("td", {}, r.system), el("td", {}, r.workload),
    el("td", {}, r.nemesis.join(", ") || "none"), el("td", {}, r.backend), el("td", {}, r.seed ?? ""),
    el("td", {}, r.bugs.join(", ") || "–"), el("td", { class: "verdict" }, badge(r.verdict)), el("td", {}, notes));
}

function updatePicked() {
  const list = [...picked];
  document.getElementById("picked").textContent = list.length ? list.join("  vs  ") : "";
  document.getElementById("compare").disabled = list.length !== 2;
}

async function load() {
  const mine = ++latest;
  const q = new URLSearchParams(state);
  if (!q.get("per_page")) q.set("per_page", document.getElementById("per-page").value);
  const problem = document.getElementById("problem");
  let data;
  try { data = await api(`/api/runs?${q}`); } catch (err) { if (mine === latest) showError(problem, err); return; }
  if (mine !== latest) return;
  problem.replaceChildren();
  for (const name of FILTERS) fillSelect(name, data.facets[name] || []);
  document.getElementById("run-rows").replaceChildren(...data.runs.map(row));
  const shown = data.matched === data.total ? `${data.total}` : `${data.matched} of ${data.total}`;
  document.getElementById("count").textContent = `(${shown})`;
  document.getElementById("page").textContent = `page ${data.page} of ${data.pages}`;
  document.getElementById("prev").disabled = data.page <= 1;
  document.getElementById("next").disabled = data.page >= data.pages;
  const sort = state.get("sort") || "name", asc = state.get("order") === "asc";
  for (const th of document.querySelectorAll("th.sortable")) {
    th.classList.toggle("sorted", th.dataset.sort === sort);
    th.classList.toggle("asc", th.dataset.sort === sort && asc);
  }
  document.body.dataset.shows = q.toString();  // what the table shows (tests wait for it)
  markLoaded();
}

async function loadSweeps() {
  let data;
  try { data = await api("/api/sweeps"); } catch { return; }
  if (!data.sweeps.length) return;
  document.getElementById("sweeps").hidden = false;
  document.getElementById("sweep-rows").replaceChildren(...data.sweeps.map((s) => {
    const counts = s.counts || {};
    const verdicts = ["valid", "invalid", "unknown", "error"].filter((k) => counts[k])
      .map((k) => el("span", {}, badge(k), ` ${counts[k]} `));
    const runs = el("a", { href: `/?sweep=${encodeURIComponent(s.path)}` }, "list them");
    return el("tr", {}, el("td", {}, s.page ? el("a", { href: `/files/${s.path}/` }, s.path) : s.path),
      el("td", {}, s.system || (s.base || {}).system || s.path.split("/")[0]),
      el("td", {}, `${s.done ?? "?"}/${s.seeds ?? "?"}`), el("td", {}, verdicts.length ? verdicts : "running"),
      el("td", {}, runs));
  }));
}

function change(name, value) {
  if (value) state.set(name, value); else state.delete(name);
  if (name !== "page") state.delete("page");
  setParams(state);
  load();
}

for (const name of FILTERS) document.getElementById(`f-${name}`).addEventListener("change", (e) => change(name, e.target.value));
document.getElementById("per-page").addEventListener("change", (e) => change("per_page", e.target.value));
if (state.get("per_page")) document.getElementById("per-page").value = state.get("per_page");
const search = document.getElementById("q");
search.value = state.get("q") || "";
search.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => change("q", search.value.trim()), 250); });
document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); change("q", search.value.trim()); });
document.getElementById("clear").addEventListener("click", () => { for (const k of [...state.keys()]) state.delete(k); search.value = ""; setParams(state); load(); });
for (const th of document.querySelectorAll("th.sortable")) {
  th.addEventListener("click", () => {
    const same = (state.get("sort") || "name") === th.dataset.sort;
    state.set("sort", th.dataset.sort);
    state.set("order", same && state.get("order") !== "asc" ? "asc" : "desc");
    change("page", "");
  });
}
document.getElementById("prev").addEventListener("click", () => change("page", String(Math.max(1, Number(state.get("page") || 1) - 1))));
document.getElementById("next").addEventListener("click", () => change("page", String(Number(state.get("page") || 1) + 1)));
document.getElementById("compare").addEventListener("click", () => {
  const [a, b] = [...picked];
  location.href = `/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
});
load();
loadSweeps();
