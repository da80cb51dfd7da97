"""Bug hunting at scale, measured: how often each planted bug is caught, what no bug costs, and sweep throughput.

Three tables, printed as Markdown and saved as JSON (figures, never pass/fail):

1. Bug finding. For every planted bug of every system, on fresh seeds (by default 1001 onwards, never used by
   the tests; etcd, an external program sim cannot run, is left out), under three settings: its documented
   exposure (`EXPOSED_BY` next to the system's BUGS, what `harness systems` prints), the defaults
   (`harness run SYSTEM --backend sim --bug X` as it comes), and
   `--swarm`. Each cell: the fraction of seeds that catch it (invalid verdicts), the unknown ones, the CPU
   seconds to the first catch (every seed's CPU summed in seed order up to and including the first that
   caught it: what a one-worker sweep would spend) and the median CPU seconds per seed.
2. No false alarms. Every system with no bug planted, under the defaults and under --swarm: how many seeds,
   how many invalid (a false alarm, or a real bug in a system nobody planted), unknown and crashed.
3. Throughput. The same small sweep on 2 local worker processes and on a Dask LocalCluster of 2
   single-threaded worker processes, interleaved (local, dask, local, dask...), each timed from nothing (the
   workers' start-up included): seeds per minute (median and spread over the repetitions), CPU seconds per
   seed, and the engine's overhead (workers x wall - CPU).

The machine is shared: the load average is printed before and after; CPU seconds (each seed's own worker
process) are the robust figure, wall time and seeds per minute depend on the load.

    python bench/bench_sweep.py                     # everything, 20 seeds a cell, 100 clean seeds a row
    python bench/bench_sweep.py --seeds 100 --clean-seeds 250 --only raft
    python bench/bench_sweep.py --skip-bugs --skip-clean   # throughput only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from base.spec import TestSpec
from harness import registry
from harness.sweep import LocalEngine, SweepPlan, make_sweep_dir, run_defaults, run_sweep
from harness.sweep_exposure import exposed_spec, exposures

MODES = ("exposed", "defaults", "swarm")


def base_spec(system: str, bugs: tuple[str, ...] = ()) -> TestSpec:
    """What `harness run SYSTEM --backend sim` runs by default (the seed comes later)."""
    d = run_defaults()
    return TestSpec(system=system, workload=registry.default_workload(system), nemesis=d["nemesis"], backend="sim",
                    node_count=d["node_count"], concurrency=d["node_count"], rate=d["rate"],
                    time_limit_s=d["time_limit_s"], nemesis_interval_s=d["nemesis_interval_s"], quiet_s=d["quiet_s"],
                    bugs=bugs)


def sweep(plan: SweepPlan, root: Path, workers: int, label: str) -> dict[str, Any]:
    engine = LocalEngine(workers)
    sweep_dir = make_sweep_dir(root, plan.base.system)
    started = time.monotonic()
    try:
        outcome = run_sweep(plan, sweep_dir, engine)
    finally:
        engine.close()
    wall = time.monotonic() - started
    rows = sorted(outcome.rows, key=lambda r: r["seed"])
    cpu = [float(r["cpu_s"]) for r in rows if isinstance(r.get("cpu_s"), int | float)]
    to_first: float | None = None
    spent = 0.0
    for r in rows:
        spent += float(r.get("cpu_s") or 0.0)
        if r["verdict"] == "invalid":
            to_first = spent
            break
    counts = outcome.counts
    out = {
        "label": label,
        "seeds": len(rows),
        "caught": counts["invalid"],
        "unknown": counts["unknown"],
        "error": counts["error"],
        "cpu_to_first_catch_s": None if to_first is None else round(to_first, 1),
        "first_catch_seed": next((r["seed"] for r in rows if r["verdict"] == "invalid"), None),
        "cpu_per_seed_median_s": round(statistics.median(cpu), 2) if cpu else None,
        "cpu_s": round(sum(cpu), 1),
        "wall_s": round(wall, 1),
        "sweep_dir": str(sweep_dir),
        "anomalies": json.loads((sweep_dir / "sweep.json").read_text()).get("anomalies", {}),
    }
    print(f"  {label}: {out['caught']}/{out['seeds']} caught, {out['unknown']} unknown, {out['error']} crashed; "
          f"CPU to first catch {out['cpu_to_first_catch_s']} s; {out['cpu_s']} CPU s, {out['wall_s']} s wall "
          f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return out


def bug_finding(systems: list[str], seeds: tuple[int, ...], workers: int, root: Path,
                modes: tuple[str, ...] = MODES) -> list[dict[str, Any]]:
    table = []
    for system in systems:
        for bug, settings in sorted(exposures(system).items()):
            base = base_spec(system, (bug,))
            plans = {
                "exposed": SweepPlan(exposed_spec(base, settings), seeds) if settings else None,
                "defaults": SweepPlan(base, seeds),
                "swarm": SweepPlan(base, seeds, swarm=True),
            }
            row: dict[str, Any] = {"system": system, "bug": bug, "exposure": settings}
            for mode in modes:
                plan = plans[mode]
                row[mode] = sweep(plan, root, workers, f"{system} {bug} {mode}") if plan else None
            table.append(row)
    return table


def clean(systems: list[str], seeds: tuple[int, ...], workers: int, root: Path) -> list[dict[str, Any]]:
    table = []
    for system in systems:
        for mode in ("defaults", "swarm"):
            plan = SweepPlan(base_spec(system), seeds, swarm=mode == "swarm")
            table.append({"system": system, "mode": mode, **sweep(plan, root, workers, f"{system} no bug {mode}")})
    return table


def throughput(seeds: tuple[int, ...], reps: int, root: Path) -> dict[str, Any]:
    from distributed import LocalCluster

    from harness.sweep import DaskEngine

    base = replace_time(base_spec("raft"), 10.0)
    plan = SweepPlan(base, seeds)
    runs: dict[str, list[dict[str, float]]] = {"local x2": [], "dask LocalCluster x2": []}
    for rep in range(reps):
        for name in runs:
            sweep_dir = make_sweep_dir(root, "raft")
            started = time.monotonic()  # both from nothing: the local pool spawns its workers lazily, inside run
            if name.startswith("local"):
                engine: Any = LocalEngine(2)
                cluster = None
            else:
                cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
                engine = DaskEngine(cluster.scheduler_address)
            try:
                outcome = run_sweep(plan, sweep_dir, engine)
            finally:
                engine.close()
                if cluster is not None:
                    cluster.close()
            wall = time.monotonic() - started
            cpu = sum(float(r.get("cpu_s") or 0) for r in outcome.rows)
            runs[name].append({"wall_s": wall, "cpu_s": cpu, "seeds": len(outcome.rows)})
            print(f"  {name} rep {rep + 1}: {len(outcome.rows)} seeds in {wall:.1f} s wall, {cpu:.1f} CPU s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    out = {}
    for name, reps_ in runs.items():
        per_min = [r["seeds"] / r["wall_s"] * 60 for r in reps_]
        out[name] = {
            "seeds_per_min_median": round(statistics.median(per_min), 2),
            "seeds_per_min_range": [round(min(per_min), 2), round(max(per_min), 2)],
            "cpu_per_seed_s": round(statistics.median(r["cpu_s"] / r["seeds"] for r in reps_), 2),
            "overhead_s_per_seed": round(statistics.median((2 * r["wall_s"] - r["cpu_s"]) / r["seeds"]
                                                           for r in reps_), 2),
        }
    return out


def replace_time(spec: TestSpec, time_limit_s: float) -> TestSpec:
    from dataclasses import replace

    return replace(spec, time_limit_s=time_limit_s)


def print_tables(data: dict[str, Any]) -> None:
    if data.get("bugs"):
        print("\n## Bug finding (fresh seeds; caught/seeds, CPU s to the first catch)\n")
        print("| system | bug | exposure | documented exposure | defaults | --swarm |")
        print("|---|---|---|---|---|---|")
        for row in data["bugs"]:
            cells = []
            for mode in MODES:
                if mode not in row:
                    cells.append("(not run)")
                    continue
                c = row[mode]
                if not c:
                    cells.append("(none declared)")
                    continue
                first = f"{c['cpu_to_first_catch_s']} s" if c["cpu_to_first_catch_s"] is not None else "never"
                extra = f", {c['unknown']} unknown" if c["unknown"] else ""
                cells.append(f"{c['caught']}/{c['seeds']}{extra}; first after {first}")
            exposure = " ".join(f"{k}={v}" for k, v in row["exposure"].items())
            print(f"| {row['system']} | {row['bug']} | {exposure} | " + " | ".join(cells) + " |")
    if data.get("clean"):
        print("\n## No bug planted (false alarms)\n")
        print("| system | mode | seeds | invalid | unknown | crashed | CPU s per seed (median) |")
        print("|---|---|---|---|---|---|---|")
        for r in data["clean"]:
            print(f"| {r['system']} | {r['mode']} | {r['seeds']} | {r['caught']} | {r['unknown']} | {r['error']} | "
                  f"{r['cpu_per_seed_median_s']} |")
    if data.get("throughput"):
        print("\n## Sweep throughput (raft, defaults, 10 s runs)\n")
        print("| engine | seeds/min (median, range) | CPU s per seed | overhead s per seed |")
        print("|---|---|---|---|")
        for name, t in data["throughput"].items():
            print(f"| {name} | {t['seeds_per_min_median']} ({t['seeds_per_min_range'][0]}-"
                  f"{t['seeds_per_min_range'][1]}) | {t['cpu_per_seed_s']} | {t['overhead_s_per_seed']} |")
    print(f"\nload average before {data['load_before']}, after {data['load_after']}; {os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20, help="fresh seeds per bug and mode")
    ap.add_argument("--first-seed", type=int, default=1001)
    ap.add_argument("--clean-seeds", type=int, default=100, help="seeds per system and mode with no bug")
    ap.add_argument("--throughput-seeds", type=int, default=12)
    ap.add_argument("--throughput-reps", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--modes", default=",".join(MODES), help=f"bug-finding settings to measure (of {','.join(MODES)})")
    ap.add_argument("--only", action="append", help="systems to measure (repeatable; default all)")
    ap.add_argument("--skip-bugs", action="store_true")
    ap.add_argument("--skip-clean", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--out", default=None, help="where the sweeps and bench_sweep.json go (default: a temp dir)")
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-sweep-"))
    root.mkdir(parents=True, exist_ok=True)
    systems = [s for s in args.only or registry.known_systems() if not registry.is_external(s)]  # sim runs ours only
    seeds = tuple(range(args.first_seed, args.first_seed + args.seeds))
    data: dict[str, Any] = {"load_before": [round(x, 2) for x in os.getloadavg()], "seeds": list(seeds)}
    print(f"results under {root}; load average {data['load_before']}", flush=True)
    if not args.skip_throughput:
        print("throughput", flush=True)
        t_seeds = tuple(range(args.first_seed, args.first_seed + args.throughput_seeds))
        data["throughput"] = throughput(t_seeds, args.throughput_reps, root / "throughput")
    if not args.skip_bugs:
        print("bug finding", flush=True)
        with_bugs = [s for s in systems if registry.bugs(s)]
        modes = tuple(m for m in args.modes.split(",") if m)
        if set(modes) - set(MODES):
            ap.error(f"--modes: one or more of {', '.join(MODES)}")
        data["bugs"] = bug_finding(with_bugs, seeds, args.workers, root / "bugs", modes)
        (root / "bench_sweep.json").write_text(json.dumps(data, indent=2, default=str))
    if not args.skip_clean:
        print("no bug planted", flush=True)
        clean_seeds = tuple(range(args.first_seed, args.first_seed + args.clean_seeds))
        data["clean"] = clean(systems, clean_seeds, args.workers, root / "clean")
    data["load_after"] = [round(x, 2) for x in os.getloadavg()]
    (root / "bench_sweep.json").write_text(json.dumps(data, indent=2, default=str))
    print_tables(data)
    print(f"\nfigures saved in {root / 'bench_sweep.json'}")


if __name__ == "__main__":
    main()
