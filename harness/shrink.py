"""`harness shrink`: a failing sim run, minimised while it keeps failing.

A failing seed reproduces, but a person reads a run with two faults and
three clients far better than one with twelve faults and ten clients. The
shrinker replays the run on the sim backend with an explicit fault schedule
(nemesis/schedule.py's Script) and takes away what the failure does not need.

Rules this module keeps:
- Only a sim run whose verdict is invalid shrinks; it is read from its run
  directory alone (test.json, history.jsonl, results.json).
- "Still failing" means: the replay's verdict is invalid and at least one of
  the checkers that failed originally fails again (a different failure is
  not the same bug).
- The schedule comes from the history: every fault the run recorded, at the
  times it was recorded, inflicted exactly as recorded when its kind can be
  (nodes down, paused, links cut or degraded), its package run live between
  the same times otherwise. If that replay does not fail (the failure hung on
  the nemesis' own timing: a scenario that polled the nodes), the packages
  are run live over the spans they were active in. If neither fails, the
  shrinker says so and stops.
- Then, each step kept only if the run still fails: fewer faults (delta
  debugging, Zeller's ddmin, over the schedule), a shorter time limit (down
  to just after the last fault), fewer clients, a lower rate (fewer ops), a
  shorter quiet period; then one more pass over the faults. Every candidate
  is one deterministic sim run, at most `max_runs` in all.
- Its output, in RUN_DIR/shrink/: `schedule.json` (the faults, the settings,
  and the replay command), `minimal/` (the smallest failing run, in full) and
  `attempts.jsonl` (every candidate tried and its verdict). Other attempts'
  run directories are removed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from base.faults import FaultWindow, fault_windows
from base.history import read_history
from base.spec import TestSpec
from harness.checking import effective, run_checkers
from harness.rundir import read_spec
from harness.sweep import run_flags
from harness.sweep_run import prepare_at
from nemesis.catalog import KINDS_OF, VOCABULARY
from nemesis.schedule import ScheduledFault, Script, replayable


class CannotShrink(ValueError):
    """The run cannot be shrunk (not sim, not failing, or its failure does not replay); one line."""


# -- the schedule a history shows ----------------------------------------------------------------


def _package_of(w: FaultWindow, requested: Sequence[str]) -> str:
    if w.package:
        return w.package
    return next((n for n in requested if w.kind in KINDS_OF.get(n, ())), w.kind)


def recorded_script(history: list[dict[str, Any]], requested: Sequence[str]) -> Script:
    """Every fault of the history, at its recorded times: exactly as recorded when its kind replays by its
    effect, else its package live over that window's span (consecutive windows of one package merged)."""
    faults: list[ScheduledFault] = []
    live: list[FaultWindow] = []
    for w in fault_windows(history, VOCABULARY):
        kind = VOCABULARY.kinds[w.kind]
        if replayable(kind):
            inflict = {"f": kind.start, "value": w.value, **w.detail}
            faults.append(
                ScheduledFault(_package_of(w, requested), _t(w.start_s), _t(w.end_s) if w.cured else None, inflict)
            )
        else:
            live.append(w)
    faults += _spans(live, requested).faults
    return Script(tuple(sorted(faults, key=lambda f: f.start_s)))


def live_script(history: list[dict[str, Any]], requested: Sequence[str]) -> Script:
    """Each package live over the spans it was active in (consecutive windows of one package merged)."""
    return _spans(fault_windows(history, VOCABULARY), requested)


def _spans(windows: list[FaultWindow], requested: Sequence[str]) -> Script:
    spans: list[list[Any]] = []  # [package, start, end or None]
    for w in sorted(windows, key=lambda w: w.start_s):
        package = _package_of(w, requested)
        end = w.end_s if w.cured else None
        if spans and spans[-1][0] == package:
            last = spans[-1]
            last[2] = None if last[2] is None or end is None else max(last[2], end)
        else:
            spans.append([package, w.start_s, end])
    return Script(tuple(ScheduledFault(p, _t(s), None if e is None else _t(e)) for p, s, e in spans))


def _t(x: float | None) -> float:
    return round(float(x or 0.0), 4)


# -- delta debugging -----------------------------------------------------------------------------


def ddmin(items: list[Any], fails: Callable[[list[Any]], bool]) -> list[Any]:
    """A 1-minimal sublist of `items` for which `fails` still holds (Zeller & Hildebrandt 2002: try each
    chunk, then each complement, then finer chunks); `fails(items)` is assumed. Order is kept."""
    if fails([]):
        return []
    kept = list(range(len(items)))

    def fails_at(indices: list[int]) -> bool:
        return fails([items[i] for i in indices])

    n = 2
    while len(kept) >= 2:
        size = len(kept)
        chunks = [c for c in (kept[i * size // n : (i + 1) * size // n] for i in range(n)) if c]
        reduced = next((c for c in chunks if fails_at(c)), None)
        if reduced is not None:
            kept, n = reduced, 2
            continue
        if len(chunks) > 2:  # with two chunks each complement is the other chunk, just tried
            complement = next((r for r in ([i for i in kept if i not in c] for c in chunks) if fails_at(r)), None)
            if complement is not None:
                kept, n = complement, max(n - 1, 2)
                continue
        if n >= len(kept):
            break
        n = min(len(kept), 2 * n)
    return [items[i] for i in kept]


# -- the shrinker --------------------------------------------------------------------------------


@dataclass
class Candidate:
    spec: TestSpec
    script: Script

    def key(self) -> str:
        s = self.spec
        return json.dumps([self.script.to_json(), s.time_limit_s, s.concurrency, s.rate, s.quiet_s], sort_keys=True)


@dataclass
class Shrinker:
    run_dir: Path
    max_runs: int = 100
    log: Callable[[str], None] = lambda line: None
    runs: int = 0
    cpu_s: float = 0.0
    _seen: dict[str, bool] = field(default_factory=dict)
    _best_dir: Path | None = None

    def __post_init__(self) -> None:
        self.original = read_spec(self.run_dir)
        if self.original.backend != "sim":
            raise CannotShrink(
                f"{self.run_dir} ran on {self.original.backend}; only a sim run replays exactly, "
                "so only a sim run shrinks"
            )
        try:
            results = json.loads((self.run_dir / "results.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise CannotShrink(f"{self.run_dir} has no readable results.json; run `harness check` on it") from None
        if results.get("valid") is not False:
            raise CannotShrink(
                f"{self.run_dir} did not fail (its verdict is {results.get('valid')}): only a failing run shrinks"
            )
        self.targets = sorted(n for n, r in results.get("checkers", {}).items() if effective(r) is False)
        self.history = read_history(self.run_dir / "history.jsonl").ops
        self.work = self.run_dir / "shrink"
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir()
        self.attempts = open(self.work / "attempts.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (closed in shrink)

    # -- one candidate --

    def fails(self, cand: Candidate) -> bool:
        key = cand.key()
        if key in self._seen:
            return self._seen[key]
        if self.runs >= self.max_runs:
            return False
        self.runs += 1
        run_dir = self.work / f"attempt-{self.runs}"
        spec = replace(
            cand.spec,
            schedule=cand.script.to_json(),
            nemesis=cand.script.packages(),
            pace={},
            swarm={},
            run_dir="",
            command_line="",
        )
        cpu0 = time.process_time()
        from harness.session import execute

        try:
            spec = prepare_at(spec, run_dir)
            execute(spec)
            read = read_history(run_dir / "history.jsonl")
            results = run_checkers(spec, read.ops, torn_tail=read.torn_tail)
        except Exception as e:  # a candidate the harness could not run is not the same failure
            self.log(f"attempt {self.runs}: the harness failed ({type(e).__name__}: {e}); counted as passing")
            results = {"valid": "unknown", "checkers": {}}
        self.cpu_s += time.process_time() - cpu0
        failed = [n for n, r in results["checkers"].items() if effective(r) is False]
        verdict = results["valid"] is False and any(n in self.targets for n in failed)
        self._seen[key] = verdict
        self.attempts.write(
            json.dumps(
                {
                    "attempt": self.runs,
                    "faults": len(cand.script.faults),
                    "time_limit_s": spec.time_limit_s,
                    "concurrency": spec.concurrency,
                    "rate": spec.rate,
                    "quiet_s": spec.quiet_s,
                    "still_fails": verdict,
                    "failing": failed,
                }
            )
            + "\n"
        )
        self.attempts.flush()
        self.log(
            f"attempt {self.runs}: {len(cand.script.faults)} faults, {spec.time_limit_s:g} s, "
            f"{spec.concurrency} clients at {spec.rate:g} op/s, {spec.quiet_s:g} s quiet: "
            f"{'still fails' if verdict else 'passes'}"
        )
        if verdict:
            if self._best_dir is not None:
                shutil.rmtree(self._best_dir, ignore_errors=True)
            self._best_dir = run_dir
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        return verdict

    # -- the steps --

    def start(self) -> Candidate:
        spec = replace(self.original, schedule=[], pace={}, swarm={})
        for script in (
            recorded_script(self.history, self.original.nemesis),
            live_script(self.history, self.original.nemesis),
        ):
            try:
                script.check(spec.nodes, VOCABULARY)
            except ValueError:
                continue
            cand = Candidate(spec, script)
            if self.fails(cand):
                return cand
        raise CannotShrink(
            f"the failure of {self.run_dir} did not come back when its faults were replayed "
            "(it hung on the nemesis' own timing); shrink a run of another seed"
        )

    def fewer_faults(self, cand: Candidate) -> Candidate:
        kept = ddmin(list(cand.script.faults), lambda fs: self.fails(Candidate(cand.spec, Script(tuple(fs)))))
        return Candidate(cand.spec, Script(tuple(kept)))

    def shorter(self, cand: Candidate) -> Candidate:
        last = max([f.stop_s if f.stop_s is not None else f.start_s for f in cand.script.faults], default=0.0)
        floor = max(1.0, round(last + 1.0))
        best = cand
        for t in _down_to(cand.spec.time_limit_s, floor):
            trial = Candidate(replace(cand.spec, time_limit_s=t), _cut(cand.script, t))
            if not self.fails(trial):
                break
            best = trial
        return best

    def fewer_clients(self, cand: Candidate) -> Candidate:
        for c in range(1, cand.spec.concurrency):
            trial = Candidate(replace(cand.spec, concurrency=c), cand.script)
            if self.fails(trial):
                return trial
        return cand

    def fewer_ops(self, cand: Candidate) -> Candidate:
        best = cand
        while best.spec.rate / 2 >= 1.0:
            trial = Candidate(replace(best.spec, rate=round(best.spec.rate / 2, 2)), best.script)
            if not self.fails(trial):
                break
            best = trial
        return best

    def quieter(self, cand: Candidate) -> Candidate:
        best = cand
        while best.spec.quiet_s / 2 >= 0.5:
            trial = Candidate(replace(best.spec, quiet_s=round(best.spec.quiet_s / 2, 2)), best.script)
            if not self.fails(trial):
                break
            best = trial
        return best

    def shrink(self) -> dict[str, Any]:
        """Minimise; write schedule.json and minimal/; return what schedule.json says."""
        try:
            first = self.start()
            cand = self.fewer_faults(first)
            for step in (self.shorter, self.fewer_clients, self.fewer_ops, self.quieter, self.fewer_faults):
                cand = step(cand)
        finally:
            self.attempts.close()
        return self.write(first, cand)

    def write(self, first: Candidate, cand: Candidate) -> dict[str, Any]:
        schedule_path = self.work / "schedule.json"
        minimal = self.work / "minimal"
        if self._best_dir is not None and self._best_dir != minimal:
            self._best_dir.rename(minimal)
        spec = replace(cand.spec, nemesis=cand.script.packages(), schedule=cand.script.to_json())
        command = shlex.join(
            [
                "harness",
                "run",
                spec.system,
                "--backend",
                "sim",
                "--seed",
                str(spec.seed),
                *run_flags(spec, skip=("nemesis",)),
                "--schedule",
                str(schedule_path),
            ]
        )
        out = {
            "faults": cand.script.to_json(),
            "replay": command,
            "from": str(self.run_dir),
            "failing_checkers": self.targets,
            "settings": {
                "seed": spec.seed,
                "node_count": spec.node_count,
                "time_limit_s": spec.time_limit_s,
                "concurrency": spec.concurrency,
                "rate": spec.rate,
                "quiet_s": spec.quiet_s,
                "bugs": list(spec.bugs),
            },
            "before": {
                "faults": len(first.script.faults),
                "time_limit_s": self.original.time_limit_s,
                "concurrency": self.original.concurrency,
                "rate": self.original.rate,
            },
            "runs": self.runs,
            "cpu_s": round(self.cpu_s, 1),
            "minimal_run": str(minimal),
        }
        schedule_path.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
        return out


def _down_to(start: float, floor: float) -> list[float]:
    """Time limits to try, longest first: halving the distance to `floor`, then `floor` itself."""
    out, t = [], start
    while t - floor > 1.0:
        t = round(floor + (t - floor) / 2, 1)
        out.append(t)
    if floor < start and floor not in out:
        out.append(floor)
    return sorted(set(out), reverse=True)


def _cut(script: Script, time_limit_s: float) -> Script:
    """The faults that start before the time limit."""
    return Script(tuple(f for f in script.faults if f.start_s < time_limit_s))
