"""Convergence and load checkers for the KV store, from the nodes' final `dump` ops.

Rules these checkers keep:

- They read only ok completions of `{"f": "dump", "final": true}` ops (one
  per node, after the final heal and the quiet period), whose value is the
  node's report: {node, members, vnodes, n, keys: {key: {dots, values,
  clock, pref}}, held: {key: dots held for other nodes}, hints}.
- convergence: every node must report the same ring members; for every key,
  each node of its preference list (under that ring) must report it, with the
  same set of sibling dots. A node that reports a key it is not a replica of
  is ignored. Every write a node holds for others (sloppy quorum) must by
  then be covered by the clock of every replica of its key (delivered, or
  superseded by a write that saw it): hinted handoff's promise. Pending hints
  are reported as evidence, not failed. A missing or failed dump makes an
  otherwise clean verdict "unknown" (nothing proves convergence there).
- Placement is judged with checkers/ring_reference.py, never the system's
  own ring code: when the nodes agree on the members, a key's preference list
  as a node reports it (`pref`) must equal the reference ring's, or the key
  is misplaced (invalid).
- load: the share of the hash space each member owns as primary, the number
  of keys each node replicates, and their standard deviations, for the
  vnode count in use. It is a measurement: always valid when dumps exist.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import Any

from base.history import Op, pairs
from checkers.ring_reference import ReferenceRing, std_dev

MAX_EVIDENCE = 50


def final_dumps(history: list[Op]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(node -> its dump, nodes whose final dump did not succeed)."""
    dumps: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for p in pairs(history):
        if p.invoke.get("f") != "dump" or not p.invoke.get("final"):
            continue
        node = p.invoke.get("node")
        if p.type == "ok" and isinstance(p.complete.get("value"), dict):
            dumps[node] = p.complete["value"]
        else:
            failed.append(str(node))
    return dumps, failed


def _vnodes(dumps: dict[str, dict[str, Any]], test: dict[str, Any]) -> int:
    """Vnodes per node as the nodes report it, else as the test configured the nodes."""
    reported = next(iter(dumps.values())).get("vnodes")
    if isinstance(reported, int) and reported > 0:
        return reported
    configured = (test.get("options") or {}).get("vnodes")
    if isinstance(configured, int) and configured > 0:
        return configured
    raise ValueError("the nodes' dumps do not say how many vnodes they use, and neither does the test")


def check(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    dumps, failed = final_dumps(history)
    if not dumps:
        return {"valid": "unknown", "summary": "no final dump of the replicas", "failed_dumps": failed}
    views = Counter(tuple(sorted(d.get("members", []))) for d in dumps.values())
    members = list(views.most_common(1)[0][0])
    ring_split = len(views) > 1
    n = int(next(iter(dumps.values())).get("n", 3))
    vnodes = _vnodes(dumps, test)
    ring = ReferenceRing(members, vnodes)
    keys = sorted({k for d in dumps.values() for k in d.get("keys", {})})
    divergent: list[dict[str, Any]] = []
    for key in keys:
        pref = ring.preference_list(key, n)
        copies = {}
        for node in pref:
            if node not in dumps:
                continue
            entry = dumps[node].get("keys", {}).get(key)
            copies[node] = sorted(tuple(d) for d in entry["dots"]) if entry else None
        distinct = {repr(c) for c in copies.values()}
        if len(distinct) > 1:
            divergent.append(
                {
                    "key": key,
                    "replicas": {
                        node: (dumps[node]["keys"][key]["values"] if c is not None else None)
                        for node, c in copies.items()
                    },
                    "dots": {node: c for node, c in copies.items()},
                }
            )
    misplaced = [] if ring_split else misplaced_keys(dumps, ring, n)
    undelivered = undelivered_writes(dumps, ring, n)
    hints = {node: d.get("hints", 0) for node, d in dumps.items() if d.get("hints")}
    valid: bool | str = not divergent and not ring_split and not undelivered and not misplaced
    if valid and failed:
        valid = "unknown"
    if divergent:
        summary = f"{len(divergent)} of {len(keys)} keys differ between their replicas after the quiet period"
    elif undelivered:
        summary = (
            f"{len(undelivered)} writes held by stand-ins never reached their key's replicas "
            "(hinted handoff did not deliver)"
        )
    elif misplaced:
        summary = (
            f"{len(misplaced)} keys are placed on other nodes than the ring's rules say "
            f"(e.g. {misplaced[0]['key']} on {misplaced[0]['reported']}, expected {misplaced[0]['expected']})"
        )
    elif ring_split:
        summary = f"nodes disagree on the ring members: {len(views)} views"
    else:
        summary = f"all replicas of {len(keys)} keys hold the same siblings"
    if failed:
        summary += f"; no final dump from {', '.join(sorted(failed))}"
    if hints:
        summary += f"; hints still pending on {', '.join(sorted(hints))}"
    return {
        "valid": valid,
        "summary": summary,
        "keys": len(keys),
        "members": members,
        "ring_views": [list(v) for v in views],
        "divergent": divergent[:MAX_EVIDENCE],
        "undelivered": undelivered[:MAX_EVIDENCE],
        "misplaced": misplaced[:MAX_EVIDENCE],
        "pending_hints": hints,
        "failed_dumps": failed,
    }


def misplaced_keys(dumps: dict[str, dict[str, Any]], ring: ReferenceRing, n: int) -> list[dict[str, Any]]:
    """Keys whose preference list, as a node reports it, differs from the reference ring's."""
    out = []
    for node, d in sorted(dumps.items()):
        for key, entry in sorted((d.get("keys") or {}).items()):
            reported = (entry or {}).get("pref")
            if not isinstance(reported, list):
                continue
            expected = ring.preference_list(key, n)
            if list(reported) != expected:
                out.append({"key": key, "node": node, "reported": list(reported), "expected": expected})
    return out


def undelivered_writes(dumps: dict[str, dict[str, Any]], ring: ReferenceRing, n: int) -> list[dict[str, Any]]:
    """Dots a node holds for others (sloppy quorum) that some replica of the key has not seen."""
    out = []
    for holder, d in sorted(dumps.items()):
        for key, dots in sorted((d.get("held") or {}).items()):
            for node, counter in dots:
                missing = [
                    r
                    for r in ring.preference_list(key, n)
                    if r in dumps
                    and int(((dumps[r].get("keys", {}).get(key) or {}).get("clock") or {}).get(node, 0)) < counter
                ]
                if missing:
                    out.append({"key": key, "dot": [node, counter], "held_by": holder, "missing_on": missing})
    return out


def load_figures(members: list[str], vnodes: int, key_counts: dict[str, int]) -> dict[str, Any]:
    shares = ReferenceRing(members, vnodes).shares()
    return {
        "vnodes": vnodes,
        "shares": {k: round(v, 6) for k, v in sorted(shares.items())},
        "share_std_dev": round(std_dev(shares.values()), 6),
        "share_ideal": round(1 / len(members), 6) if members else None,
        "keys_per_node": dict(sorted(key_counts.items())),
        "keys_std_dev": round(std_dev(key_counts.values()), 6),
    }


def check_load(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    dumps, _ = final_dumps(history)
    if not dumps:
        return {"valid": "unknown", "summary": "no final dump of the replicas"}
    views = Counter(tuple(sorted(d.get("members", []))) for d in dumps.values())
    members = list(views.most_common(1)[0][0])
    vnodes = _vnodes(dumps, test)
    counts = {node: len(d.get("keys", {})) for node, d in dumps.items()}
    figures = load_figures(members, vnodes, counts)
    worst = max(figures["shares"].items(), key=lambda kv: kv[1]) if figures["shares"] else ("-", 0.0)
    summary = (
        f"{len(members)} members x {vnodes} vnodes: hash-space share std dev {figures['share_std_dev']:.4f} "
        f"(ideal share {figures['share_ideal']}); largest {worst[0]} {worst[1]:.3f}"
    )
    return {"valid": True, "summary": summary, "kind": "kv_convergence", **figures}


def render_html(result: dict[str, Any]) -> str:
    """Load: a bar per node (hash-space share and replicated keys); convergence: nothing extra."""
    shares = result.get("shares")
    if not shares:
        return ""
    ideal = result.get("share_ideal") or 0.0
    top = max([*shares.values(), ideal]) or 1.0
    keys = result.get("keys_per_node", {})
    rows = []
    for i, (node, share) in enumerate(shares.items()):
        y = 10 + i * 22
        rows.append(
            f'<text x="0" y="{y + 13}" font-size="12">{escape(node)}</text>'
            f'<rect x="50" y="{y}" width="{300 * share / top:.1f}" height="16" fill="#4a7ab5"/>'
            f'<text x="{56 + 300 * share / top:.1f}" y="{y + 13}" font-size="11">'
            f"{share:.3f} ({keys.get(node, '-')} keys)</text>"
        )
    x_ideal = 50 + 300 * ideal / top
    height = 20 + 22 * len(shares)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="480" height="{height}">{"".join(rows)}'
        f'<line x1="{x_ideal:.1f}" y1="5" x2="{x_ideal:.1f}" y2="{height - 5}" stroke="#c33" '
        f'stroke-dasharray="4"/></svg><p>Share of the hash space per node (dashed: 1/n).</p>'
    )
