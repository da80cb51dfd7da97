"""Word count on picluster's MapReduce over its DFS, next to what a Python user would run instead.

    python bench/bench_mapreduce.py [--mb 200] [--files 8] [--runs 3] [--no-dask] [--sort-mb 50]

Prints figures, never passes or fails. In one run, with the contenders
interleaved (each round runs every contender once, in a rotating order) so
that the shared machine's load falls on all of them alike:

- picluster: a local cluster of 2 node processes (this machine has 2 cores),
  each a DFS chunkserver and a MapReduce worker; n1 also the DFS master and
  the coordinator. The corpus is stored in the DFS beforehand (4 MiB chunks,
  2 replicas, so every map can read a local replica). A wordcount job with
  R = 2, fault tolerance on (pings, re-execution, backups), timed from
  submit to done, with the map and reduce phases from the coordinator's
  own timeline.
- `LC_ALL=C tr | sort | uniq -c` over the same files on the local disk.
- one Python process with collections.Counter.
- multiprocessing.Pool(2), a Counter per file, merged (the pool forked once before the timing, as
  Dask's cluster is started before it).
- Dask: a dask.bag on a distributed LocalCluster with 2 worker processes of
  one thread, started before the timing: `.str.split().flatten().frequencies()`,
  and a per-partition Counter reduction.

Reported per contender: median MB/s over the runs and the spread (min-max),
and CPU seconds per MB (all processes involved: the nodes, the pipeline's
children, the pool's workers, Dask's workers); the load average before and
after. Then: the distributed sort job's MB/s (next to `LC_ALL=C sort`), and
the cost of one worker killed in the middle of a wordcount job (extra
seconds over the median). The corpus is the seeded Zipf corpus of
checkers/mapreduce_corpus.py, generated once and cached in a temp directory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from base.spec import TestSpec
from checkers.mapreduce_corpus import corpus
from harness.backends.local import LocalBackend, LocalCluster
from systems.mapreduce.client import MrClient

CHUNK = 4 * 1024 * 1024
CACHE = Path(tempfile.gettempdir()) / "picluster-bench-mapreduce"
TICK = os.sysconf("SC_CLK_TCK")
SCRUB = 4 * 1024 * 1024
"""The DFS scrubber's budget per chunkserver (default 32 MiB/s): lowered so that background checksum
verification of the stored corpus does not eat a benchmark's CPU; said next to the figures."""


# -- the corpus ---------------------------------------------------------------------------------


def corpus_files(mb: int, files: int) -> list[Path]:
    d = CACHE / f"zipf-{mb}mb-{files}"
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(files):
        p = d / f"part-{i}.txt"
        if not p.exists():
            tmp = p.with_suffix(".tmp")
            tmp.write_bytes(corpus(1000 + i, mb * 1_000_000 // files))
            tmp.rename(p)
        out.append(p)
    return out


def total_mb(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


# -- CPU time -----------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (and of its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / TICK


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu_s() -> float:
    return time.process_time()


# -- the peers ----------------------------------------------------------------------------------


def run_shell(paths: list[Path]) -> Counter[str] | None:
    files = " ".join(str(p) for p in paths)
    cmd = f"cat {files} | LC_ALL=C tr -s '[:space:]' '\\n' | LC_ALL=C sort | LC_ALL=C uniq -c > /dev/null"
    subprocess.run(["bash", "-c", cmd], check=True)
    return None


def count_file(path: str) -> Counter[str]:
    with open(path, "rb") as f:
        return Counter(f.read().split())


def run_counter(paths: list[Path]) -> Counter[str]:
    c: Counter[str] = Counter()
    for p in paths:
        c.update(count_file(str(p)))
    return c


class PoolPeer:
    """multiprocessing.Pool(2), forked once at the start, before this process has any thread.

    Forking later, from a process running Dask's client threads and the cluster's event loop, can copy a
    lock some thread holds: the child then waits on it forever (seen here: a round that never ended). Like
    Dask's cluster, the pool is started before the timing; its CPU is its workers' own."""

    def __init__(self) -> None:
        self.pool = multiprocessing.get_context("fork").Pool(2)
        self.pids = [w.pid for w in self.pool._pool]  # type: ignore[attr-defined]  # a fixed pool: no maxtasksperchild

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(p) for p in self.pids if p is not None) + self_cpu_s()

    def run(self, paths: list[Path]) -> Counter[str]:
        parts = self.pool.map(count_file, [str(p) for p in paths])
        total: Counter[str] = Counter()
        for part in parts:
            total.update(part)
        return total

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


def dask_partition_counter(lines: list[str]) -> Counter[str]:
    c: Counter[str] = Counter()
    for line in lines:
        c.update(line.split())
    return c


def dask_merge(counters: list[Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return total


class DaskPeer:
    def __init__(self) -> None:
        from dask.distributed import Client
        from dask.distributed import LocalCluster as DaskCluster

        self.cluster = DaskCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        self.client = Client(self.cluster)
        self.pids = list(self.client.run(os.getpid).values())

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(p) for p in self.pids) + self_cpu_s()

    def plain(self, paths: list[Path]) -> None:
        import dask.bag as db

        db.read_text([str(p) for p in paths], blocksize=CHUNK).str.split().flatten().frequencies().compute()

    def counter(self, paths: list[Path]) -> None:
        import dask.bag as db

        bag = db.read_text([str(p) for p in paths], blocksize=CHUNK)
        bag.reduction(dask_partition_counter, dask_merge).compute()

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


# -- picluster ----------------------------------------------------------------------------------


class Picluster:
    """Jobs on a running cluster; each call runs one job and returns (seconds, phases, cpu seconds)."""

    def __init__(self, c: LocalCluster, mr: MrClient) -> None:
        self.c, self.mr = c, mr
        self.n = 0

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(self.c.pid(n) or 0) for n in self.c.nodes)

    async def job(self, name: str, reduces: int, *, kill_at: float | None = None) -> dict[str, Any]:
        self.n += 1
        job = f"{name}-{self.n}"
        cpu0, t0 = self.cpu_s(), time.monotonic()
        await self.mr.submit(job, name, ["/bench/*"], f"/out/{job}", reduces)
        killed = False
        while True:
            st = await self.mr.status(job)
            if st["state"] != "running":
                break
            done = st["map_tasks"]["completed"] / max(1, sum(st["map_tasks"].values()))
            if kill_at is not None and not killed and done >= kill_at:
                await self.c.kill("n2")
                killed = True
                await self.c.client.sleep(1.0)
                await self.c.restart("n2")
            await self.c.client.sleep(0.05)
        seconds = time.monotonic() - t0
        cpu = self.cpu_s() - cpu0 if not killed else float("nan")
        report = await self.mr.report(job)
        assert st["state"] == "done", st
        return {"s": seconds, "cpu_s": cpu, "phases": phases(report, st), "status": st}


def phases(report: dict[str, Any], st: dict[str, Any]) -> dict[str, float]:
    maps = [a for a in report["attempts"] if a["kind"] == "map" and a["end_s"] is not None]
    reduces = [a for a in report["attempts"] if a["kind"] == "reduce" and a["end_s"] is not None]
    start = st["submitted_s"]
    map_end = max(a["end_s"] for a in maps) if maps else start
    end = st["finished_s"] or max((a["end_s"] for a in reduces), default=map_end)
    return {"map_s": map_end - start, "reduce_s": end - map_end,
            "local_maps": sum(1 for a in maps if a["local"]) / max(1, len(maps))}


async def store(c: LocalCluster, mr: MrClient, paths: list[Path], prefix: str) -> float:
    t0 = time.monotonic()
    for p in paths:
        for attempt in range(20):
            try:
                await mr.put_file(f"{prefix}/{p.name}", p.read_bytes())
                break
            except Exception:
                if attempt == 19:
                    raise
                await c.client.sleep(0.5)
    return time.monotonic() - t0


# -- the run ------------------------------------------------------------------------------------


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.1f}  ({min(xs):.1f}-{max(xs):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--sort-mb", type=int, default=50)
    ap.add_argument("--reduces", type=int, default=2)
    args = ap.parse_args()

    t = time.monotonic()
    paths = corpus_files(args.mb, args.files)
    sort_paths = corpus_files(args.sort_mb, 4) if args.sort_mb else []
    mb = total_mb(paths)
    print(f"corpus: {mb:.1f} MB in {len(paths)} files (seeded Zipf, {CACHE}), ready in {time.monotonic() - t:.1f} s")
    load_before = os.getloadavg()

    pool = PoolPeer()
    dask = None if args.no_dask else DaskPeer()
    options = {"chunk_size": CHUNK, "goal": 2, "dfs_timeout_s": 60.0, "mr_rpc_timeout_s": 10.0,
               "worker_timeout_s": 10.0, "scrub_bytes_per_s": SCRUB}
    spec = TestSpec(system="mapreduce", workload="jobs", nemesis=(), node_count=2, options=options,
                    run_dir=str(Path(tempfile.mkdtemp(prefix="bench-mr-"))))
    results: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    extra: dict[str, Any] = {}

    def record(name: str, seconds: float, cpu_s: float) -> None:
        results.setdefault(name, []).append(mb / seconds)
        cpu.setdefault(name, []).append(cpu_s / mb)
        print(f"  {name}: {seconds:.1f} s, {mb / seconds:.1f} MB/s, {cpu_s / mb:.3f} CPU s/MB, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)

    def timed(fn: Callable[[], Any], cpu_of: Callable[[], float]) -> tuple[float, float]:
        c0, t0 = cpu_of(), time.monotonic()
        fn()
        return time.monotonic() - t0, cpu_of() - c0

    async def body(c: LocalCluster) -> None:
        mr = MrClient(c.client, c.nodes, {**options, "coordinator": "n1"}, timeout_s=60.0)
        s = await store(c, mr, paths, "/bench")
        print(f"stored in the DFS in {s:.1f} s ({mb / s:.1f} MB/s, 2 replicas; scrubber at "
              f"{SCRUB >> 20} MiB/s per chunkserver)")
        pic = Picluster(c, mr)
        first = await pic.job("wordcount", args.reduces)
        out = await mr.read_output(first["status"]["output"])
        got = Counter({w: int(n) for part in out.values() for w, n in
                       (line.rsplit(" ", 1) for line in part.decode().splitlines())})
        want = run_counter(paths)
        assert got == Counter({w.decode(): n for w, n in want.items()}), "picluster's word count is wrong"
        print("picluster's output equals collections.Counter's (checked once, untimed)")
        contenders: list[tuple[str, Callable[[], Any]]] = [
            ("tr | sort | uniq -c", lambda: timed(lambda: run_shell(paths), children_cpu_s)),
            ("Counter (1 process)", lambda: timed(lambda: run_counter(paths), self_cpu_s)),
            ("multiprocessing.Pool(2)", lambda: timed(lambda: pool.run(paths), pool.cpu_s)),
        ]
        if dask is not None:
            contenders += [
                ("dask.bag frequencies()", lambda: timed(lambda: dask.plain(paths), dask.cpu_s)),
                ("dask.bag Counter per partition", lambda: timed(lambda: dask.counter(paths), dask.cpu_s)),
            ]
        names = ["picluster wordcount (DFS, 2 workers)"] + [n for n, _ in contenders]
        for r in range(args.runs):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                if name.startswith("picluster"):
                    got_job = await pic.job("wordcount", args.reduces)
                    record(name, got_job["s"], got_job["cpu_s"])
                    extra.setdefault("phases", []).append(got_job["phases"])
                else:
                    seconds, cpu_s = dict(contenders)[name]()
                    record(name, seconds, cpu_s)
            print(f"round {r + 1}/{args.runs} done", flush=True)
        killed = await pic.job("wordcount", args.reduces, kill_at=0.5)
        extra["killed_s"] = killed["s"]
        if sort_paths:
            s = await store(c, mr, sort_paths, "/sortin")
            smb = total_mb(sort_paths)
            sorts = []
            for _ in range(max(1, args.runs // 2)):
                pic_sort = Picluster(c, mr)
                pic_sort.n = 1000 + len(sorts)
                await mr.submit(f"sort-{pic_sort.n}", "sort", ["/sortin/*"], f"/out/sort-{pic_sort.n}", 4)
                t0 = time.monotonic()
                while (await mr.status(f"sort-{pic_sort.n}"))["state"] == "running":
                    await c.client.sleep(0.1)
                sorts.append(smb / (time.monotonic() - t0))
                t0 = time.monotonic()
                subprocess.run(["bash", "-c", "cat " + " ".join(map(str, sort_paths))
                                + " | LC_ALL=C sort > /dev/null"], check=True)
                extra.setdefault("gnu_sort", []).append(smb / (time.monotonic() - t0))
            extra["sort"] = sorts
            extra["sort_mb"] = smb

    try:
        LocalBackend().run(spec, body)
    finally:
        pool.close()
        if dask is not None:
            dask.close()
    load_after = os.getloadavg()

    print()
    print(f"word count, {mb:.0f} MB, {args.runs} runs, medians (min-max); load average before "
          f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
          f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} (2 cores)")
    print(f"{'contender':40} {'MB/s':>22} {'CPU s/MB':>10}")
    for name, xs in results.items():
        c = [x for x in cpu[name] if x == x]
        print(f"{name:40} {fmt(xs):>22} {statistics.median(c) if c else float('nan'):10.3f}")
    ph = extra["phases"]
    print(f"picluster phases (median): map {statistics.median(p['map_s'] for p in ph):.1f} s, "
          f"reduce {statistics.median(p['reduce_s'] for p in ph):.1f} s, "
          f"maps on a local replica {statistics.median(p['local_maps'] for p in ph):.0%}")
    med = mb / statistics.median(results["picluster wordcount (DFS, 2 workers)"])
    print(f"one worker killed at half the map phase (restarted 1 s later): {extra['killed_s']:.1f} s, "
          f"{extra['killed_s'] - med:+.1f} s over the median run")
    if "sort" in extra:
        print(f"distributed sort, {extra['sort_mb']:.0f} MB, R=4: {fmt(extra['sort'])} MB/s; "
              f"LC_ALL=C sort: {fmt(extra['gnu_sort'])} MB/s")


if __name__ == "__main__":
    main()
