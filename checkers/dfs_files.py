"""Whole files: created, closed, read, renamed and deleted, judged from the history alone.

GFS's Table 1 (SOSP 2003, §2.7.1): a write that succeeded without
concurrent writers leaves its region *defined*: every replica holds exactly
what was written. The files workload writes each file once, by one client,
and calls it closed when the create (every write of it) was acknowledged.
Namespace mutations are atomic and, once acknowledged, durable (they are in
the master's synced operation log, §2.6.3). So:

- A read of a closed file returns exactly its content (the create's size and
  digest) or fails with an error: never a shorter ("partial"), longer, or
  different ("mixed", "stale" or corrupt) content.
- A read of a name invoked after an acknowledged delete of that name, or
  after an acknowledged rename away from it, does not succeed.
- The final listing (after the final heal, so after any master restart)
  holds every acknowledged create under the name its acknowledged renames
  gave it, none of the files an acknowledged delete removed, and nothing that
  was never created. An operation in doubt (info) allows either outcome.

Names are unique: a file "/files/f7" may be renamed "/files/f7.r12"; the part
before ".r" names the file. Verdict: False on any violation; "unknown" when
there is no final listing; True otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from base.history import Op, pairs

MAX_EVIDENCE = 10


def file_of(path: str) -> str:
    return path.split(".r")[0]


@dataclass
class FileFate:
    create: str = "none"
    """ok, info, fail or none."""
    expected: dict[str, Any] | None = None
    renames: list[tuple[str, str, str, int | None, int]] = field(default_factory=list)
    """(type, src, dst, complete index, invoke index)"""
    deletes: list[tuple[str, str, int | None]] = field(default_factory=list)
    """(type, name, complete index)"""


def check(history: list[Op], test: dict[str, Any] | None = None) -> dict[str, Any]:
    fates: dict[str, FileFate] = {}
    reads: list[dict[str, Any]] = []
    final_ls: list[str] | None = None
    for p in pairs(history):
        inv, c = p.invoke, p.complete
        f, key = inv.get("f"), inv.get("key")
        done = c.get("index") if c else None
        if f == "create" and isinstance(key, str):
            fate = fates.setdefault(file_of(key), FileFate())
            fate.create = p.type
            if p.type == "ok" and c is not None:
                fate.expected = c.get("value")
        elif f == "rename" and isinstance(key, str):
            fates.setdefault(file_of(key), FileFate()).renames.append(
                (p.type, key, str(inv.get("value")), done, inv["index"]))
        elif f == "delete" and isinstance(key, str):
            fates.setdefault(file_of(key), FileFate()).deletes.append((p.type, key, done))
        elif f == "read" and isinstance(key, str) and c is not None:
            reads.append({"key": key, "type": p.type, "value": c.get("value"), "invoke": inv["index"],
                          "complete": done, "node": inv.get("node"), "final": bool(inv.get("final"))})
        elif f == "ls" and inv.get("final") and c is not None and c.get("type") == "ok":
            final_ls = [x for x in c.get("value") or [] if isinstance(x, str)]

    wrong: list[dict[str, Any]] = []
    ghost: list[dict[str, Any]] = []
    for r in reads:
        if r["type"] != "ok":
            continue
        fate = fates.get(file_of(r["key"]))
        gone = _gone_before(fate, r["key"], r["invoke"]) if fate else None
        if gone is not None:
            ghost.append({"read": r["complete"], "path": r["key"], "node": r["node"], "after": gone})
            continue
        if fate is None or fate.create != "ok" or fate.expected is None:
            continue  # not closed: any content may be there
        got, want = r["value"] or {}, fate.expected
        if got.get("size") != want.get("size") or got.get("digest") != want.get("digest"):
            kind = "partial" if isinstance(got.get("size"), int) and got["size"] < want.get("size", 0) else (
                "longer" if got.get("size", 0) > want.get("size", 0) else "different content")
            wrong.append({"read": r["complete"], "path": r["key"], "node": r["node"], "final": r["final"],
                          "kind": kind, "got": got, "expected": want})

    lost: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    if final_ls is not None:
        listed = set(final_ls)
        claimed: set[str] = set()
        for base, fate in sorted(fates.items()):
            names = _possible_names(base, fate)
            present = sorted(n for n in listed if file_of(n) == base)
            claimed.update(present)
            must_exist, allowed = names
            if fate.create == "fail" and present:
                extra.append({"file": base, "listed": present, "why": "its create failed"})
            elif present and not set(present) <= allowed:
                extra.append({"file": base, "listed": present, "allowed": sorted(allowed),
                              "why": "listed under a name it cannot have (a lost rename or delete)"})
            elif must_exist and not present:
                lost.append({"file": base, "expected": sorted(allowed), "why": "acknowledged but missing"})
            elif len(present) > 1:
                extra.append({"file": base, "listed": present, "why": "listed under two names"})
        for name in sorted(listed - claimed):
            extra.append({"file": name, "listed": [name], "why": "never created"})

    problems = []
    if wrong:
        problems.append(f"{len(wrong)} read(s) of a closed file returned the wrong content "
                        f"(first: {wrong[0]['kind']} {wrong[0]['path']} on {wrong[0]['node']})")
    if ghost:
        problems.append(f"{len(ghost)} read(s) succeeded on a name already deleted or renamed away")
    if lost:
        problems.append(f"{len(lost)} acknowledged file(s) missing from the final listing (first: {lost[0]['file']})")
    if extra:
        problems.append(f"{len(extra)} file(s) listed that should not be (first: {extra[0]['file']}: "
                        f"{extra[0]['why']})")
    stats = {"files": len(fates), "closed": sum(1 for f in fates.values() if f.create == "ok"),
             "reads_ok": sum(1 for r in reads if r["type"] == "ok"),
             "reads_failed": sum(1 for r in reads if r["type"] != "ok"),
             "listed": None if final_ls is None else len(final_ls)}
    if problems:
        valid: bool | str = False
        summary = "; ".join(problems)
    elif final_ls is None:
        valid, summary = "unknown", "no final listing"
    else:
        valid = True
        summary = (f"{stats['reads_ok']} reads of {stats['closed']} closed files returned exactly their content; "
                   f"the final listing of {len(final_ls)} files keeps every acknowledged create, rename and delete")
    return {"valid": valid, "summary": summary, "stats": stats, "wrong_content": wrong[:MAX_EVIDENCE],
            "read_after_gone": ghost[:MAX_EVIDENCE], "lost": lost[:MAX_EVIDENCE], "unexpected": extra[:MAX_EVIDENCE]}


def _gone_before(fate: FileFate, name: str, invoked: int) -> str | None:
    """How `name` was certainly gone before `invoked`, if it was."""
    for typ, src, _dst, done, _inv in fate.renames:
        if typ == "ok" and src == name and done is not None and done < invoked:
            return f"renamed away (op {done})"
    for typ, n, done in fate.deletes:
        if typ == "ok" and n == name and done is not None and done < invoked:
            return f"deleted (op {done})"
    return None


def _possible_names(base: str, fate: FileFate) -> tuple[bool, set[str]]:
    """(must the file exist at the end, the names it may have then)."""
    if fate.create in ("fail", "none"):
        return False, set()
    names = {base}
    for typ, src, dst, _done, _inv in sorted(fate.renames, key=lambda r: r[4]):
        if typ == "ok":
            names = {dst}
        elif typ == "info" and src in names:
            names = names | {dst}
    deleted_for_sure = any(t == "ok" for t, _, _ in fate.deletes)
    maybe_deleted = any(t == "info" for t, _, _ in fate.deletes)
    if deleted_for_sure:
        return False, set()
    must = fate.create == "ok" and not maybe_deleted
    return must, names
