"""RPC round trips per second over loopback: the real runtime against a bare asyncio + msgpack echo.

    .venv/bin/python bench/bench_rpc.py [--seconds 2] [--concurrency 1,64]

Two processes each time: this one (the caller) and one server process.

- runtime:  ClientEndpoint.call -> an echo node started with `python -m systems.echo`
            (full frames, request ids, per-call timers, the filter check, a task per request).
- baseline: a bare asyncio Protocol echo server speaking the same 4-byte length +
            msgpack framing, called by a bare pipelined client (no timers, no tasks).

Concurrency c = c callers each doing back-to-back calls over one shared connection.
A figure, never a pass/fail: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from systems.runtime.api import RpcError  # noqa: E402
from systems.runtime.real import ClientEndpoint  # noqa: E402

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

async def measure(call: Any, concurrency: int, seconds: float) -> float:
    """Calls per second with `concurrency` callers looping until the time is up (after a warm-up)."""
    for _ in range(200):
        await call(PAYLOAD)
    stop = time.monotonic() + seconds
    count = 0

    async def worker() -> None:
        nonlocal count
        while time.monotonic() < stop:
            await call(PAYLOAD)
            count += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.monotonic() - t0)


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


async def bench_runtime(levels: list[int], seconds: float, env: dict[str, str]) -> dict[int, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Path(tmp) / "cluster.json"
        cluster.write_text(json.dumps({"system": "echo", "nodes": {"n1": {"host": "127.0.0.1", "port": port}}}))
        proc = start([sys.executable, "-m", "systems.echo", "--cluster", str(cluster), "--id", "n1",
                      "--data-dir", str(Path(tmp) / "data"), "--log", str(Path(tmp) / "n1.log")], env)
        client = ClientEndpoint({"n1": ("127.0.0.1", port)})
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if (await client.control("n1", "ping", timeout=0.5))["ready"]:
                        break
                except RpcError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                await asyncio.sleep(0.02)

            async def call(body: Any) -> Any:
                return await client.call("n1", "echo", body, timeout=10)

            return {c: await measure(call, c, seconds) for c in levels}
        finally:
            await client.close()
            proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()


async def bench_baseline(levels: list[int], seconds: float, env: dict[str, str]) -> dict[int, float]:
    port = free_port()
    proc = start([sys.executable, __file__, "--baseline-server", str(port)], env)
    try:
        assert proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
        assert line.strip() == b"ready", line
        _, client = await asyncio.get_running_loop().create_connection(BareClient, "127.0.0.1", port)
        out = {c: await measure(client.call, c, seconds) for c in levels}
        client.t.close()
        return out
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="measuring time per cell")
    ap.add_argument("--concurrency", default="1,64", help="comma-separated caller counts")
    ap.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_server:
        asyncio.run(baseline_server(args.baseline_server))
        return
    levels = [int(c) for c in args.concurrency.split(",")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runtime = asyncio.run(bench_runtime(levels, args.seconds, env))
    baseline = asyncio.run(bench_baseline(levels, args.seconds, env))
    print(f"RPC round trips per second over loopback, {args.seconds:g} s per cell, "
          f"payload {len(msgpack.packb(PAYLOAD))} B, python {sys.version.split()[0]}")
    print(f"{'concurrency':>11} | {'real runtime':>13} | {'asyncio+msgpack':>15} | {'ratio':>5}")
    print(f"{'-' * 11}-+-{'-' * 13}-+-{'-' * 15}-+-{'-' * 5}")
    for c in levels:
        r, b = runtime[c], baseline[c]
        print(f"{c:>11} | {r:>13,.0f} | {b:>15,.0f} | {r / b:>5.2f}")


if __name__ == "__main__":
    main()
