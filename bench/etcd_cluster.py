"""A 3-member etcd 3.4 cluster on loopback, started and stopped by the benchmark itself.

Rules: members listen on free 127.0.0.1 ports only, keep their data in a
temporary directory that is removed afterwards, and are stopped (SIGTERM,
then SIGKILL) and reaped on every exit path. The client speaks etcd's v3
JSON gateway over HTTP/1.1 with one kept-alive connection per worker; reads
are linearizable (etcd's default for range requests).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive JSON client (one request at a time)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._post(path, body), timeout_s)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        try:
            self.writer.write(head.encode() + data)
            status_line = await self.reader.readline()
            headers: dict[str, str] = {}
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            if "content-length" in headers:
                payload = await self.reader.readexactly(int(headers["content-length"]))
            else:
                payload = b""
                while True:
                    size = int((await self.reader.readline()).strip(), 16)
                    if size == 0:
                        await self.reader.readline()
                        break
                    payload += await self.reader.readexactly(size)
                    await self.reader.readline()
        except Exception:
            self.close()
            raise
        status = int(status_line.split()[1])
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
        return json.loads(payload) if payload else {}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    proc: subprocess.Popen[bytes] | None = None
    member_id: str = ""


@dataclass
class EtcdCluster:
    size: int = 3
    members: list[Member] = field(default_factory=list)
    workdir: Path | None = None

    def __enter__(self) -> EtcdCluster:
        self.workdir = Path(tempfile.mkdtemp(prefix="picluster-etcd-"))
        ports = free_ports(2 * self.size)
        self.members = [Member(f"e{i}", ports[2 * i], ports[2 * i + 1]) for i in range(self.size)]
        try:
            for m in self.members:
                self.start(m)
            self.wait_healthy()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.members:
            self.stop(m)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}=http://{HOST}:{m.peer_port}" for m in self.members)

    def start(self, m: Member) -> None:
        assert self.workdir is not None
        data = self.workdir / m.name
        log = open(self.workdir / f"{m.name}.log", "ab")  # noqa: SIM115 - handed to the child
        state = "existing" if data.exists() else "new"
        m.proc = subprocess.Popen(
            ["etcd", "--name", m.name, "--data-dir", str(data),
             "--listen-client-urls", f"http://{HOST}:{m.client_port}",
             "--advertise-client-urls", f"http://{HOST}:{m.client_port}",
             "--listen-peer-urls", f"http://{HOST}:{m.peer_port}",
             "--initial-advertise-peer-urls", f"http://{HOST}:{m.peer_port}",
             "--initial-cluster", self.initial_cluster(), "--initial-cluster-state", state,
             "--initial-cluster-token", "picluster-bench"],
            stdout=log, stderr=log,
        )
        log.close()

    def stop(self, m: Member, sig: int = signal.SIGTERM) -> None:
        if m.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            m.proc.send_signal(sig)
        try:
            m.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
        m.proc = None

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        async def healthy() -> bool:
            for m in self.members:
                conn = HttpConnection(HOST, m.client_port)
                try:
                    await conn.post("/v3/kv/range", {"key": b64("health")}, timeout_s=1.0)
                except Exception:
                    return False
                finally:
                    conn.close()
            return True

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if asyncio.run(healthy()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"etcd did not become healthy in {timeout_s}s; logs in {self.workdir}")

    async def leader(self) -> Member | None:
        """The member that reports itself leader."""
        for m in self.members:
            if m.proc is None:
                continue
            conn = HttpConnection(HOST, m.client_port)
            try:
                status = await conn.post("/v3/maintenance/status", {}, timeout_s=1.0)
            except Exception:
                continue
            finally:
                conn.close()
            if status.get("leader") == status.get("header", {}).get("member_id"):
                return m
        return None

    def client_ports(self) -> list[int]:
        return [m.client_port for m in self.members if m.proc is not None]


class EtcdClient:
    """put/get through one member's JSON gateway, with a kept-alive connection."""

    def __init__(self, port: int) -> None:
        self.conn = HttpConnection(HOST, port)

    async def put(self, key: str, value: str) -> None:
        await self.conn.post("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    async def get(self, key: str) -> str | None:
        reply = await self.conn.post("/v3/kv/range", {"key": b64(key)})
        kvs = reply.get("kvs") or []
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def close(self) -> None:
        self.conn.close()
