"""RPC round trips over loopback: the real runtime with and without authentication, and a bare echo.

    .venv/bin/python bench/bench_rpc.py [--seconds 2] [--concurrency 1,64] [--repeat 5]

Three servers, all up for the whole run, each its own process, called from this one:

- open:          ClientEndpoint.call -> an echo node (`python -m systems.echo`) whose cluster file
                 has no keys (full frames, request ids, per-call timers, the filter check, a task per
                 request).
- authenticated: the same, with the cluster's keys: the handshake once per connection, then a
                 16-byte keyed-BLAKE2b tag sealed on every frame and checked on every frame, both ways.
- bare:          an asyncio Protocol echo server speaking the same 4-byte length + msgpack framing,
                 called by a bare pipelined client (no timers, no tasks): the floor.

Concurrency c = c callers each doing back-to-back calls over one shared connection. Cells
(contender x concurrency) are interleaved and the contenders' order flips every repetition, so a
drift of the shared machine's load hits all alike. Each cell records round trips per second and
the CPU time the server process and this (client) process spent per round trip (/proc, os.times);
figures are medians over the repetitions with their spread, printed with the load average.
The CPU figure is the one to read on a loaded machine. Never a pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from procstat import cpu_seconds, loadavg, own_cpu_seconds  # noqa: E402

from systems.runtime.api import RpcError  # noqa: E402
from systems.runtime.real import ClientEndpoint  # noqa: E402
from systems.runtime.real_auth import ClusterKeys, write_key_files  # noqa: E402

HEADER = struct.Struct(">I")
PAYLOAD = {"key": "k17", "value": "x" * 64}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- baseline server and client ----------------------------------------------------------------

class EchoServer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.t = transport
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            (n,) = HEADER.unpack_from(self.buf)
            if len(self.buf) < 4 + n:
                break
            rid, body = msgpack.unpackb(bytes(self.buf[4 : 4 + n]))
            del self.buf[: 4 + n]
            p = msgpack.packb([rid, body])
            out.append(HEADER.pack(len(p)) + p)
        if out:
            self.t.write(b"".join(out))


async def baseline_server(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServer, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class BareClient(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            (n,) = HEADER.unpack_from(self.buf)
            if len(self.buf) < 4 + n:
                break
            rid, body = msgpack.unpackb(bytes(self.buf[4 : 4 + n]))
            del self.buf[: 4 + n]
            self.pending.pop(rid).set_result(body)

    async def call(self, body: Any) -> Any:
        rid = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        p = msgpack.packb([rid, body])
        self.t.write(HEADER.pack(len(p)) + p)
        return await fut


# -- measurement -------------------------------------------------------------------------------

Call = Any


@dataclass
class Cell:
    """One contender at one concurrency, one repetition."""

    rate: float
    server_us: float
    client_us: float


@dataclass
class Contender:
    name: str
    call: Call
    server_pid: int
    cells: dict[int, list[Cell]] = field(default_factory=dict)


async def measure(c: Contender, concurrency: int, seconds: float) -> Cell:
    """Round trips with `concurrency` callers looping until the time is up, and the CPU they cost."""
    for _ in range(50):
        await c.call(PAYLOAD)
    stop = time.monotonic() + seconds
    count = 0

    async def worker() -> None:
        nonlocal count
        while time.monotonic() < stop:
            await c.call(PAYLOAD)
            count += 1

    cpu_s, cpu_c = cpu_seconds(c.server_pid), own_cpu_seconds()
    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.monotonic() - t0
    n = max(count, 1)
    return Cell(count / took, (cpu_seconds(c.server_pid) - cpu_s) / n * 1e6, (own_cpu_seconds() - cpu_c) / n * 1e6)


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


async def echo_node(tmp: Path, env: dict[str, str], *, keyed: bool) -> tuple[subprocess.Popen[bytes], ClientEndpoint]:
    """An echo node process (with the cluster's keys or without), and a client endpoint to it, ready."""
    port = free_port()
    doc: dict[str, Any] = {"system": "echo", "nodes": {"n1": {"host": "127.0.0.1", "port": port}}}
    creds = None
    if keyed:
        keys = ClusterKeys.generate(["n1"])
        write_key_files(tmp / "keys", keys.files())
        doc["auth"] = {"keys": "keys"}
        creds = keys.client
    cluster = tmp / "cluster.json"
    cluster.write_text(json.dumps(doc))
    proc = start([sys.executable, "-m", "systems.echo", "--cluster", str(cluster), "--id", "n1",
                  "--data-dir", str(tmp / "data"), "--log", str(tmp / "n1.log")], env)
    client = ClientEndpoint({"n1": ("127.0.0.1", port)}, node_id="bench", credentials=creds)
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.call("n1", "echo", "ping", timeout=0.5)
            return proc, client
        except RpcError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
        await asyncio.sleep(0.05)


async def bare_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], BareClient]:
    port = free_port()
    proc = start([sys.executable, __file__, "--baseline-server", str(port)], env)
    assert proc.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
    assert line.strip() == b"ready", line
    _, client = await asyncio.get_running_loop().create_connection(BareClient, "127.0.0.1", port)
    return proc, client


async def run(levels: list[int], seconds: float, repeat: int, env: dict[str, str]) -> list[Contender]:
    procs: list[subprocess.Popen[bytes]] = []
    endpoints: list[ClientEndpoint] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            contenders = []
            for name, keyed in (("open", False), ("authenticated", True)):
                d = Path(tmp) / name
                d.mkdir()
                proc, ep = await echo_node(d, env, keyed=keyed)
                procs.append(proc)
                endpoints.append(ep)

                async def call(body: Any, ep: ClientEndpoint = ep) -> Any:
                    return await ep.call("n1", "echo", body, timeout=10)

                contenders.append(Contender(name, call, proc.pid))
            proc, bare = await bare_server(env)
            procs.append(proc)
            contenders.append(Contender("bare", bare.call, proc.pid))
            for rep in range(repeat):
                order = contenders if rep % 2 == 0 else contenders[::-1]
                for c in levels:
                    for who in order:
                        who.cells.setdefault(c, []).append(await measure(who, c, seconds))
            bare.t.close()
            return contenders
        finally:
            for ep in endpoints:
                await ep.close()
            for proc in procs:
                proc.kill()
                proc.wait()
                if proc.stdout:
                    proc.stdout.close()


def median_spread(xs: list[float], fmt: str) -> str:
    return f"{format(statistics.median(xs), fmt)} ({format(min(xs), fmt)}..{format(max(xs), fmt)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="measuring time per cell")
    ap.add_argument("--concurrency", default="1,64", help="comma-separated caller counts")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of every cell (interleaved)")
    ap.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_server:
        asyncio.run(baseline_server(args.baseline_server))
        return
    levels = [int(c) for c in args.concurrency.split(",")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    load0 = loadavg()
    contenders = asyncio.run(run(levels, args.seconds, args.repeat, env))
    load1 = loadavg()
    print(f"RPC round trips over loopback: {args.repeat} x {args.seconds:g} s per cell, interleaved; payload "
          f"{len(msgpack.packb(PAYLOAD))} B; python {sys.version.split()[0]}; load average {load0[0]:.1f} -> "
          f"{load1[0]:.1f} on {os.cpu_count()} CPUs")
    print("medians (min..max); CPU is microseconds per round trip, server process + this client process")
    head = f"{'concurrency':>11} | {'contender':<13} | {'round trips/s':>22} | {'server CPU us':>20} | "
    print(head + f"{'client CPU us':>20} | {'total CPU us':>12}")
    print("-" * (len(head) + 35))
    by = {c.name: c for c in contenders}
    for lvl in levels:
        for c in contenders:
            cells = c.cells[lvl]
            total = statistics.median([x.server_us + x.client_us for x in cells])
            print(f"{lvl:>11} | {c.name:<13} | {median_spread([x.rate for x in cells], ',.0f'):>22} | "
                  f"{median_spread([x.server_us for x in cells], '.1f'):>20} | "
                  f"{median_spread([x.client_us for x in cells], '.1f'):>20} | {total:>12.1f}")
        op, au = by["open"].cells[lvl], by["authenticated"].cells[lvl]
        extra = [(a.server_us + a.client_us) - (o.server_us + o.client_us) for o, a in zip(op, au, strict=True)]
        base = statistics.median([o.server_us + o.client_us for o in op])
        print(f"{lvl:>11} | authentication costs {statistics.median(extra):.1f} us of CPU per round trip "
              f"({statistics.median(extra) / base * 100:+.0f} %; per repetition {min(extra):.1f}..{max(extra):.1f})")


if __name__ == "__main__":
    main()
