"""Benchmark: how the Elle-like list-append checker scales with history size.

Generates histories with checkers.elle.synth (a simulated strict-serializable
store with concurrent clients, and the same store with planted stale reads)
at 10k, 30k and 100k transactions, checks each under strict-serializable (rw-register too, same sizes) and
prints the check time, the time per 1,000 txns, and what was found. Figures
only: this is not a test and asserts nothing about speed.

    .venv/bin/python bench/bench_elle.py [--sizes 10000,30000,100000] [--concurrency 10] [--workloads list-append]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checkers.elle import check_list_append, check_rw_register
from checkers.elle.synth import list_append_history, rw_register_history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workloads", default="list-append,rw-register")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'history':<16} {'txns':>8} {'ops':>8} {'edges':>9} {'gen s':>7} {'check s':>8} {'s/1k txn':>9}  verdict")
    runs = [
        ("list-append", list_append_history, check_list_append),
        ("rw-register", rw_register_history, check_rw_register),
    ]
    for workload, generate, check in runs:
        if workload not in args.workloads.split(","):
            continue
        for plant in (None, "stale"):
            for n in sizes:
                t0 = time.perf_counter()
                history = generate(n, concurrency=args.concurrency, seed=args.seed, plant=plant, plant_rate=0.0005)
                t1 = time.perf_counter()
                r = check(history)
                t2 = time.perf_counter()
                st = r["stats"]
                label = f"{workload[:4]}/{plant or 'clean'}"
                print(
                    f"{label:<16} {n:>8} {len(history):>8} {st['edges']:>9} {t1 - t0:>7.2f} "
                    f"{t2 - t1:>8.2f} {(t2 - t1) / n * 1000:>9.3f}  {r['valid']}: {r['summary'][:80]}"
                )


if __name__ == "__main__":
    main()
