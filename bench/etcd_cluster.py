"""A 3-member etcd 3.4 cluster on loopback, started and stopped by the benchmark itself.

Rules this module keeps:

- Members listen on free 127.0.0.1 ports only, keep their data in a temporary
  directory removed afterwards, and are stopped (SIGTERM, then SIGKILL) and
  reaped on every exit path, by pid.
- Durability as etcd ships it: the WAL is fsync'd before a write is
  acknowledged (no `--unsafe-no-fsync`). Heartbeat 100 ms and election
  timeout 1 s (etcd's defaults, the same as the Raft KV's 10 ticks of 0.1 s);
  pre-vote on, as on the Raft KV (check-quorum is always on in etcd).
- Clients speak etcd's native gRPC API through `etcd3aio` (a maintained
  asyncio client on PyPI). `client(port)` opens one channel with a
  connection of its own (gRPC otherwise shares connections between channels
  to one target), so N clients are N TCP connections, as on the Raft side.
  Gets are linearizable (etcd's default for range requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etcd3aio import Etcd3Client

HOST = "127.0.0.1"
ETCD_FLAGS = ("--heartbeat-interval", "100", "--election-timeout", "1000", "--pre-vote=true",
              "--logger", "zap", "--log-level", "warn")


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


def etcd_installed() -> bool:
    return shutil.which("etcd") is not None


async def client(port: int) -> Etcd3Client:
    """A connected client with its own channel and TCP connection to one member; no retries."""
    c = Etcd3Client([f"{HOST}:{port}"], rpc_max_attempts=1)
    # A local subchannel pool: this channel's connection is not shared with other channels.
    c._manager.grpc_options.append(("grpc.use_local_subchannel_pool", 1))
    await c.connect()
    return c


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


@dataclass
class EtcdCluster:
    size: int = 3
    members: list[Member] = field(default_factory=list)
    workdir: Path | None = None
    _admin: dict[str, Etcd3Client] = field(default_factory=dict)

    async def __aenter__(self) -> EtcdCluster:
        self.workdir = Path(tempfile.mkdtemp(prefix="picluster-etcd-"))
        ports = free_ports(2 * self.size)
        self.members = [Member(f"e{i + 1}", ports[2 * i], ports[2 * i + 1]) for i in range(self.size)]
        try:
            for m in self.members:
                self.start(m)
            await self.wait_healthy()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in self._admin.values():
            with contextlib.suppress(Exception):
                await c.close()
        self._admin.clear()
        for m in self.members:
            await asyncio.to_thread(self.stop, m)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}=http://{HOST}:{m.peer_port}" for m in self.members)

    def start(self, m: Member) -> None:
        assert self.workdir is not None and m.proc is None
        data = self.workdir / m.name
        state = "existing" if data.exists() else "new"
        with open(self.workdir / f"{m.name}.log", "ab") as log:
            m.proc = subprocess.Popen(
                ["etcd", "--name", m.name, "--data-dir", str(data),
                 "--listen-client-urls", f"http://{HOST}:{m.client_port}",
                 "--advertise-client-urls", f"http://{HOST}:{m.client_port}",
                 "--listen-peer-urls", f"http://{HOST}:{m.peer_port}",
                 "--initial-advertise-peer-urls", f"http://{HOST}:{m.peer_port}",
                 "--initial-cluster", self.initial_cluster(), "--initial-cluster-state", state,
                 "--initial-cluster-token", "picluster-bench", *ETCD_FLAGS],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )

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

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def pids(self) -> list[int]:
        return [m.pid for m in self.members if m.pid is not None]

    async def admin(self, m: Member) -> Etcd3Client:
        c = self._admin.get(m.name)
        if c is None:
            c = self._admin[m.name] = await client(m.client_port)
        return c

    async def status(self, m: Member, timeout_s: float = 1.0) -> Any:
        c = await self.admin(m)
        assert c.maintenance is not None
        return await c.maintenance.status(timeout=timeout_s)

    async def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until every running member answers a linearizable get (so a leader exists)."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                for m in self.members:
                    if m.proc is not None:
                        c = await self.admin(m)
                        assert c.kv is not None
                        await c.kv.get("health", timeout=1.0)
                return
            except Exception as e:
                last = repr(e)
                await asyncio.sleep(0.1)
        raise RuntimeError(f"etcd did not become healthy in {timeout_s}s ({last}); logs in {self.workdir}")

    async def leader(self) -> Member | None:
        """The member that reports itself leader."""
        for m in self.members:
            if m.proc is None:
                continue
            try:
                st = await self.status(m)
            except Exception:
                continue
            if st.leader == st.header.member_id:
                return m
        return None
