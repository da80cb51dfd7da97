"""The DFS's own state, judged from what the nodes reported in `status` ops (like raft-safety).

Each status op's value is a node's report: "now" (its own clock), its
chunkserver's replicas ({handle: {version, length, ok, damaged}}; `ok` is a
full checksum verification, present in final reports) and leases it held
({handle, version, granted_ago_s, expires_in_s}), and on the master
"master_state": files, chunk versions, the goal, its lease table's history
({handle, primary, version, granted_ago_s, expires_in_s}) and recent events.

Times: a report made at an unknown instant t of the status op's interval
[invoke, complete] says a lease was granted `g` before t and runs `e` after
t, so it certainly covered [complete - g, invoke + e] of the test's clock
(node clocks are taken to run at the test clock's rate, not to agree with it).
Several reports of one lease narrow it: the earliest such start, the latest end.

A view measured with a moved clock proves nothing: a lease view (the
master's table or a primary's own) whose reporting node had its clock moved
by a clock fault (read from the history through the fault vocabulary the
workload wires in) is left out of the lease rule and counted
(`clock_moved_views`), as the heartbeat checker excuses suspicions, when
its span overlaps the fault extended past its cure by how far the clock
was off, one lease (`lease_s`) and `CLOCK_SETTLE_S`: a lease granted on a
clock set ahead is still timed on that clock after the reset, and looks
longer than it was (swarm seed 2022 showed one as granted in the future).
Likewise a lease granted while the master's clock was moved, whoever
reports it: the master judged the previous lease over on that clock (swarm
seed 1114: a master 6.8 s ahead took the old primary for dead and granted
a new lease 1.6 s into the old one's last term; the versions kept it
harmless, as they are meant to).

Rules:

- One lease at a time: no two leases on one chunk, held by different
  primaries, certainly overlap (GFS §3.1; from the master's table and from
  the primaries' own views).
- Versions never go backwards: a later report (invoked after an earlier one
  completed) of the same replica, or of the master's version of a chunk,
  never shows a lower version (§4.5; versions are persistent).
- After the final heal and quiet period (the final reports): every chunk of
  a live file has at least the goal number of replicas at the master's
  version whose checksums all verify, and no replica at that version fails
  its checksums (§4.3, §5.2).

- Still repairing is not unhealthy: the workload's final `settle` waits
  (bounded) for the master to report itself healthy and records why it
  stopped. When it stopped at its bound while fsck's count of problem chunks
  was still falling ("still-repairing"), chunks short of their goal at the
  end are shown with that evidence and the verdict is "unknown", not False:
  a throttled re-replication that was not given enough time proves nothing.
  When it stopped because the count had made no progress for its stall
  window ("stalled"), or there is no settle to tell, they are a violation:
  a chunk stuck under its goal while nothing repairs it is a liveness bug.
  Corrupt replicas at the master's version are a violation either way.

Verdict: False on any violation; "unknown" without a final master report, or when the only fault is
chunks still being repaired; True otherwise.
The result also carries, for the report, the lease intervals, the master's
version history and events on the test clock, and the final placement.
"""

from __future__ import annotations

from typing import Any

from base.faults import Effect, Vocabulary, fault_windows
from base.history import Op, pairs

MAX_EVIDENCE = 10
EPSILON_NS = 1_000
CLOCK_SETTLE_S = 2.0
"""How long after a clock fault's reset a node's own timings are still not taken as evidence."""

Windows = dict[str, list[tuple[float, float]]]


def _distortion_s(setting: Any, held_s: float) -> float:
    """How far a clock fault's setting can have put the node's clock off true time (seconds)."""
    if not isinstance(setting, dict):
        return 0.0
    off = max(abs(float(setting.get(k) or 0.0)) for k in ("offset_s", "jump_s"))
    rate = setting.get("rate")
    drift = abs(float(rate) - 1.0) * held_s if isinstance(rate, int | float) else 0.0
    return off + drift


def clock_windows(history: list[Op], vocabulary: Vocabulary | None, lease_s: float) -> Windows:
    """node -> [start_s, end] of every clock fault on it, where end is its cure plus how far the clock
    was off plus one lease plus CLOCK_SETTLE_S (inf while uncured): a lease granted while the clock was
    off is timed on it until it runs out, even after the reset (a clock put back runs it longer)."""
    out: Windows = {}
    if vocabulary is None:
        return out
    for w in fault_windows(history, vocabulary):
        if w.effect != Effect.CLOCK:
            continue
        for n in w.nodes:
            end = w.node_end_s(n)
            if end is None:
                out.setdefault(n, []).append((w.start_s, float("inf")))
                continue
            setting = w.value.get(n) if isinstance(w.value, dict) else None
            tail = _distortion_s(setting, end - w.start_s) + lease_s + CLOCK_SETTLE_S
            out.setdefault(n, []).append((w.start_s, end + tail))
    return out


def _moved(clocked: Windows, node: str, start_ns: int, end_ns: int) -> bool:
    return any(a * 1e9 <= end_ns and b * 1e9 >= start_ns for a, b in clocked.get(node, []))


def _reports(history: list[Op]) -> list[dict[str, Any]]:
    out = []
    for p in pairs(history):
        c = p.complete
        if p.invoke.get("f") != "status" or c is None or c.get("type") != "ok" or not isinstance(c.get("value"), dict):
            continue
        out.append({"node": c["value"].get("node", p.invoke.get("node")), "value": c["value"],
                    "inv_t": p.invoke.get("time", 0), "comp_t": c.get("time", 0),
                    "inv": p.invoke.get("index"), "comp": c.get("index"), "final": bool(p.invoke.get("final"))})
    return out


def _lease_intervals(reports: list[dict[str, Any]], clocked: Windows) -> tuple[list[dict[str, Any]], int]:
    """Every lease reported, with the part of the test's clock it certainly covered; and how many views
    were left out because the reporting node's clock was moved meanwhile, or the master's when it was granted."""
    leases: dict[tuple[Any, ...], dict[str, Any]] = {}
    ignored = 0
    masters = sorted({str(r["node"]) for r in reports if isinstance(r["value"].get("master_state"), dict)})
    for r in reports:
        v = r["value"]
        sources = []
        ms = v.get("master_state")
        if isinstance(ms, dict):
            sources += [("master", ms.get("incarnation"), le, le.get("primary")) for le in ms.get("leases") or []]
        cs = v.get("chunkserver")
        if isinstance(cs, dict):
            sources += [(r["node"], cs.get("incarnation"), le, r["node"]) for le in cs.get("leases") or []]
        for source, inc, le, primary in sources:
            try:
                g, e = float(le["granted_ago_s"]), float(le["expires_in_s"])
                handle, version = int(le["handle"]), int(le["version"])
            except (KeyError, TypeError, ValueError):
                continue
            start = r["comp_t"] - round(g * 1e9)
            end = r["inv_t"] + round(e * 1e9)
            if _moved(clocked, str(r["node"]), min(start, r["inv_t"]), r["comp_t"]) or any(
                    _moved(clocked, m, start, start) for m in masters):
                ignored += 1
                continue
            key = (source, inc, handle, version, primary)  # a new lease always has a new version
            old = leases.get(key)
            if old is None:
                leases[key] = {"handle": handle, "primary": primary, "version": version, "source": source,
                               "start_ns": start, "end_ns": end, "report": r["comp"]}
            else:
                old["start_ns"] = min(old["start_ns"], start)
                old["end_ns"] = max(old["end_ns"], end)
    return sorted(leases.values(), key=lambda x: (x["handle"], x["start_ns"])), ignored


def _overlaps(intervals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_handle: dict[int, list[dict[str, Any]]] = {}
    for iv in intervals:
        if iv["end_ns"] - iv["start_ns"] > EPSILON_NS:
            by_handle.setdefault(iv["handle"], []).append(iv)
    out = []
    for handle, ivs in sorted(by_handle.items()):
        found = None
        for i, a in enumerate(ivs):
            for b in ivs[i + 1 :]:
                if a["primary"] == b["primary"]:
                    continue
                lo, hi = max(a["start_ns"], b["start_ns"]), min(a["end_ns"], b["end_ns"])
                if hi - lo > EPSILON_NS:
                    found = {"handle": handle, "overlap_s": round((hi - lo) / 1e9, 6),
                             "leases": [{k: x[k] for k in ("primary", "version", "source", "report")} for x in (a, b)],
                             "at_s": round(lo / 1e9, 6)}
                    break
            if found:
                break
        if found:
            out.append(found)
    return out


def _regressions(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
    for r in reports:
        v = r["value"]
        cs = v.get("chunkserver") or {}
        for h, rep in (cs.get("replicas") or {}).items():
            if isinstance(rep, dict) and isinstance(rep.get("version"), int) and not rep.get("damaged"):
                seen.setdefault((str(r["node"]), int(h)), []).append((r["inv"], r["comp"], rep["version"]))
        ms = v.get("master_state")
        if isinstance(ms, dict):
            for h, ch in (ms.get("chunks") or {}).items():
                if isinstance(ch, dict) and isinstance(ch.get("version"), int):
                    seen.setdefault(("master", int(h)), []).append((r["inv"], r["comp"], ch["version"]))
    out = []
    for (who, h), obs in sorted(seen.items()):
        for _a_inv, a_comp, a_v in obs:
            bad = next(((b_inv, b_v) for b_inv, _, b_v in obs if a_comp < b_inv and b_v < a_v), None)
            if bad is not None:
                out.append({"where": who, "handle": h, "earlier": {"op": a_comp, "version": a_v},
                            "later": {"op": bad[0], "version": bad[1]}})
                break
    return out


def _final_health(final: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    master = next((r["value"]["master_state"] for r in final.values()
                   if isinstance(r["value"].get("master_state"), dict)), None)
    if master is None:
        return [], None
    goal = int(master.get("goal") or 1)
    versions = {int(h): ch.get("version") for h, ch in (master.get("chunks") or {}).items()}
    problems = []
    placement: dict[str, Any] = {}
    for path, handles in sorted((master.get("files") or {}).items()):
        for h in handles:
            v = versions.get(int(h))
            good, bad, other = [], [], []
            for node, r in sorted(final.items()):
                rep = ((r["value"].get("chunkserver") or {}).get("replicas") or {}).get(str(h))
                if not isinstance(rep, dict):
                    continue
                if rep.get("version") != v:
                    other.append(f"{node}@{rep.get('version')}")
                elif rep.get("ok") is True:
                    good.append(node)
                else:
                    bad.append(node)
            placement[str(h)] = {"file": path, "version": v, "good": good, "corrupt": bad, "other": other}
            if len(good) < goal or bad:
                problems.append({"file": path, "handle": h, "version": v, "good": good, "corrupt": bad,
                                 "other_versions": other, "goal": goal})
    return problems, {"goal": goal, "placement": placement}


def _final_settle(history: list[Op]) -> dict[str, Any] | None:
    """The value of the last completed final `settle` (None when there is none)."""
    found = None
    for p in pairs(history):
        c = p.complete
        if p.invoke.get("f") == "settle" and c is not None and c.get("type") == "ok":
            found = c["value"] if isinstance(c.get("value"), dict) else found
    return found


def check(history: list[Op], test: dict[str, Any] | None = None,
          vocabulary: Vocabulary | None = None) -> dict[str, Any]:
    reports = _reports(history)
    lease_s = float(((test or {}).get("options") or {}).get("lease_s", 3.0))
    intervals, clock_moved_views = _lease_intervals(reports, clock_windows(history, vocabulary, lease_s))
    overlaps = _overlaps(intervals)
    regressions = _regressions(reports)
    final: dict[str, dict[str, Any]] = {}
    for r in reports:
        if r["final"]:
            final[str(r["node"])] = r
    unhealthy, final_view = _final_health(final)
    settle = _final_settle(history)
    repairing = (bool(unhealthy) and settle is not None and settle.get("outcome") == "still-repairing"
                 and not any(u["corrupt"] for u in unhealthy))
    problems = []
    if overlaps:
        o = overlaps[0]
        problems.append(f"{len(overlaps)} chunk(s) with two leases at once (first: chunk {o['handle']}, "
                        f"{o['leases'][0]['primary']} and {o['leases'][1]['primary']} for {o['overlap_s']}s)")
    if regressions:
        g = regressions[0]
        problems.append(f"{len(regressions)} version(s) went backwards (first: chunk {g['handle']} at {g['where']}: "
                        f"{g['earlier']['version']} then {g['later']['version']})")
    if unhealthy and not repairing:
        u = unhealthy[0]
        problems.append(f"{len(unhealthy)} chunk(s) of live files not healthy at the end (first: chunk {u['handle']} "
                        f"of {u['file']}: {len(u['good'])} good replica(s) of {u['goal']}, corrupt on {u['corrupt']})")
    if problems:
        valid: bool | str = False
        summary = "; ".join(problems)
    elif final_view is None:
        valid, summary = "unknown", "no final report from the master"
    elif repairing:
        assert settle is not None
        u = unhealthy[0]
        valid = "unknown"
        summary = (f"still repairing: {len(unhealthy)} chunk(s) of live files short of their goal at the end (first: "
                   f"chunk {u['handle']} of {u['file']}: {len(u['good'])} good replica(s) of {u['goal']}), while "
                   f"re-replication was progressing: the final settle waited {settle.get('waited_s')}s, problem "
                   f"chunks {settle.get('problems_first')} -> {settle.get('problems_last')}, last progress "
                   f"{settle.get('last_progress_ago_s')}s before it stopped; no safety rule broken")
    else:
        valid = True
        summary = (f"{len(reports)} node reports: {len(intervals)} leases, never two at once on a chunk; versions "
                   f"never went back; every chunk of a live file ends with {final_view['goal']}+ verified replicas")
    if clock_moved_views:
        summary += f"; {clock_moved_views} lease view(s) measured with a moved clock left out"
    events = []
    for r in reports:
        ms = r["value"].get("master_state")
        if isinstance(ms, dict):
            for e in ms.get("events") or []:
                if isinstance(e, dict) and isinstance(e.get("ago_s"), int | float):
                    at = round((r["comp_t"] - e["ago_s"] * 1e9) / 1e9, 1)
                    events.append({**{k: v for k, v in e.items() if k != "ago_s"}, "at_s": at})
    unique = {repr(sorted(e.items(), key=lambda kv: kv[0])): e for e in events}
    timeline: list[tuple[float, str, Any]] = []
    for e in unique.values():
        if e.get("kind") in ("lease", "re-replicated") and "handle" in e and "version" in e:
            timeline.append((e["at_s"], str(e["handle"]), e["version"]))
    for r in reports:
        ms = r["value"].get("master_state")
        if isinstance(ms, dict):
            for h, ch in (ms.get("chunks") or {}).items():
                timeline.append((round(r["comp_t"] / 1e9, 1), str(h), ch.get("version")))
    versions: dict[str, list[list[Any]]] = {}
    for at, h, v in sorted(timeline, key=lambda x: (x[0], str(x[2]))):
        series = versions.setdefault(h, [])
        if not series or series[-1][1] != v:
            series.append([at, v])
    return {
        "valid": valid, "summary": summary,
        "overlapping_leases": overlaps[:MAX_EVIDENCE], "version_regressions": regressions[:MAX_EVIDENCE],
        "unhealthy_at_end": unhealthy[:MAX_EVIDENCE],
        "still_repairing": repairing,
        "settle": {k: v for k, v in (settle or {}).items() if not isinstance(v, list)} or None,
        "stats": {"reports": len(reports), "leases": len(intervals), "final_reports": len(final),
                  "clock_moved_views": clock_moved_views},
        "leases": [{**iv, "start_s": round(iv["start_ns"] / 1e9, 3), "end_s": round(iv["end_ns"] / 1e9, 3)}
                   for iv in intervals][:2000],
        "versions": versions, "events": sorted(unique.values(), key=lambda e: e["at_s"])[-300:],
        "final": final_view,
    }
