"""Checker for the heartbeat failure detector: a pure function of the history.

It reads the faults from the history through the fault vocabulary it is
given (base.faults; the workload passes the nemesis catalog's): what each
fault does to the cluster (its `effect`: nodes down, paused, or links cut or
degraded), never the op names. It reads every ok `view` a client read from a
node (the observer: its view of every other node, the subject), and judges
three things. Times are seconds since the test began; an observation is the window
[invoke, ok] of one view read, and every rule below uses that whole window,
so the verdict never depends on where inside it the node answered.

1. Detection. For every kill of a subject s (until its restart): the first
   and the last observer whose view marks s dead, as seconds after the kill.
   A kill is judged when some view shows s dead or could be a miss (below);
   when kills that demand detection (watched by a live observer, and down
   `detect_s` or more or never restarted: not a reboot, not the whole
   cluster off) happened and none was judged, detection went untested and
   a run with no violation is "unknown", not valid.
   INVALID (missed detection) when an observer o shows s not dead in a view
   taken `detect_s` or more after the kill, before the restart, while o had
   been running (not killed, not paused, its clock not moved) for at least
   `detect_s`. A view
   that already shows s with a higher incarnation than any seen before the
   kill is of the restarted instance (a restart op is written once the node
   is up, so the new instance may be seen just before it) and is no miss.
2. False suspicion. A suspicion of a live node (up and not paused) is an
   episode of consecutive views of o showing s suspect or dead. It is
   excused while a fault explains it, plus a settling time after that fault
   ends: s or o down (plus `recognise_s`, a process needs to boot), s or o
   paused, s's or o's clock moved by a clock fault (its timers are what
   the detector measures with), s's traffic to o cut by a partition or a
   faulty link (each plus `settle_s`), and the first `recognise_s` of the
   test. INVALID when a view
   shows a live s dead outside every excuse: a live, reachable node stayed
   dead longer than the bound after whatever could explain it.
3. Restart recognition. After s restarts, its own view must announce an
   incarnation above every incarnation of s seen before the kill, and every
   observer must show s alive with such an incarnation. Recovery time is
   from the restart to the last observer doing so. INVALID when s announces
   an old incarnation, or when an observer still shows the old one (or s not
   alive) `recognise_s` after the restart while nothing excuses it.

Bounds, and why: the detector declares a silent peer dead after ~1.1 s and
refutes a wrong verdict within one heartbeat plus a disk sync, so
`detect_s` = 2.5 s, `settle_s` = 2 s and `recognise_s` = 4 s leave a margin
of more than 2x for scheduling noise on a loaded machine, while the nemesis
holds each fault 2.5-5 s (so many kills are long enough to demand detection)
and the quiet period (5 s) is longer than `recognise_s` (so the final reads
always judge the last restarts). A correct node never shows a live,
reachable peer dead in steady state; the `fixed-timeout` bug does so in
about one of eight (observer, peer) readings, faults or not, and
`no-incarnation` keeps every node that was ever declared dead dead for the
rest of the run. Any kill, pause or partition the nemesis holds (2.5 s at
least) produces a death verdict, so the latter is caught whichever faults
the seeded schedule happens to pick, not only when it picks a kill.
Recovery is measured from the restart op, which the harness writes once the
node answers, so it is often close to zero.
Override the bounds with test options `check_detect_s`, `check_settle_s`,
`check_recognise_s`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from base.faults import Effect, FaultWindow, Vocabulary, fault_windows
from base.history import HistoryError, Op, pairs

Interval = tuple[float, float]
NS = 1e9
MAX_EVIDENCE = 20


@dataclass(frozen=True, slots=True)
class Bounds:
    detect_s: float = 2.5
    settle_s: float = 2.0
    recognise_s: float = 4.0

    @classmethod
    def from_test(cls, test: dict[str, Any]) -> Bounds:
        opts = test.get("options") or {}
        d = cls()
        return cls(
            float(opts.get("check_detect_s", d.detect_s)),
            float(opts.get("check_settle_s", d.settle_s)),
            float(opts.get("check_recognise_s", d.recognise_s)),
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """One ok `view` read: what `observer` believed during [t0, t1]."""

    index: int
    observer: str
    t0: float
    t1: float
    incarnation: int | None
    peers: dict[str, dict[str, Any]]

    def status(self, subject: str) -> str | None:
        p = self.peers.get(subject)
        return p.get("status") if isinstance(p, dict) else None

    def changed_at(self, subject: str, not_before: float) -> float:
        """When the subject's status took its current value, by the node's own `since_s` (an upper
        estimate, at most the time of this view), never before `not_before`."""
        p = self.peers.get(subject)
        since = p.get("since_s") if isinstance(p, dict) else None
        if not isinstance(since, int | float) or since < 0:
            return self.t1
        return min(self.t1, max(not_before, self.t1 - since))

    def incarnation_of(self, subject: str) -> int | None:
        if subject == self.observer:
            return self.incarnation
        p = self.peers.get(subject)
        inc = p.get("incarnation") if isinstance(p, dict) else None
        return inc if isinstance(inc, int) else None


@dataclass(frozen=True, slots=True)
class Restart:
    node: str
    killed_at: float
    restarted_at: float


@dataclass
class Faults:
    """What the faults did, read from the fault windows; an uncured fault lasts until +inf."""

    down: dict[str, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    paused: dict[str, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    clocked: dict[str, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    """When each node's clock was moved (jumped, fast or slow) by a clock fault."""
    network: list[FaultWindow] = field(default_factory=list)
    """Every fault that cut or degraded links (partitions, flaky links, pulled cables, the switch off, ...)."""
    restarts: list[Restart] = field(default_factory=list)

    def active(self, windows: list[Interval], t0: float, t1: float, after_s: float) -> Interval | None:
        """The first window that overlaps [t0, t1] once extended by `after_s` at its end."""
        for w in windows:
            if w[0] <= t1 and w[1] + after_s >= t0:
                return w
        return None

    def cut(self, observer: str, subject: str) -> list[FaultWindow]:
        """The network faults that cut or degraded subject's traffic to observer."""
        return [w for w in self.network if w.cuts(subject, observer)]


def _secs(op: Op) -> float:
    return float(op.get("time", 0)) / NS


def _until(w: FaultWindow, node: str | None = None) -> float:
    end = w.node_end_s(node) if node is not None else (w.end_s if w.cured else None)
    return math.inf if end is None else end


def fault_timeline(history: list[Op], vocabulary: Vocabulary) -> Faults:
    """What the faults in `history` did, by their vocabulary's effects."""
    f = Faults()
    for w in fault_windows(history, vocabulary):
        if w.effect == Effect.DOWN:
            for n in w.nodes:
                f.down[n].append((w.start_s, _until(w, n)))
                if not math.isinf(_until(w, n)):
                    f.restarts.append(Restart(n, w.start_s, _until(w, n)))
        elif w.effect == Effect.PAUSED:
            for n in w.nodes:
                f.paused[n].append((w.start_s, _until(w, n)))
        elif w.effect == Effect.CLOCK:
            for n in w.nodes:
                f.clocked[n].append((w.start_s, _until(w, n)))
        elif w.effect == Effect.NETWORK and w.links:
            f.network.append(replace(w, end_s=_until(w)))
    f.restarts.sort(key=lambda r: (r.restarted_at, r.node))
    return f


def observations(history: list[Op]) -> list[Observation]:
    """Every ok `view` read, in invocation order."""
    out = []
    for p in pairs(history):
        c = p.complete
        if c is None or c.get("type") != "ok" or p.invoke.get("f") != "view":
            continue
        v = c.get("value")
        if not isinstance(v, dict) or not isinstance(v.get("peers"), dict):
            continue
        observer = c.get("node") or p.invoke.get("node") or v.get("node")
        inc = v.get("incarnation")
        out.append(
            Observation(
                index=int(c.get("index", -1)),
                observer=str(observer),
                t0=_secs(p.invoke),
                t1=_secs(c),
                incarnation=inc if isinstance(inc, int) else None,
                peers=v["peers"],
            )
        )
    return out


class _Judge:
    def __init__(self, faults: Faults, bounds: Bounds) -> None:
        self.f = faults
        self.b = bounds

    def excuse(self, o: str, s: str, t0: float, t1: float, *, ignore_down: Interval | None = None) -> str | None:
        """Why o might rightly doubt s during [t0, t1], or None when nothing excuses it."""
        f, b = self.f, self.b
        if t0 <= b.recognise_s:
            return "test start"
        for who, role in ((s, "subject"), (o, "observer")):
            for w in f.down.get(who, []):
                if w != ignore_down and f.active([w], t0, t1, b.recognise_s):
                    return f"{role} {who} down/restarting from {w[0]:.2f}s"
            w = f.active(f.paused.get(who, []), t0, t1, b.settle_s)
            if w:
                return f"{role} {who} paused from {w[0]:.2f}s"
            w = f.active(f.clocked.get(who, []), t0, t1, b.settle_s)
            if w:
                return f"{role} {who}'s clock moved from {w[0]:.2f}s"
        for cut in f.cut(o, s):
            if f.active([(cut.start_s, _until(cut))], t0, t1, b.settle_s):
                return f"{s}->{o} cut from {cut.start_s:.2f}s"
        return None

    def running_since(self, o: str, t: float, need_s: float) -> bool:
        """True when o was neither down nor paused during [t - need_s, t]."""
        windows = self.f.down.get(o, []) + self.f.paused.get(o, []) + self.f.clocked.get(o, [])
        return self.f.active(windows, t - need_s, t, 0.0) is None and t - need_s >= 0

    def live(self, s: str, t0: float, t1: float) -> bool:
        return self.f.active(self.f.down.get(s, []) + self.f.paused.get(s, []), t0, t1, 0.0) is None


def _fmt(t: float) -> str:
    return "never" if math.isinf(t) else f"{t:.2f}s"


def check(history: list[Op], test: dict[str, Any], vocabulary: Vocabulary) -> dict[str, Any]:
    """Judge the views in `history` against its faults (read with `vocabulary`); see the module docstring."""
    bounds = Bounds.from_test(test)
    try:
        obs = observations(history)
    except HistoryError as e:
        return {"valid": "unknown", "summary": f"history is malformed: {e}"}
    faults = fault_timeline(history, vocabulary)
    judge = _Judge(faults, bounds)
    by_observer: dict[str, list[Observation]] = defaultdict(list)
    for ob in obs:
        by_observer[ob.observer].append(ob)
    nodes = sorted(set(test.get("nodes") or []) | set(by_observer))

    detections = _detections(obs, by_observer, faults, judge, bounds)
    suspicions = _suspicions(by_observer, nodes, judge)
    restarts = _restarts(obs, by_observer, faults, judge, bounds)

    missed = [v for d in detections for v in d["missed"]]
    held = [e for e in suspicions if e["violation"]]
    unrecognised = [v for r in restarts for v in r["violations"]]
    violations = len(missed) + len(held) + len(unrecognised)
    demanding = _demanding(detections, bounds)
    untested = bool(demanding) and not any(d["judged"] for d in demanding)
    if not obs:
        valid: bool | str = "unknown"
    elif violations:
        valid = False
    else:
        valid = "unknown" if untested else True

    summary = _summary(valid, obs, detections, suspicions, restarts, missed, held, unrecognised, untested)
    return {
        "valid": valid,
        "summary": summary,
        "bounds": {"detect_s": bounds.detect_s, "settle_s": bounds.settle_s, "recognise_s": bounds.recognise_s},
        "views": len(obs),
        "missed_detections": missed[:MAX_EVIDENCE],
        "false_dead": held[:MAX_EVIDENCE],
        "unrecognised_restarts": unrecognised[:MAX_EVIDENCE],
        "violation_counts": {
            "missed_detections": len(missed),
            "false_dead": len(held),
            "unrecognised_restarts": len(unrecognised),
        },
        "kills": [{k: v for k, v in d.items() if k != "missed"} for d in detections],
        "suspicions": {
            "episodes": len(suspicions),
            "total_s": round(sum(e["duration_s"] for e in suspicions), 3),
            "unexcused": len(held),
            "list": suspicions[:100],
        },
        "restarts": [{k: v for k, v in r.items() if k != "violations"} for r in restarts],
    }


def _demanding(detections: list[dict[str, Any]], bounds: Bounds) -> list[dict[str, Any]]:
    """The kills that demand detection: watched by a live observer, and down for `detect_s` or more (or never
    restarted). A reboot (a node restarted at once after a disk fault) or a kill with nobody left to watch it
    (the whole cluster powered off) demands nothing of a detector."""
    return [d for d in detections if d["watched"]
            and (d["restarted_at"] is None or d["restarted_at"] - d["killed_at"] >= bounds.detect_s)]


def _old_incarnation(obs: list[Observation], s: str, before: float) -> int | None:
    """The highest incarnation of s that any view completed before `before` showed."""
    return max((inc for ob in obs if ob.t1 <= before and (inc := ob.incarnation_of(s)) is not None), default=None)


def _detections(
    obs: list[Observation], by_observer: dict[str, list[Observation]], faults: Faults, judge: _Judge, bounds: Bounds
) -> list[dict[str, Any]]:
    out = []
    for s, windows in sorted(faults.down.items()):
        for k, r in windows:
            old = _old_incarnation(obs, s, k) or 0
            first_dead: dict[str, float] = {}
            missed: list[dict[str, Any]] = []
            watched = judged = False
            for o, seen in sorted(by_observer.items()):
                if o == s:
                    continue
                for ob in seen:
                    if ob.t1 <= k or ob.t0 >= r:
                        continue
                    watched = True
                    st = ob.status(s)
                    if st == "dead":
                        first_dead.setdefault(o, ob.changed_at(s, k) - k)
                        judged = True
                    elif (
                        st is not None
                        and (ob.incarnation_of(s) or 0) <= old
                        and ob.t0 >= k + bounds.detect_s
                        and ob.t1 <= r
                        and judge.running_since(o, ob.t1, bounds.detect_s)
                        and judge.running_since(o, ob.t0, bounds.detect_s)
                    ):
                        judged = True
                        missed.append(
                            {
                                "observer": o,
                                "subject": s,
                                "killed_at": round(k, 3),
                                "seen_at": [round(ob.t0, 3), round(ob.t1, 3)],
                                "status": st,
                                "index": ob.index,
                                "why": f"{o} still showed {s} {st} at {ob.t0:.2f}s, "
                                f"{ob.t0 - k:.2f}s after {s} was killed (bound {bounds.detect_s:g}s)",
                            }
                        )
            times = sorted(first_dead.values())
            out.append(
                {
                    "subject": s,
                    "killed_at": round(k, 3),
                    "restarted_at": None if math.isinf(r) else round(r, 3),
                    "detected_by": {o: round(t, 3) for o, t in sorted(first_dead.items())},
                    "first_s": round(times[0], 3) if times else None,
                    "last_s": round(times[-1], 3) if times else None,
                    "watched": watched,
                    "judged": judged,
                    "missed": missed,
                }
            )
    return out


def _suspicions(by_observer: dict[str, list[Observation]], nodes: list[str], judge: _Judge) -> list[dict[str, Any]]:
    """Episodes of a live subject shown suspect/dead; the unexcused dead ones are violations."""
    out: list[dict[str, Any]] = []
    for o, seen in sorted(by_observer.items()):
        for s in nodes:
            if s == o:
                continue
            episode: list[tuple[Observation, str, str | None]] = []
            for ob in [*seen, None]:
                st = ob.status(s) if ob is not None else None
                if ob is not None and st in ("suspect", "dead") and judge.live(s, ob.t0, ob.t1):
                    episode.append((ob, st, judge.excuse(o, s, ob.t0, ob.t1)))
                    continue
                if episode:
                    out.append(_episode(o, s, episode))
                    episode = []
    out.sort(key=lambda e: (e["start"], e["observer"], e["subject"]))
    return out


def _episode(o: str, s: str, ep: list[tuple[Observation, str, str | None]]) -> dict[str, Any]:
    first, last = ep[0][0], ep[-1][0]
    unexcused_dead = [(ob, st) for ob, st, why in ep if st == "dead" and why is None]
    worst = "dead" if any(st == "dead" for _, st, _ in ep) else "suspect"
    excuses = sorted({why for _, _, why in ep if why})
    e: dict[str, Any] = {
        "observer": o,
        "subject": s,
        "start": round(first.t0, 3),
        "end": round(last.t1, 3),
        "duration_s": round(last.t1 - first.t0, 3),
        "views": len(ep),
        "worst": worst,
        "excused_by": excuses[:3],
        "violation": bool(unexcused_dead),
    }
    if unexcused_dead:
        ob, last_bad = unexcused_dead[0][0], unexcused_dead[-1][0]
        e["index"] = ob.index
        e["why"] = (
            f"{o} showed live, reachable {s} dead in {len(unexcused_dead)} view(s) "
            f"from {ob.t0:.2f}s to {last_bad.t1:.2f}s with no fault to explain it"
        )
    return e


def _restarts(
    obs: list[Observation],
    by_observer: dict[str, list[Observation]],
    faults: Faults,
    judge: _Judge,
    bounds: Bounds,
) -> list[dict[str, Any]]:
    out = []
    for rs in faults.restarts:
        s, k, r = rs.node, rs.killed_at, rs.restarted_at
        next_down = min([w[0] for w in faults.down.get(s, []) if w[0] > r], default=math.inf)
        old = _old_incarnation(obs, s, k)
        entry: dict[str, Any] = {
            "subject": s,
            "killed_at": round(k, 3),
            "restarted_at": round(r, 3),
            "old_incarnation": old,
            "new_incarnation": None,
            "recognised_by": {},
            "recovery_s": None,
            "violations": [],
        }
        out.append(entry)
        if old is None:
            entry["note"] = "no view of the old instance: recognition not judged"
            continue
        for ob in by_observer.get(s, []):
            if r <= ob.t0 and ob.t1 <= next_down and ob.incarnation is not None:
                entry["new_incarnation"] = ob.incarnation
                if ob.incarnation <= old:
                    entry["violations"].append(
                        {
                            "observer": s,
                            "subject": s,
                            "restarted_at": round(r, 3),
                            "seen_at": [round(ob.t0, 3), round(ob.t1, 3)],
                            "index": ob.index,
                            "why": f"{s} restarted at {r:.2f}s but announces incarnation {ob.incarnation}, "
                            f"not above {old} seen before its kill at {k:.2f}s",
                        }
                    )
                break
        down_w = (k, r)
        for o, seen in sorted(by_observer.items()):
            if o == s:
                continue
            for ob in seen:
                if ob.t0 < r or ob.t1 > next_down:
                    continue
                inc, st = ob.incarnation_of(s), ob.status(s)
                if inc is not None and inc > old and st == "alive":
                    entry["recognised_by"][o] = round(ob.changed_at(s, r) - r, 3)
                    break
                if ob.t0 >= r + bounds.recognise_s and judge.excuse(o, s, ob.t0, ob.t1, ignore_down=down_w) is None:
                    entry["violations"].append(
                        {
                            "observer": o,
                            "subject": s,
                            "restarted_at": round(r, 3),
                            "seen_at": [round(ob.t0, 3), round(ob.t1, 3)],
                            "index": ob.index,
                            "why": f"{o} still showed {s} {st} with incarnation {inc} at {ob.t0:.2f}s, "
                            f"{ob.t0 - r:.2f}s after its restart (old incarnation {old}, "
                            f"bound {bounds.recognise_s:g}s)",
                        }
                    )
                    break
        times = list(entry["recognised_by"].values())
        entry["recovery_s"] = max(times) if times else None
    return out


def _summary(
    valid: bool | str,
    obs: list[Observation],
    detections: list[dict[str, Any]],
    suspicions: list[dict[str, Any]],
    restarts: list[dict[str, Any]],
    missed: list[dict[str, Any]],
    held: list[dict[str, Any]],
    unrecognised: list[dict[str, Any]],
    untested: bool = False,
) -> str:
    if not obs:
        return "no view was ever read: nothing to judge"
    parts = []
    if not valid:
        bad = []
        if missed:
            bad.append(f"{len(missed)} missed detection(s)")
        if held:
            bad.append(f"{len(held)} live node(s) held dead past the bound")
        if unrecognised:
            bad.append(f"{len(unrecognised)} unrecognised restart(s)")
        first = (missed or held or unrecognised)[0]["why"]
        parts.append("INVALID: " + ", ".join(bad) + f" (e.g. {first})")
    watched = [d for d in detections if d["watched"]]
    detected = [d for d in watched if d["first_s"] is not None]
    if watched:
        if detected:
            firsts = max(d["first_s"] for d in detected)
            lasts = max(d["last_s"] for d in detected)
            parts.append(
                f"{len(detected)}/{len(watched)} kills detected (worst first/last observer {firsts:.2f}s/{lasts:.2f}s)"
            )
        else:
            parts.append(f"0/{len(watched)} kills detected")
    if len(watched) < len(detections):
        parts.append(f"{len(detections) - len(watched)} kill(s) with no live observer to see them")
    if untested:
        parts.append("detection untested: no kill was seen dead, nor watched long enough to call it a miss")
    rec = [r["recovery_s"] for r in restarts if r["recovery_s"] is not None]
    if restarts:
        worst = f", worst recovery {max(rec):.2f}s" if rec else ""
        parts.append(f"{len(rec)}/{len(restarts)} restarts recognised by someone{worst}")
    total = sum(e["duration_s"] for e in suspicions)
    parts.append(f"{len(suspicions)} suspicion episode(s) of live nodes ({total:.1f}s), {len(held)} unexcused")
    return "; ".join(parts)
