"""Time the linearizability checker on Porcupine's reference histories, next to Porcupine's figures.

    .venv/bin/python bench/bench_linearizable.py [--runs N] [--budget-s S] [--only SUBSTR]

Times the check alone (parsing excluded): each file is parsed once, then
checked `--runs` times (fewer if a file's runs exceed `--budget-s`, at least
3), and the minimum and median per file are printed beside Porcupine's
per-file minimum and median from the README's table (Go, same machine).
Totals are sums of per-file minimums, as in the README. Prints figures only;
it never passes or fails. It also confirms every verdict against the table.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkers.linearizable.check import check_operations
from checkers.linearizable.models import KvModel, make_model
from checkers.linearizable.parse import parse_porcupine_etcd, parse_porcupine_kv

DATA = Path(__file__).resolve().parents[2] / "shared" / "reference-histories" / "porcupine"
ROW = re.compile(r"^\| (etcd|kv)/(\S+) \| (\d+) \| \d+ \| \d+ \| (yes|no) \| ([\d.]+) \| ([\d.]+) \|")


def porcupine_table() -> dict[str, tuple[bool, float, float]]:
    table = {}
    for line in (DATA / "README.md").read_text().splitlines():
        m = ROW.match(line)
        if m:
            table[f"{m[1]}/{m[2]}"] = (m[4] == "yes", float(m[5]), float(m[6]))
    return table


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--budget-s", type=float, default=2.0, help="stop repeating a file after this much time")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    if not DATA.exists():
        print(f"reference histories not found at {DATA}")
        return 0
    table = porcupine_table()
    totals: dict[str, list[float]] = {"etcd": [0.0, 0.0], "kv": [0.0, 0.0]}
    mismatches = []
    print(f"{'file':<22} {'ops':>5} {'verdict':>8} {'min ms':>9} {'median ms':>10} {'porc min':>9} "
          f"{'porc med':>9} {'ratio':>7}")
    for name, (expected, p_min, p_med) in table.items():
        if a.only not in name:
            continue
        group = name.split("/")[0]
        path = DATA / name
        if group == "etcd":
            model = make_model("cas-register")
            ops = parse_porcupine_etcd(path.read_text(), model)
        else:
            model = KvModel(initial="")
            ops = parse_porcupine_kv(path.read_text(), model)
        times = []
        verdict = None
        spent = 0.0
        for i in range(a.runs):
            t = time.perf_counter()
            r = check_operations(ops, model, time_limit_s=60.0)
            dt = time.perf_counter() - t
            times.append(dt * 1000)
            verdict = r["valid"]
            spent += dt
            if spent > a.budget_s and i >= 2:
                break
        if verdict is not expected:
            mismatches.append((name, verdict, expected))
        mn, med = min(times), statistics.median(times)
        totals[group][0] += mn
        totals[group][1] += p_min
        print(f"{name:<22} {len(ops):>5} {verdict!s:>8} {mn:>9.2f} {med:>10.2f} {p_min:>9.2f} {p_med:>9.2f} "
              f"{mn / p_min:>7.2f}")
    print()
    for group, (ours, theirs) in totals.items():
        if theirs:
            print(f"{group}: sum of per-file minimums {ours:.1f} ms; Porcupine {theirs:.1f} ms; "
                  f"ratio {ours / theirs:.2f}x")
    ours = sum(v[0] for v in totals.values())
    theirs = sum(v[1] for v in totals.values())
    if theirs:
        print(f"all: {ours:.1f} ms vs {theirs:.1f} ms; ratio {ours / theirs:.2f}x")
    print("verdict mismatches:", mismatches or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
