// One run: its verdict, checkers, report (in a frame), raw files, diagram link, and a run to compare it with.
"use strict";

const path = params().get("path") || "";

function size(n) { return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`; }

function tab(which) {
  for (const name of ["report", "files"]) {
    document.getElementById(`tab-${name}`).classList.toggle("active", name === which);
    document.getElementById(`pane-${name}`).hidden = name !== which;
  }
}

async function main() {
  let run;
  try { run = await api(`/api/run?path=${encodeURIComponent(path)}`); } catch (err) { showError(document.getElementById("problem"), err); return; }
  const t = run.test;
  document.title = `${t.system} ${path}`;
  document.getElementById("crumb").textContent = path;
  document.getElementById("title").replaceChildren(`${t.system} / ${t.workload} under ${(t.nemesis || []).join(", ") || "no faults"} `, badge(run.valid));
  const banners = document.getElementById("banners");
  if (run.partial) banners.append(el("div", { class: "warning" }, el("b", {}, "Partial history: "), run.partial));
  if (run.faults) banners.append(el("div", { class: "warning" }, el("b", {}, "Faults: "), run.faults));
  if (!run.report) banners.append(el("div", { class: "warning" }, "Not checked yet: ", el("code", {}, `harness check results/${path}`)));
  const rows = [["backend", t.backend], ["nodes", (t.nodes || []).join(" ")], ["seed", t.seed], ["bugs", (t.bugs || []).join(", ") || "none"],
    ["time limit", `${t.time_limit_s} s`], ["command", t.command_line ? el("code", {}, t.command_line) : null]]
    .filter(([, v]) => v !== null);
  document.getElementById("summary").replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v))));
  document.querySelector("#checkers tbody").replaceChildren(...Object.entries(run.checkers).map(([name, c]) =>
    el("tr", {}, el("td", {}, name), el("td", {}, badge(c.valid)), el("td", {}, c.summary))));
  if (run.flow) {
    const link = document.getElementById("diagram-link");
    link.href = diagramHref(path);
    link.title = run.flow === "journal" ? "from the sim journal" : "from the bridge capture";
    link.hidden = false;
  }
  document.getElementById("report").src = run.report ? `/files/${path}/report.html` : "about:blank";
  document.querySelector("#files tbody").replaceChildren(...run.files.map((f) =>
    el("tr", {}, el("td", {}, el("a", { href: `/files/${path}/${f.name}` }, f.name)), el("td", {}, size(f.size)))));
  // runs to compare with: the same system, the same seed first
  const others = await api(`/api/runs?system=${encodeURIComponent(t.system)}&per_page=200`).catch(() => ({ runs: [] }));
  const candidates = others.runs.filter((r) => r.path !== path)
    .sort((a, b) => (b.seed === t.seed) - (a.seed === t.seed));
  const select = document.getElementById("compare-with");
  select.append(...candidates.map((r) => el("option", { value: r.path }, `${r.path} (seed ${r.seed}, ${r.verdict})`)));
  select.addEventListener("change", () => { document.getElementById("compare").disabled = !select.value; });
  document.getElementById("compare").addEventListener("click", () => {
    location.href = `/compare?a=${encodeURIComponent(path)}&b=${encodeURIComponent(select.value)}`;
  });
  markLoaded();
}

document.getElementById("tab-report").addEventListener("click", () => tab("report"));
document.getElementById("tab-files").addEventListener("click", () => tab("files"));
main();
