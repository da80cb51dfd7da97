// Shared helpers of the results browser's pages (no framework, no external scripts).
"use strict";

async function api(path) {
  const res = await fetch(path);
  const data = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
  if (!res.ok || data.error) throw new Error(data.error || `${res.status}`);
  return data;
}

// el("a", {href: "/x", class: "c"}, "text", child, ...): a DOM element; text is never parsed as HTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function verdictWord(v) {
  if (v === true || v === "valid") return "valid";
  if (v === false || v === "invalid") return "invalid";
  if (v === "unchecked" || v === "unreadable" || v === "error") return v;
  return "unknown";
}

function badge(v) {
  const w = verdictWord(v);
  return el("span", { class: `badge v-${w}` }, w === "invalid" ? "INVALID" : w);
}

function params() { return new URLSearchParams(location.search); }

function setParams(p) {
  const q = p.toString();
  history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
}

function runLink(path, text) { return el("a", { href: `/run?path=${encodeURIComponent(path)}`, class: "run-link" }, text || path); }

function diagramHref(run, extra) {
  const p = new URLSearchParams({ run, ...(extra || {}) });
  return `/diagram?${p.toString()}`;
}

function seconds(s) { return `${Number(s).toFixed(3)} s`; }

function showError(where, err) {
  where.replaceChildren(el("div", { class: "error" }, String(err.message || err)));
}

// Count this page's draws in body[data-loaded] (1, 2, ...): a test waits for the next one, never on the clock.
function markLoaded() {
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}
