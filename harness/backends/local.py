"""The `local` backend: one OS process per node on this machine, faults without root.

Rules this module keeps (besides those of harness/backends/base.py):

- `run(spec, body)` picks free loopback ports, writes run_dir/cluster.json
  (system, seed, bugs, options = the system's DEFAULT_OPTIONS overlaid with
  spec.options, nodes), starts every node (see local_procs), waits until
  each answers `ping` with `ready: true` and its own pid (bounded by
  `startup_timeout_s`; otherwise `NodeStartError` naming the node with the
  tail of its log), then runs `asyncio.run(body(cluster))`.
- Teardown on every exit path (return, exception, KeyboardInterrupt,
  SIGTERM turned into a cancelled body and a `SystemExit(143)`): paused
  nodes are continued, every child is stopped (SIGTERM, then SIGKILL after
  a short grace) and reaped, and local-state.json is emptied. Healing the
  filters is moot once every node is gone; it is done first when the
  processes are still answering. A crashed harness is cleaned up later with
  `python -m harness.backends.local cleanup RUN_DIR`.
- `corrupt_file` flips bytes of the real file under data/<node>/ in place
  (and fsyncs it), whether or not the node runs.
- Faults: kill = SIGKILL + reap (unsynced data stays in the page cache: the
  real disk is kinder than `sim`'s), restart = the same command over the
  same data dir then wait for ping, pause/resume = SIGSTOP/SIGCONT,
  partition/set_links/heal = `set-filter` control frames to every live,
  running node. The backend keeps the desired filter state (with a rising
  version) and re-applies it to a node after resume and restart, so a node
  that was paused or dead during a change catches up.
- A node that exits with node_main's EXIT_PORT_TAKEN at start (a port picked
  by `free_ports` was grabbed by another program meanwhile) makes the whole
  cluster start again on fresh ports, up to START_ATTEMPTS times.
- A node that died on its own is treated as killed (`is_up` false) and is
  skipped by filter updates; restart brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from base.cluster import CORE_CAPABILITIES, Capability, Grudge, LinkFault
from harness.backends.local_procs import NodeProcesses, cleanup_stale
from systems.runtime.api import RpcError, Unreachable, check_disk_name
from systems.runtime.node_main import EXIT_PORT_TAKEN
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_log import JsonLog

T = TypeVar("T")

HOST = "127.0.0.1"


START_ATTEMPTS = 3
"""How often the cluster is started on fresh ports when a chosen port was taken meanwhile."""


class NodeStartError(RuntimeError):
    """A node did not come up; the message names it and quotes the tail of its log."""

    def __init__(self, message: str, *, port_taken: bool = False) -> None:
        super().__init__(message)
        self.port_taken = port_taken


def free_ports(n: int, host: str = HOST) -> list[int]:
    """n distinct ports that were free on `host` a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def flip_bytes(path: Path, offsets: list[int]) -> list[int]:
    """XOR 0xFF the byte at each offset inside the file; fsync; the offsets flipped."""
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        flipped = [o for o in offsets if 0 <= o < size]
        for o in flipped:
            f.seek(o)
            b = f.read(1)
            f.seek(o)
            f.write(bytes([b[0] ^ 0xFF]))
        f.flush()
        os.fsync(f.fileno())
    return flipped


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class LocalCluster:
    """`Cluster` over local processes. Built and torn down by LocalBackend.run."""

    capabilities = CORE_CAPABILITIES | {Capability.CORRUPT}

    def __init__(
        self,
        nodes: list[str],
        addrs: dict[str, tuple[str, int]],
        procs: NodeProcesses,
        client: ClientEndpoint,
        run_dir: Path,
        *,
        startup_timeout_s: float = 20.0,
        control_timeout_s: float = 2.0,
    ) -> None:
        self.nodes = list(nodes)
        self.addrs = addrs
        self.procs = procs
        self.client = client
        self.run_dir = run_dir
        self.startup_timeout_s = startup_timeout_s
        self.control_timeout_s = control_timeout_s
        self._paused: set[str] = set()
        self._grudge: Grudge = {}
        self._links: dict[tuple[str, str], LinkFault] = {}
        self._version = 0
        self._lock = asyncio.Lock()

    # -- queries ------------------------------------------------------------------------------
    def is_up(self, node: str) -> bool:
        self._check(node)
        return self.procs.alive(node)

    def is_paused(self, node: str) -> bool:
        return node in self._paused and self.is_up(node)

    def pid(self, node: str) -> int | None:
        return self.procs.pid(node) if self.is_up(node) else None

    def _check(self, node: str) -> None:
        if node not in self.addrs:
            raise ValueError(f"unknown node {node!r} (nodes: {', '.join(self.nodes)})")

    # -- processes ----------------------------------------------------------------------------
    async def start_all(self) -> None:
        for node in self.nodes:
            self.procs.start(node)
        waits = [asyncio.ensure_future(self._wait_ready(n)) for n in self.nodes]
        try:
            await asyncio.gather(*waits)
        except BaseException:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            raise

    async def _wait_ready(self, node: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout_s
        pid = self.procs.pid(node)
        last = "no answer"
        while loop.time() < deadline:
            if not self.procs.alive(node):
                rc = self.procs.procs[node].returncode if node in self.procs.procs else None
                raise NodeStartError(
                    f"node {node} exited (status {rc}) before answering ping; "
                    f"tail of {self.procs.log_path(node)}:\n{log_tail(self.procs.log_path(node))}",
                    port_taken=rc == EXIT_PORT_TAKEN,
                )
            try:
                reply = await self.client.control(node, "ping", None, timeout=0.5)
            except RpcError as e:
                last = repr(e)
                await asyncio.sleep(0.02)
                continue
            if isinstance(reply, dict) and reply.get("pid") == pid and reply.get("ready"):
                return
            last = f"ping answered {reply!r} (expected ready from pid {pid})"
            await asyncio.sleep(0.02)
        raise NodeStartError(
            f"node {node} did not answer ping within {self.startup_timeout_s}s ({last}); "
            f"tail of {self.procs.log_path(node)}:\n{log_tail(self.procs.log_path(node))}"
        )

    async def kill(self, node: str) -> None:
        self._check(node)
        self._paused.discard(node)
        if node in self.procs.procs:
            await asyncio.to_thread(self.procs.kill, node)

    async def restart(self, node: str) -> None:
        self._check(node)
        if self.procs.alive(node):
            return
        if node in self.procs.procs:  # died on its own: reap it first
            await asyncio.to_thread(self.procs.kill, node)
        self._paused.discard(node)
        self.procs.start(node)
        await self._wait_ready(node)
        await self._apply(node)

    async def pause(self, node: str) -> None:
        self._check(node)
        if node in self._paused or not self.procs.alive(node):
            return
        self.procs.signal(node, signal.SIGSTOP)
        self._paused.add(node)

    async def resume(self, node: str) -> None:
        self._check(node)
        if node not in self._paused:
            return
        self._paused.discard(node)
        self.procs.signal(node, signal.SIGCONT)
        await self._apply(node)

    # -- disk faults --------------------------------------------------------------------------
    async def corrupt_file(self, node: str, name: str, offsets: list[int]) -> list[int]:
        """Flip bytes of the real file under the node's data directory, in place, and fsync it."""
        self._check(node)
        path = self.run_dir / "data" / node / check_disk_name(name)
        return await asyncio.to_thread(flip_bytes, path, offsets)

    # -- network faults -----------------------------------------------------------------------
    async def partition(self, grudge: Grudge) -> None:
        for dst, srcs in grudge.items():
            self._check(dst)
            for s in srcs:
                self._check(s)
        self._grudge = {dst: sorted(set(srcs)) for dst, srcs in grudge.items() if srcs}
        await self._apply_all()

    async def set_links(self, faults: dict[tuple[str, str], LinkFault]) -> None:
        for src, dst in faults:
            self._check(src)
            self._check(dst)
        self._links = dict(faults)
        await self._apply_all()

    async def heal(self) -> None:
        if not self._grudge and not self._links:
            return
        self._grudge = {}
        self._links = {}
        await self._apply_all()

    def filter_for(self, node: str) -> dict[str, Any]:
        """The set-filter body that node should hold now."""
        return {
            "version": self._version,
            "grudge": list(self._grudge.get(node, [])),
            "links": {src: f.to_wire() for (src, dst), f in sorted(self._links.items()) if dst == node},
        }

    async def _apply_all(self) -> None:
        self._version += 1
        await asyncio.gather(*(self._apply(n) for n in self.nodes))

    async def _apply(self, node: str) -> None:
        """Send node its filter if it is alive and running; retried, then an error naming the node."""
        last: Exception | None = None
        for _ in range(3):
            if not self.procs.alive(node) or node in self._paused:
                return
            try:
                reply = await self.client.control(node, "set-filter", self.filter_for(node),
                                                  timeout=self.control_timeout_s)
            except Unreachable as e:
                last = e
                if not self.procs.alive(node):
                    return  # it died meanwhile: it gets the filter on restart
                await asyncio.sleep(0.05)
                continue
            except RpcError as e:
                last = e
                continue
            if isinstance(reply, dict) and "version" in reply:
                return
            last = RuntimeError(f"unexpected set-filter reply {reply!r}")
        raise RuntimeError(f"node {node} did not accept its packet filter: {last!r}")

    async def heal_quietly(self) -> None:
        """Best-effort heal used by teardown: never raises, bounded time."""
        if not self._grudge and not self._links:
            return
        self._grudge, self._links = {}, {}
        with contextlib.suppress(Exception):
            self.control_timeout_s = 0.5
            await asyncio.wait_for(self._apply_all(), 2.0)


class LocalBackend:
    name = "local"

    def __init__(self, *, startup_timeout_s: float = 20.0, python: str = sys.executable) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.python = python
        self.last_pids: list[int] = []
        """Every node pid started by the last `run` (all reaped once it returns)."""

    def run(self, spec: Any, body: Callable[[LocalCluster], Awaitable[T]]) -> T:
        given = getattr(spec, "run_dir", "")
        run_dir = (Path(given) if given else Path(tempfile.mkdtemp(prefix="picluster-"))).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "nodes").mkdir(exist_ok=True)
        nodes = list(spec.nodes)
        addrs = dict(zip(nodes, ((HOST, p) for p in free_ports(len(nodes))), strict=True))
        cluster_file = run_dir / "cluster.json"
        cluster_file.write_text(json.dumps(_cluster_doc(spec, addrs), indent=2) + "\n")
        procs = NodeProcesses(run_dir, spec.system, cluster_file, python=self.python)
        terminated = False
        try:
            return asyncio.run(self._main(spec, body, run_dir, nodes, addrs, procs))
        except asyncio.CancelledError:
            terminated = True
            raise
        finally:
            procs.kill_all()
            self.last_pids = list(procs.started_pids)
            if terminated:
                raise SystemExit(128 + signal.SIGTERM)

    async def _main(
        self,
        spec: Any,
        body: Callable[[LocalCluster], Awaitable[T]],
        run_dir: Path,
        nodes: list[str],
        addrs: dict[str, tuple[str, int]],
        procs: NodeProcesses,
    ) -> T:
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()
        assert main_task is not None
        sigterm_installed = False
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
            sigterm_installed = True
        client_log = JsonLog.to_file("client", str(run_dir / "client.log"), min_level="info")
        client = ClientEndpoint(addrs, seed=getattr(spec, "seed", 0), log=client_log)
        cluster = LocalCluster(nodes, addrs, procs, client, run_dir, startup_timeout_s=self.startup_timeout_s)
        try:
            await self._start(cluster, spec)
            return await body(cluster)
        finally:
            for node in sorted(cluster._paused):
                procs.signal(node, signal.SIGCONT)
            cluster._paused.clear()
            await cluster.heal_quietly()
            await client.close()
            client_log.close()
            if sigterm_installed:
                loop.remove_signal_handler(signal.SIGTERM)


    async def _start(self, cluster: LocalCluster, spec: Any) -> None:
        """Start every node; if one finds its port taken (another program grabbed it after
        free_ports), start the whole cluster again on fresh ports."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                await cluster.start_all()
                return
            except NodeStartError as e:
                if not e.port_taken or attempt == START_ATTEMPTS:
                    raise
            await asyncio.to_thread(cluster.procs.kill_all, 0.5)
            fresh = dict(zip(cluster.nodes, ((HOST, p) for p in free_ports(len(cluster.nodes))), strict=True))
            cluster.procs.cluster_file.write_text(json.dumps(_cluster_doc(spec, fresh), indent=2) + "\n")
            cluster.addrs.update(fresh)
            await cluster.client.readdress(fresh)


def _cluster_doc(spec: Any, addrs: dict[str, tuple[str, int]]) -> dict[str, Any]:
    try:
        defaults = getattr(importlib.import_module(f"systems.{spec.system}"), "DEFAULT_OPTIONS", {})
    except ImportError:
        defaults = {}
    return {
        "system": spec.system,
        "seed": getattr(spec, "seed", 0),
        "bugs": list(getattr(spec, "bugs", ())),
        "options": {**defaults, **dict(getattr(spec, "options", {}) or {})},
        "nodes": {n: {"host": h, "port": p} for n, (h, p) in addrs.items()},
    }


def _cli(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "cleanup":
        print("usage: python -m harness.backends.local cleanup RUN_DIR", file=sys.stderr)
        return 2
    killed = cleanup_stale(argv[1])
    print(f"killed {len(killed)} leftover node process(es): {' '.join(map(str, killed)) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_cli(sys.argv[1:]))

