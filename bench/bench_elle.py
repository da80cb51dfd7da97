"""Benchmark: how the Elle-like checker scales with history size, in CPU and wall seconds.

Generates histories with checkers.elle.synth (a simulated strict-serializable
store with concurrent clients, with some info and failed txns, and the same
store with planted stale reads) at 10k, 30k and 100k transactions, and checks
each under strict-serializable: list-append and rw-register, interleaved, each
`--repeats` times. Prints, per case, the median CPU and wall seconds with their
spread (min-max), CPU microseconds per txn (flat across sizes means linear
growth), txns per CPU second, the stages (graph, cycle search, serial-order
proof) and what was found, and the load average before and after.

The peer, Elle on the JVM, checks on the order of 100k txns/s (its paper and
README); it cannot run here (its packages live on Clojars, which this machine
does not reach), so that figure is quoted, not measured in the same run.
Figures only: this is not a test and asserts nothing about speed.

    .venv/bin/python bench/bench_elle.py [--sizes 10000,30000,100000] [--repeats 3] [--workloads list-append]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checkers.elle import check_list_append, check_rw_register
from checkers.elle.synth import list_append_history, rw_register_history

ELLE_TXNS_PER_S = 100_000
"""Elle's order of magnitude on the JVM, as its authors report it (not measured here)."""

WORKLOADS: dict[str, tuple[Callable[..., list[dict[str, Any]]], Callable[..., dict[str, Any]]]] = {
    "list-append": (list_append_history, check_list_append),
    "rw-register": (rw_register_history, check_rw_register),
}


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workloads", default="list-append,rw-register")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workloads = [w for w in args.workloads.split(",") if w in WORKLOADS]
    load_before = os.getloadavg()
    cases = [(w, plant, n) for plant in (None, "stale") for n in sizes for w in workloads]
    histories = {}
    for w, plant, n in cases:
        generate = WORKLOADS[w][0]
        histories[(w, plant, n)] = generate(n, concurrency=args.concurrency, seed=args.seed, plant=plant,
                                            plant_rate=0.0005)
    cpu: dict[Any, list[float]] = {c: [] for c in cases}
    wall: dict[Any, list[float]] = {c: [] for c in cases}
    last: dict[Any, dict[str, Any]] = {}
    for _ in range(args.repeats):
        for case in cases:  # contenders interleaved, so load drifts hit them alike
            check = WORKLOADS[case[0]][1]
            c0, w0 = time.process_time(), time.perf_counter()
            r = check(histories[case])
            cpu[case].append(time.process_time() - c0)
            wall[case].append(time.perf_counter() - w0)
            last[case] = r
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; {os.cpu_count()} cores; "
          f"median (min-max) of {args.repeats}")
    print(f"{'history':<18} {'txns':>7} {'edges':>8} {'cpu s':>19} {'wall s':>19} {'cpu µs/txn':>10} "
          f"{'txn/cpu s':>9} {'graph/search/proof s':>21}  verdict")
    for case in cases:
        w, plant, n = case
        r = last[case]
        st = r["stats"]
        med = statistics.median(cpu[case])
        stages = f"{st['graph_s']:.2f}/{st['search_s']:.2f}/{st['witness_s']:.2f}"
        label = f"{w}/{plant or 'clean'}"
        found = ", ".join(f"{t} {c}" for t, c in r["anomaly_counts"].items()) or "-"
        print(f"{label:<18} {n:>7} {st['edges']:>8} {spread(cpu[case]):>19} {spread(wall[case]):>19} "
              f"{med / n * 1e6:>10.1f} {n / med:>9.0f} {stages:>21}  {r['valid']}: {found}")
    best = max(c[2] / statistics.median(cpu[c]) for c in cases)
    print(f"fastest case: {best:,.0f} txns per CPU second, {best / ELLE_TXNS_PER_S:.2f}x Elle's reported "
          f"~{ELLE_TXNS_PER_S:,} txns/s on the JVM (quoted, not measured here)")


if __name__ == "__main__":
    main()
