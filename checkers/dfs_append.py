"""Record append, judged exactly as GFS promises it (SOSP 2003, §2.7.1 Table 1 and §3.3).

GFS's record append is atomic and at least once: an acknowledged record is
written whole, at the same offset, on every replica, possibly more than once,
and between records there may be padding and inconsistent regions. So, from
the history alone (appends carry the record id as value and the file as key;
reads carry what the client found: ids in file order, padding, garbage and
corrupt frames, as workloads/dfs.py describes):

- Lost: every append acknowledged before a read was invoked appears in that
  read (every current replica holds it), and in every final read.
- Phantom: every record read was appended to that file by an append that
  did not fail (an append that failed certainly wrote nothing).
- Torn or corrupt: no read returns bytes that are neither padding (zeros) nor
  whole, intact records.
- Order: per writer (a process issues one append at a time), acknowledged
  appends appear in acknowledgement order: if a was acknowledged before b was
  invoked, a's first copy comes before b's first copy.
- Duplicates and padding are counted and shown, never failed: that is the
  "at least once" and the "interspersed with inconsistent" of Table 1.

Verdict: False on any of the four; "unknown" when no read succeeded; True otherwise.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from base.history import Op, pairs

MAX_EVIDENCE = 10


def _writer(rid: str) -> str:
    return rid.split(":", 1)[0]


def check(history: list[Op], test: dict[str, Any] | None = None) -> dict[str, Any]:
    appends: dict[tuple[str, str], dict[str, Any]] = {}
    reads: list[dict[str, Any]] = []
    for p in pairs(history):
        inv, c = p.invoke, p.complete
        f = inv.get("f")
        if f == "append":
            appends[(str(inv.get("key")), str(inv.get("value")))] = {
                "type": p.type, "invoke": inv.get("index"), "complete": c.get("index") if c else None,
            }
        elif f == "read" and c is not None and c.get("type") == "ok" and isinstance(c.get("value"), dict):
            reads.append({"key": str(inv.get("key")), "invoke": inv.get("index"), "complete": c.get("index"),
                          "node": inv.get("node"), "final": bool(inv.get("final")), **c["value"]})

    acked_by_file: dict[str, list[tuple[int, str]]] = {}
    for (key, rid), a in appends.items():
        if a["type"] == "ok" and a["complete"] is not None:
            acked_by_file.setdefault(key, []).append((a["complete"], rid))
    for lst in acked_by_file.values():
        lst.sort()

    lost: list[dict[str, Any]] = []
    phantom: list[dict[str, Any]] = []
    torn: list[dict[str, Any]] = []
    disorder: list[dict[str, Any]] = []
    duplicates = 0
    pad_bytes = 0
    for r in reads:
        recs = [x for x in r.get("records") or [] if isinstance(x, str)]
        seen = Counter(recs)
        duplicates += sum(n - 1 for n in seen.values())
        pad_bytes += int(r.get("pad_bytes") or 0)
        if r.get("garbage_bytes") or r.get("corrupt_records"):
            torn.append({"read": r["complete"], "node": r["node"], "file": r["key"],
                         "garbage_bytes": r.get("garbage_bytes"), "corrupt_records": r.get("corrupt_records"),
                         "garbage": (r.get("garbage") or [])[:5]})
        for rid in seen:
            a = appends.get((r["key"], rid))
            if a is None or a["type"] == "fail":
                phantom.append({"read": r["complete"], "file": r["key"], "record": rid,
                                "append": None if a is None else a["invoke"]})
        missing = [rid for done, rid in acked_by_file.get(r["key"], []) if done < r["invoke"] and rid not in seen]
        if missing:
            lost.append({"read": r["complete"], "node": r["node"], "file": r["key"], "final": r["final"],
                         "missing": missing[:10], "count": len(missing)})
        first = {}
        for i, rid in enumerate(recs):
            first.setdefault(rid, i)
        by_writer: dict[str, list[tuple[int, int, str]]] = {}
        for done, rid in acked_by_file.get(r["key"], []):
            if rid in first:
                a = appends[(r["key"], rid)]
                by_writer.setdefault(_writer(rid), []).append((a["invoke"], done, rid))
        for w, lst in by_writer.items():
            lst.sort()
            for (_, done_a, ra), (inv_b, _, rb) in itertools.pairwise(lst):
                if done_a < inv_b and first[ra] > first[rb]:
                    disorder.append({"read": r["complete"], "file": r["key"], "writer": w, "earlier": ra,
                                     "later": rb})
                    break

    problems = []
    if lost:
        n = sum(x["count"] for x in lost)
        problems.append(f"{n} acknowledged append(s) missing from {len(lost)} read(s) "
                        f"(first: {lost[0]['missing'][0]} in {lost[0]['file']} read on {lost[0]['node']})")
    if phantom:
        problems.append(f"{len(phantom)} record(s) read that no successful append wrote "
                        f"(first: {phantom[0]['record']} in {phantom[0]['file']})")
    if torn:
        problems.append(f"{len(torn)} read(s) returned torn or corrupt data "
                        f"(first: {torn[0]['garbage_bytes']} bytes on {torn[0]['node']})")
    if disorder:
        problems.append(f"{len(disorder)} read(s) show a writer's acknowledged appends out of order")
    stats = {
        "appends_ok": sum(1 for a in appends.values() if a["type"] == "ok"),
        "appends_info": sum(1 for a in appends.values() if a["type"] == "info"),
        "appends_fail": sum(1 for a in appends.values() if a["type"] == "fail"),
        "reads": len(reads), "final_reads": sum(1 for r in reads if r["final"]),
        "duplicate_records": duplicates, "pad_bytes": pad_bytes,
    }
    if problems:
        valid: bool | str = False
        summary = "; ".join(problems)
    elif not reads:
        valid, summary = "unknown", "no read succeeded"
    else:
        valid = True
        summary = (f"{stats['appends_ok']} acknowledged appends, all in every later read; {len(reads)} reads, "
                   f"no phantom, torn or reordered records ({duplicates} duplicates, {pad_bytes} padding bytes: "
                   "allowed)")
    return {"valid": valid, "summary": summary, "stats": stats, "lost": lost[:MAX_EVIDENCE],
            "phantom": phantom[:MAX_EVIDENCE], "torn": torn[:MAX_EVIDENCE], "disorder": disorder[:MAX_EVIDENCE]}
