"""How fast `harness serve` answers with thousands of runs, and what decoding a capture costs.

Makes N run directories shaped as the harness writes them (test.json, results.json with a checker's
verdict and summary, report.html, history.jsonl) under a temporary results/, then measures, each
repeated, CPU and wall seconds of: the first listing (every run parsed), a listing after a walk that
finds nothing changed (the cache), a filtered and searched page (no walk), and one /api/runs request
over HTTP. With --pcap FILE it also decodes a bridge capture (harness/lamport_capture.py) and reports
the CPU microseconds per TCP segment. Medians with the spread, and the load average. A figure, never
a pass/fail timing.

    .venv/bin/python bench/bench_serve.py [--runs 5000] [--repeat 5] [--pcap results/raft/RUN/capture.pcap]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.serve import make_server
from harness.serve_index import Query, RunIndex

SYSTEMS = ("raft", "kv", "heartbeat", "echo")
NEMESES = (["partition"], ["kill"], ["partition", "kill"], [])


def make_runs(root: Path, n: int) -> None:
    for i in range(n):
        system = SYSTEMS[i % 4]
        run = root / system / f"2026{i:06d}T000000-x"
        run.mkdir(parents=True)
        test = {"system": system, "workload": "register", "nemesis": NEMESES[i % 4], "backend": "sim", "seed": i,
                "bugs": ["stale-read"] if i % 9 == 0 else [], "nodes": ["n1", "n2", "n3"],
                "command_line": f"harness run {system} --seed {i}"}
        (run / "test.json").write_text(json.dumps(test))
        valid = i % 7 != 0
        checkers = {"linearizable": {"valid": valid, "summary": "x" * 200}, "stats": {"valid": True, "summary": "ok"}}
        (run / "results.json").write_text(json.dumps({"valid": valid, "checkers": checkers, "faults": {}}))
        (run / "report.html").write_text("<!doctype html>")
        (run / "history.jsonl").write_text("")


def measure(fn: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return cpu, wall


def show(name: str, cpu: list[float], wall: list[float]) -> None:
    def fmt(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1000:8.1f} ms (spread {min(xs) * 1000:.1f}-{max(xs) * 1000:.1f})"

    print(f"{name:<42} cpu {fmt(cpu)}   wall {fmt(wall)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pcap", type=Path, default=None)
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        make_runs(root, args.runs)
        print(f"{args.runs} runs made under {root}")
        show("first listing (every run parsed)", *measure(lambda: RunIndex(root).query(Query()), args.repeat))
        index = RunIndex(root, rescan_s=0)
        index.query(Query())
        show("listing after a walk, nothing changed", *measure(lambda: index.query(Query()), args.repeat))
        index.rescan_s = 3600
        q = Query.from_params({"system": "raft", "verdict": "invalid", "q": "stale", "sort": "seed"})
        show("filtered, searched, sorted page (cached)", *measure(lambda: index.query(q), args.repeat))
        server = make_server(root, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/api/runs?verdict=invalid&per_page=50"
        try:
            urllib.request.urlopen(url, timeout=60).read()  # the first listing, outside the figure

            def fetch() -> None:
                with urllib.request.urlopen(url, timeout=60) as r:
                    r.read()

            show("GET /api/runs over HTTP (warm)", *measure(fetch, args.repeat))
        finally:
            server.shutdown()
            server.server_close()
    if args.pcap is not None:
        from harness.lamport_capture import address_names, capture_messages, segments

        n = sum(1 for _ in segments(args.pcap))
        names = address_names(args.pcap.parent)
        cpu, wall = measure(lambda: capture_messages(args.pcap, names), max(1, args.repeat // 2))
        per = [c / n * 1e6 for c in cpu]
        print(f"capture {args.pcap.name}: {n} TCP segments; decode cpu {statistics.median(per):.0f} us/segment "
              f"(spread {min(per):.0f}-{max(per):.0f}), wall {statistics.median(wall):.2f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
