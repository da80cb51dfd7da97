"""Raft KV vs etcd 3.4, side by side on this machine: throughput, latency, leader failover.

Both clusters have 3 members on loopback with fsync on, and both are driven by
the same asyncio load generator (bench/loadgen.py): 100-byte values, puts and
linearizable gets at 1, 16 and 64 concurrent clients, `--seconds` each. Then
leader failover: SIGKILL the leader, time until a put succeeds again (median
of `--failovers`). etcd is Debian's `etcd-server` (3.4), started and stopped
here; the run is skipped with a message when it is not installed.

    python bench/bench_raft_vs_etcd.py [--seconds 10] [--failovers 5] [--only raft|etcd]

Figures, never a pass/fail: the machine is shared and noisy (read them +-30%).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etcd_cluster import HOST, EtcdClient, EtcdCluster, HttpConnection, b64
from loadgen import LoadResult, drive, median

from base.spec import TestSpec
from harness.backends.local import LocalBackend
from systems.raft.client import RaftClient

VALUE = "v" * 100
CONCURRENCY = (1, 16, 64)
Row = dict[str, Any]


async def load_rows(put: Any, get: Any, seconds: float) -> list[Row]:
    rows = []
    for kind, op in (("put", put), ("get", get)):
        for c in CONCURRENCY:
            r: LoadResult = await drive(op, c, seconds)
            rows.append({"op": kind, "clients": c, "per_s": r.per_s, "p50": r.p50, "p99": r.p99, "errors": r.errors})
    return rows


# -- Raft ------------------------------------------------------------------------------------------


def bench_raft(seconds: float, failovers: int) -> tuple[list[Row], list[float]]:
    run_dir = Path(tempfile.mkdtemp(prefix="picluster-bench-raft-"))
    spec = TestSpec(system="raft", workload="register", nemesis=(), backend="local", node_count=3,
                    concurrency=64, run_dir=str(run_dir))
    out: dict[str, Any] = {}

    async def body(cluster: Any) -> None:
        rt = cluster.client
        clients = [RaftClient(rt, cluster.nodes, client_id=f"bench{w}") for w in range(max(CONCURRENCY))]
        warm = clients[0]
        await wait_for_put(warm, 30.0)

        async def put(w: int, i: int) -> None:
            outcome = await clients[w].request("put", f"k{w}-{i % 100}", VALUE, timeout_s=5.0)
            if outcome.type != "ok":
                raise RuntimeError(outcome.error)

        async def get(w: int, i: int) -> None:
            outcome = await clients[w].request("get", f"k{w}-{i % 100}", timeout_s=5.0)
            if outcome.type != "ok":
                raise RuntimeError(outcome.error)

        out["rows"] = await load_rows(put, get, seconds)
        times = []
        for _ in range(failovers):
            leader = await find_raft_leader(warm, cluster.nodes)
            started = time.monotonic()
            await cluster.kill(leader)
            await wait_for_put(warm, 30.0)
            times.append(time.monotonic() - started)
            await cluster.restart(leader)
            await asyncio.sleep(2.0)
        out["failover"] = times

    try:
        LocalBackend().run(spec, body)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return out["rows"], out["failover"]


async def wait_for_put(client: RaftClient, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        outcome = await client.request("put", "failover", VALUE, timeout_s=1.0)
        if outcome.type == "ok":
            return
    raise RuntimeError(f"no put succeeded within {timeout_s}s")


async def find_raft_leader(client: RaftClient, nodes: list[str]) -> str:
    for _ in range(100):
        for node in nodes:
            try:
                status = await client.status(node, timeout_s=0.5)
            except Exception:
                continue
            if status.get("role") == "leader":
                return node
        await asyncio.sleep(0.05)
    raise RuntimeError("no raft leader")


# -- etcd ------------------------------------------------------------------------------------------


def bench_etcd(seconds: float, failovers: int) -> tuple[list[Row], list[float]]:
    with EtcdCluster() as cluster:

        async def main() -> tuple[list[Row], list[float]]:
            ports = cluster.client_ports()
            clients = [EtcdClient(ports[w % len(ports)]) for w in range(max(CONCURRENCY))]

            async def put(w: int, i: int) -> None:
                await clients[w].put(f"k{w}-{i % 100}", VALUE)

            async def get(w: int, i: int) -> None:
                await clients[w].get(f"k{w}-{i % 100}")

            rows = await load_rows(put, get, seconds)
            for c in clients:
                c.close()
            times = []
            for _ in range(failovers):
                leader = await cluster.leader()
                assert leader is not None, "etcd has no leader"
                started = time.monotonic()
                cluster.stop(leader, signal.SIGKILL)
                await etcd_wait_for_put(cluster, 30.0)
                times.append(time.monotonic() - started)
                cluster.start(leader)
                await asyncio.sleep(2.0)
            return rows, times

        return asyncio.run(main())


async def etcd_wait_for_put(cluster: EtcdCluster, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for port in cluster.client_ports():
            conn = HttpConnection(HOST, port)
            try:
                await conn.post("/v3/kv/put", {"key": b64("failover"), "value": b64(VALUE)}, timeout_s=1.0)
                return
            except Exception:
                continue
            finally:
                conn.close()
    raise RuntimeError(f"etcd: no put succeeded within {timeout_s}s")


# -- report ----------------------------------------------------------------------------------------


def print_table(raft: list[Row] | None, etcd: list[Row] | None) -> None:
    print(f"{'op':4} {'clients':>7} | {'raft ops/s':>10} {'p50 ms':>7} {'p99 ms':>7} | "
          f"{'etcd ops/s':>10} {'p50 ms':>7} {'p99 ms':>7} | {'raft/etcd':>9}")
    rows = raft or etcd or []
    for i, row in enumerate(rows):
        r = raft[i] if raft else None
        e = etcd[i] if etcd else None
        ratio = f"{r['per_s'] / e['per_s']:.2f}" if r and e and e["per_s"] else "-"
        cells = []
        for x in (r, e):
            cells.append(f"{x['per_s']:10.0f} {x['p50']:7.2f} {x['p99']:7.2f}" if x else f"{'-':>10} {'-':>7} {'-':>7}")
        print(f"{row['op']:4} {row['clients']:>7} | {cells[0]} | {cells[1]} | {ratio:>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--failovers", type=int, default=5)
    parser.add_argument("--only", choices=("raft", "etcd"))
    args = parser.parse_args()
    raft_rows = etcd_rows = None
    raft_fo: list[float] = []
    etcd_fo: list[float] = []
    if args.only != "etcd":
        raft_rows, raft_fo = bench_raft(args.seconds, args.failovers)
    if args.only != "raft":
        if shutil.which("etcd") is None:
            print("etcd is not installed (Debian: apt-get install etcd-server); showing Raft alone")
        else:
            etcd_rows, etcd_fo = bench_etcd(args.seconds, args.failovers)
    print(f"\n3 members on loopback, fsync on, 100-byte values, {args.seconds:g}s per cell\n")
    print_table(raft_rows, etcd_rows)
    print()
    for name, times in (("raft", raft_fo), ("etcd", etcd_fo)):
        if times:
            print(f"{name} leader failover (kill -9 -> next put ok): median {median(times):.2f}s  "
                  f"all {', '.join(f'{t:.2f}' for t in times)}")


if __name__ == "__main__":
    main()
