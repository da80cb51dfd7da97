"""`harness sweep`: one test over many sim seeds, in parallel, into one summary.

A sweep is a base test (a TestSpec on the sim backend) and a list of seeds;
each seed runs it whole (harness/sweep_run.py) on a local process pool (one
process per core by default) or on a Dask `distributed` cluster
(`--scheduler tcp://HOST:8786`), and its row comes back to the driver.

Rules this module keeps:
- The sweep directory is results/<system>/sweeps/<YYYYmmddTHHMMSS>/:
  `sweep.json` (what was swept, by which engine, and at the end the counts,
  CPU and wall seconds, seeds per minute and the load average),
  `summary.jsonl` (one row per seed, appended and flushed as it arrives, so
  an interrupted sweep keeps every finished seed), `runs/<seed>/` for each
  run kept in full (failing, unknown or crashed ones by default), and
  `index.html`, the page (harness/sweep_page.py), written at the end and
  when interrupted. results/latest does not move.
- Each seed's spec is decided by the driver before it is sent: the base
  with the seed set, or the swarm's draw for that seed (harness/sweep_swarm.py),
  and its `command_line` is the one command that replays it alone.
- A seed is `valid`, `invalid`, `unknown` or `error` (the harness crashed);
  unknown is never counted as passing. The exit code: 1 if any seed was
  invalid, else 3 if any crashed, else 2 if any was unknown, else 0.
- A local worker that dies (OOM killer, a crash in C) costs at most the
  seed that killed it: the others it took down with the pool run again
  (LocalEngine); the seed whose worker dies when it runs alone is `error`.
- `stop_on_first` cancels the seeds not yet started once one is invalid
  (those running finish and are recorded). Ctrl-C stops at once: local
  workers are terminated (by their pids), Dask tasks not started are
  cancelled; the finished seeds stay in summary.jsonl and on the page.
- No job queue of our own: the engines are concurrent.futures' process pool
  and Dask's scheduler.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from base.spec import TestSpec
from harness import registry
from harness.sweep_run import run_seed, unpack
from harness.sweep_swarm import draw

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_CRASH = 0, 1, 2, 3
MAX_SEEDS = 1_000_000


def parse_seeds(text: str) -> tuple[int, ...]:
    """'1-1000', '7', '1,5,9-12' -> the seeds in order, without repeats; ValueError (one line) if malformed."""
    seeds: dict[int, None] = {}
    for part in (p.strip() for p in text.split(",")):
        try:
            if "-" in part[1:]:
                lo_text, hi_text = part.split("-", 1) if not part.startswith("-") else ("", part)
                lo, hi = int(lo_text), int(hi_text)
            else:
                lo = hi = int(part)
        except ValueError:
            raise ValueError(f"--seeds wants numbers and ranges like 1-1000 or 1,5,9-12, got {text!r}") from None
        if lo > hi or lo < 0:
            raise ValueError(f"--seeds: {part!r} is not a range of seeds >= 0 from low to high")
        if len(seeds) + hi - lo + 1 > MAX_SEEDS:
            raise ValueError(f"--seeds: more than {MAX_SEEDS} seeds")
        seeds.update(dict.fromkeys(range(lo, hi + 1)))
    return tuple(seeds)


# -- replay commands -------------------------------------------------------------------------------

FLAGS = (
    ("workload", "--workload"),
    ("nemesis", "--nemesis"),
    ("node_count", "--nodes"),
    ("time_limit_s", "--time-limit"),
    ("concurrency", "--concurrency"),
    ("rate", "--rate"),
    ("nemesis_interval_s", "--interval"),
    ("quiet_s", "--quiet"),
)


def run_defaults() -> dict[str, Any]:
    """`harness run`'s defaults, as TestSpec fields (read from the command itself)."""
    from harness.cli import run as run_command

    given = {p.name: p.default for p in run_command.params}
    return {
        "nemesis": tuple(n for n in str(given["nemesis"]).split(",") if n),
        "node_count": given["node_count"],
        "time_limit_s": given["time_limit_s"],
        "rate": given["rate"],
        "nemesis_interval_s": given["nemesis_interval_s"],
        "quiet_s": given["quiet_s"],
    }


def _flag_value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def run_flags(
    spec: TestSpec,
    fields: Iterable[str] | None = None,
    options: dict[str, Any] | None = None,
    skip: Iterable[str] = (),
) -> list[str]:
    """`harness run` flags giving `spec`'s settings: the named fields (default: every one differing from
    `harness run`'s defaults, less `skip`), the options (default: those differing from the system's), then
    the bugs."""
    defaults = {**run_defaults(), "workload": registry.default_workload(spec.system), "concurrency": spec.node_count}
    out: list[str] = []
    for name, flag in FLAGS:
        value = getattr(spec, name)
        if name in skip:
            continue
        if (name in fields) if fields is not None else defaults.get(name) != value:
            out += [flag, _flag_value(value)]
    if options is None:
        system_defaults = registry.default_options(spec.system)
        options = {k: v for k, v in spec.options.items() if system_defaults.get(k) != v}
    for key, value in sorted(options.items()):
        out += ["--option", f"{key}={json.dumps(value, separators=(',', ':'))}"]
    if spec.allow_no_faults:
        out.append("--allow-no-faults")
    for bug in spec.bugs:
        out += ["--bug", bug]
    return out


def replay_command(
    spec: TestSpec,
    swarm: bool = False,
    pinned: frozenset[str] = frozenset(),
    user_options: dict[str, Any] | None = None,
) -> str:
    """The one `harness run` command that replays this seed's run alone (a swarm seed: its draw, with the
    settings the user pinned)."""
    head = ["harness", "run", spec.system, "--backend", "sim", "--seed", str(spec.seed)]
    flags = ["--swarm", *run_flags(spec, pinned - {"options"}, user_options or {})] if swarm else run_flags(spec)
    return shlex.join(head + flags)


# -- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPlan:
    """What to sweep: a base test, seeds, swarm or not, and what to keep."""

    base: TestSpec
    seeds: tuple[int, ...]
    swarm: bool = False
    pinned: frozenset[str] = frozenset()
    """Swarm only: the settings the user gave, which the draw leaves alone."""
    keep: str = "failing"
    stop_on_first: bool = False
    command_line: str = ""

    def spec_for(self, seed: int) -> TestSpec:
        spec = replace(self.base, seed=seed, backend="sim")
        if self.swarm:
            spec = draw(spec, self.pinned)
        return replace(spec, command_line=replay_command(spec, self.swarm, self.pinned, self.base.options))

    def tasks(self) -> Iterator[dict[str, Any]]:
        for seed in self.seeds:
            yield {"spec": self.spec_for(seed).to_json(), "keep": self.keep}


# -- engines -------------------------------------------------------------------------------------


class Engine(Protocol):
    name: str

    def run(self, tasks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Rows as the seeds finish (in any order)."""
        ...

    def cancel(self) -> None:
        """Drop the seeds not yet started."""
        ...

    def abort(self) -> None:
        """Stop now (Ctrl-C): drop what has not started and stop what runs, where the engine can."""
        ...

    def close(self) -> None: ...


class LocalEngine:
    """A pool of worker processes on this machine (spawned fresh, so nothing of the driver leaks in).

    Workers are never recycled: with `max_tasks_per_child`, Python 3.11-3.13's ProcessPoolExecutor stops
    replacing workers that reached their limit and the sweep hangs for good once every worker has
    (CPython gh-115634; 2 workers x 25 tasks stopped a sweep at seed 50).

    Seeds are handed to the pool a few at a time (two per worker), so a worker that dies (the kernel's
    OOM killer, a crash in C) costs only the seeds in the pool then: concurrent.futures fails every one
    of them. The pool is replaced, and each of those seeds runs again alone; one whose worker dies when
    it is alone is an `error` row, and the sweep goes on."""

    def __init__(self, workers: int, run_task: Callable[[dict[str, Any]], dict[str, Any]] = run_seed) -> None:
        self.workers = workers
        self.name = f"local processes x{workers}"
        self.run_task = run_task
        self.pool = self._new_pool()
        self.futures: dict[Any, dict[str, Any]] = {}
        self.stopping = False

    def _new_pool(self) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def run(self, tasks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        waiting, suspects = deque(tasks), deque[dict[str, Any]]()
        while self.futures or (not self.stopping and (waiting or suspects)):
            self._fill(waiting, suspects)
            done, _ = wait(list(self.futures), return_when=FIRST_COMPLETED)
            rows, broken = _sort_out({f: self.futures.pop(f) for f in done})
            yield from rows
            if not broken:
                continue
            wait(list(self.futures))  # a broken pool fails every seed it holds (one may have finished first)
            rows, also_broken = _sort_out(self.futures)
            yield from rows
            broken += also_broken
            self.futures = {}
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = self._new_pool()
            if len(broken) == 1 and broken[0][1].get("_alone", False):
                row = _row_of(broken[0][0], broken[0][1]["spec"])
                yield {**row, "error": f"{row['error']} (twice: with other seeds, then alone)"}
            else:
                suspects.extend({**t, "_alone": True} for _, t in broken)

    def _fill(self, waiting: deque[dict[str, Any]], suspects: deque[dict[str, Any]]) -> None:
        """Hand the pool its next seeds: a suspect only into an empty pool, and then nothing beside it."""
        if self.stopping:
            return
        if suspects:
            if not self.futures:
                task = suspects.popleft()
                self.futures[self.pool.submit(self.run_task, _without_marks(task))] = task
            return
        while waiting and len(self.futures) < 2 * self.workers:
            task = waiting.popleft()
            self.futures[self.pool.submit(self.run_task, task)] = task

    def cancel(self) -> None:
        self.stopping = True
        for f in self.futures:
            f.cancel()

    def abort(self) -> None:
        self.cancel()
        for process in list(getattr(self.pool, "_processes", {}).values()):  # our own workers, by their pids
            if process.is_alive():
                process.terminate()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _sort_out(finished: dict[Any, dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[Any, dict[str, Any]]]]:
    """Finished futures' rows, and the (future, task) pairs whose pool broke under them; cancelled ones dropped."""
    from concurrent.futures.process import BrokenProcessPool

    rows, broken = [], []
    for fut, task in finished.items():
        if fut.cancelled():
            continue
        if isinstance(fut.exception(), BrokenProcessPool):
            broken.append((fut, task))
        else:
            rows.append(_row_of(fut, task["spec"]))
    return rows, broken


def _without_marks(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if not k.startswith("_")}


class DaskEngine:
    """The seeds as tasks on a Dask `distributed` cluster (its scheduler decides which worker runs which)."""

    def __init__(self, address: str, timeout_s: float = 20.0) -> None:
        from distributed import Client

        self.client = Client(address, timeout=timeout_s)
        workers = len(self.client.scheduler_info().get("workers", {}))
        self.name = f"dask {address} ({workers} workers)"
        self.futures: list[Any] = []

    def run(self, tasks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        from distributed import as_completed

        stamp = f"{os.getpid()}-{time.time_ns()}"
        self.futures = [
            self.client.submit(run_seed, t, key=f"picluster-seed-{t['spec']['seed']}-{stamp}", pure=False)
            for t in tasks
        ]
        specs = {f.key: t["spec"] for f, t in zip(self.futures, tasks, strict=True)}
        for fut in as_completed(self.futures):
            if fut.cancelled():
                continue
            yield _row_of(fut, specs[fut.key])

    def cancel(self) -> None:
        self.client.cancel([f for f in self.futures if not f.done()])

    def abort(self) -> None:
        self.cancel()  # a seed already running on a worker finishes there; its row is not awaited

    def close(self) -> None:
        self.cancel()
        self.client.close()


def _row_of(fut: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """A finished seed's row; a seed whose worker died (run alone, on a local pool) is an `error` row."""
    try:
        return dict(fut.result())
    except Exception as e:
        return {
            "seed": spec["seed"],
            "verdict": "error",
            "valid": "unknown",
            "error": f"the worker failed: {type(e).__name__}: {e}",
            "cpu_s": None,
            "wall_s": None,
        }


def make_engine(workers: int | None, scheduler: str | None) -> Engine:
    if scheduler:
        return DaskEngine(scheduler)
    return LocalEngine(workers or os.cpu_count() or 1)


# -- the sweep -----------------------------------------------------------------------------------


def make_sweep_dir(results_root: Path, system: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    base = results_root / system / "sweeps" / stamp
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{stamp}-{n}")


@dataclass
class Outcome:
    """What a sweep found so far."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(r["verdict"] for r in self.rows)
        return {v: c.get(v, 0) for v in ("valid", "invalid", "unknown", "error")}

    @property
    def exit_code(self) -> int:
        counts = self.counts
        if counts["invalid"]:
            return EXIT_INVALID
        if counts["error"]:
            return EXIT_CRASH
        if counts["unknown"]:
            return EXIT_UNKNOWN
        return EXIT_VALID


def run_sweep(
    plan: SweepPlan,
    sweep_dir: Path,
    engine: Engine,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> Outcome:
    """Run every seed of `plan` on `engine`, writing `sweep_dir` as the module rules say."""
    from harness.sweep_page import write_page

    tasks = list(plan.tasks())
    replays = {t["spec"]["seed"]: str(t["spec"].get("command_line", "")) for t in tasks}
    meta: dict[str, Any] = {
        "system": plan.base.system,
        "command": plan.command_line,
        "engine": engine.name,
        "swarm": plan.swarm,
        "pinned": sorted(plan.pinned),
        "seeds": len(plan.seeds),
        "first_seed": plan.seeds[0] if plan.seeds else None,
        "last_seed": plan.seeds[-1] if plan.seeds else None,
        "keep": plan.keep,
        "base": {k: v for k, v in plan.base.to_json().items() if k not in ("run_dir", "seed", "command_line")},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json(sweep_dir / "sweep.json", meta)
    outcome = Outcome()
    wall0 = time.monotonic()
    try:
        with open(sweep_dir / "summary.jsonl", "a", encoding="utf-8") as summary:
            for row in engine.run(tasks):
                files = row.pop("files", None)
                if files:
                    unpack(files, sweep_dir / "runs" / str(row["seed"]))
                    row["run"] = f"runs/{row['seed']}"
                row.setdefault("replay", replays.get(row["seed"], ""))
                summary.write(json.dumps(row, default=str) + "\n")
                summary.flush()
                outcome.rows.append(row)
                if on_row is not None:
                    on_row(row)
                if plan.stop_on_first and row["verdict"] == "invalid":
                    engine.cancel()
    except KeyboardInterrupt:
        outcome.interrupted = True
        engine.abort()
        raise
    finally:
        wall_s = time.monotonic() - wall0
        meta.update(finished=datetime.now(UTC).isoformat(timespec="seconds"), **figures(outcome, wall_s))
        _write_json(sweep_dir / "sweep.json", meta)
        write_page(sweep_dir, meta, outcome.rows)
    return outcome


def figures(outcome: Outcome, wall_s: float) -> dict[str, Any]:
    cpu = [r["cpu_s"] for r in outcome.rows if isinstance(r.get("cpu_s"), int | float)]
    done = len(outcome.rows)
    return {
        "done": done,
        "interrupted": outcome.interrupted,
        "counts": outcome.counts,
        "cpu_s": round(sum(cpu), 1),
        "wall_s": round(wall_s, 1),
        "seeds_per_min": round(done / wall_s * 60, 2) if wall_s > 0 else None,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "anomalies": dict(Counter(k for r in outcome.rows for k in r.get("anomalies", []))),
    }


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
