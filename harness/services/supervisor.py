"""The supervisor of one running cluster: `python -m harness.services.supervisor --cluster-file DIR/cluster.json`.

`harness cluster up` starts it detached (its own session, output to
DIR/supervisor.log) and waits until the record says up or failed.

Rules this module keeps:

- The cluster is the one `harness run` would build: the backend's own
  `run(spec, body)` (harness/backends/lifecycle.py with the local, netns or
  ssh strategies; an external system's program, etcd, as a run gets it)
  deploys, starts and waits for every node, records what it creates in
  DIR/hosts-state.json and the well-known state directory, and tears all
  of it down when the body returns, on every exit path. The body is this
  module: it runs until `down` (or SIGTERM).
- The supervisor's command line carries the run's marker (DIR/cluster.json)
  and its pid is recorded first among the run's pids, so `harness cleanup`
  (and `harness cluster down` when the supervisor is gone) stops the
  supervisor before the nodes it would restart, and a killed supervisor's
  nodes are found as any killed run's are.
- A node that dies when nobody asked is restarted over its data directory
  (after 0.5 s, doubling with every crash in the last minute, at most 30 s);
  a node a fault took down, or one being restarted by hand, is left alone.
  On the ssh backend the hosts' own supervisors do this (ssh_service.py).
- Commands come over the control socket (control.py), one at a time:
  restart a node, make a fault by hand (hand_faults.py), heal, go down.
- The record (clusterdir.py) is rewritten whenever a node's process state
  changes, with the last few events (crashes, restarts, faults).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.spec import TestSpec
from harness import registry
from harness.backends.base import SetupError
from harness.backends.node_program import RuntimeProgram
from harness.backends.process_cluster import NodeStartError, ProcessCluster
from harness.hosts_state import HostsState, start_time
from harness.services import control
from harness.services.clusterdir import EVENTS_KEPT, ClusterDir
from harness.services.hand_faults import FaultLog, FaultRefused, HandFaults, in_force
from nemesis.package import Target

TICK_S = 0.25
FIRST_BACKOFF_S, MAX_BACKOFF_S, CRASH_WINDOW_S = 0.5, 30.0, 60.0
GRACE_S = 5.0
HOSTS_LOOK_S = 2.0


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def spec_of(doc: dict[str, Any], directory: Path) -> TestSpec:
    """The TestSpec `harness run` would build for this request (options with the system's defaults)."""
    system = str(doc["system"])
    options = {**registry.default_options(system), **dict(doc.get("options") or {})}
    return TestSpec(system=system, workload=registry.default_workload(system), nemesis=(),
                    backend=str(doc["backend"]), node_count=int(doc["node_count"]), seed=int(doc.get("seed", 0)),
                    bugs=tuple(doc.get("bugs") or ()), options=options, cluster_file=doc.get("cluster_file"),
                    run_dir=str(directory))


def make_backend(name: str, startup_timeout_s: float, cluster: str) -> Any:
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend(startup_timeout_s=startup_timeout_s)
    if name == "netns":
        from harness.backends.netns import NetnsBackend

        return NetnsBackend(startup_timeout_s=startup_timeout_s)
    if name == "ssh":
        from harness.services.ssh_service import service_backend

        return service_backend(startup_timeout_s=max(startup_timeout_s, 60.0), cluster=cluster)
    raise SetupError(f"`harness cluster` runs on the local, netns and ssh backends, not {name}")


@dataclass
class NodeWatch:
    """What the supervisor knows of one node's process beyond the cluster's own state."""

    crashes: list[float] = field(default_factory=list)
    restarts: int = 0
    next_try: float | None = None
    last_exit: int | None = None


class Supervisor:
    def __init__(self, cdir: ClusterDir, doc: dict[str, Any], spec: TestSpec, backend: Any) -> None:
        self.cdir = cdir
        self.doc = doc
        self.spec = spec
        self.backend = backend
        self.cluster: ProcessCluster | None = None
        self.faults: HandFaults | None = None
        self.watch = {n: NodeWatch() for n in spec.nodes}
        self.busy: set[str] = set()
        self.intended: set[str] = set()
        """Nodes taken down on purpose and not brought back since (see `track_intent`)."""
        self.events: list[dict[str, Any]] = list(doc.get("events") or [])[-EVENTS_KEPT:]
        self.down = asyncio.Event()
        self.lock = asyncio.Lock()
        self._shown: str = ""

    # -- the record -------------------------------------------------------------------------------
    def event(self, what: str, node: str | None = None) -> None:
        self.events.append({"wall": time.strftime("%Y-%m-%dT%H:%M:%S"), "node": node, "what": what})
        self.events = self.events[-EVENTS_KEPT:]
        say(f"{node + ': ' if node else ''}{what}")

    def process_state(self, node: str) -> str:
        c, f = self.cluster, self.faults
        assert c is not None and f is not None
        if node in getattr(c, "powered_off", set()):
            return "powered off"
        if node in f.ctx.killed:
            return "killed"
        if node in self.busy:
            return "restarting"
        if not c.procs.alive(node):
            return "crashed"
        return "paused" if c.is_paused(node) else "running"

    def nodes_doc(self) -> dict[str, Any]:
        c = self.cluster
        assert c is not None
        out = {}
        for n in c.nodes:
            w = self.watch[n]
            host, port = c.addrs[n]
            out[n] = {"address": f"{host}:{port}", "pid": c.procs.pid(n) if c.procs.alive(n) else None,
                      "process": self.process_state(n), "restarts": w.restarts, "crashes": len(w.crashes),
                      "last_exit": w.last_exit}
        return out

    def publish(self, **changes: Any) -> None:
        """Rewrite the record when anything in it changed."""
        doc = dict(self.doc)
        doc.update(changes)
        if self.cluster is not None and self.faults is not None:
            doc["nodes_state"] = self.nodes_doc()
        doc["events"] = list(self.events)
        text = json.dumps(doc, sort_keys=True, default=str)
        if text == self._shown:
            return
        self._shown = text
        self.doc = doc
        self.cdir.write(doc)

    # -- the body the lifecycle runs --------------------------------------------------------------
    async def body(self, cluster: ProcessCluster) -> None:
        self.cluster = cluster
        self.track_intent(cluster)
        state: HostsState | None = getattr(self.backend, "last_state", None)
        if state is not None and state.marker:
            put_first(state, os.getpid())
        if not self.cdir.cluster_file.exists() or self.spec.backend == "ssh":
            files = RuntimeProgram.for_spec(self.spec).config_files(dict(cluster.addrs))
            self.cdir.cluster_file.write_text(files["cluster.json"])
        module = registry.workload_module(self.spec.system)
        find = getattr(module, "find_leader", None)

        async def leader() -> str | None:
            try:
                return await find(cluster.client, cluster.nodes) if find else None
            except Exception:
                return None

        if self.cdir.faults_file.exists():  # an earlier life's faults, all cured by its teardown
            os.replace(self.cdir.faults_file, self.cdir.faults_file.with_suffix(".previous.jsonl"))
        log = FaultLog(self.cdir.faults_file, time.monotonic())
        self.faults = HandFaults(cluster, self.target, log, leader if find else None, self.spec.seed)
        sock = self.cdir.socket_path()
        server = await control.serve(sock, self.handle)
        try:
            remote_dirs = getattr(cluster.procs, "remote_dirs", None)
            self.publish(state="up", error=None, addrs={n: list(a) for n, a in cluster.addrs.items()},
                         capabilities=sorted(cluster.capabilities), remote_dirs=remote_dirs() if remote_dirs else None,
                         supervisor={**self.doc["supervisor"], "socket": str(sock)})
            self.event(f"up: {len(cluster.nodes)} {self.spec.system} nodes on {self.spec.backend}")
            await self.supervise()
            self.publish(state="stopping")
            async with self.lock:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.faults.heal(), 30.0)
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            if state is not None:
                state.drop_pid(os.getpid())  # the nodes go next (the lifecycle's teardown), then the record

    def track_intent(self, cluster: ProcessCluster) -> None:
        """Note every node the cluster is asked to take down (a fault, a restart by hand), until it is
        brought back, so the supervisor tells such a node from one that crashed (a kill runs in a worker
        thread while the supervisor keeps looking)."""
        for name, down in (("kill", True), ("power_off", True), ("restart", False), ("power_on", False)):
            method = getattr(cluster, name, None)
            if method is not None:
                setattr(cluster, name, self._noting(method, down))

    def _noting(self, method: Callable[[str], Any], down: bool) -> Callable[[str], Any]:
        async def call(node: str) -> None:
            if down:
                self.intended.add(node)
            else:
                self.intended.discard(node)
            await method(node)

        return call

    def target(self) -> Target:
        from harness.applicability import reports_leader

        assert self.cluster is not None
        caps = frozenset(self.cluster.capabilities)
        external = registry.is_external(self.spec.system)
        if external:
            caps = registry.external_capabilities(self.spec.backend, caps)
        return Target(system=self.spec.system, backend=self.spec.backend, node_count=self.spec.node_count,
                      capabilities=caps, reports_leader=reports_leader(self.spec.system), options=self.spec.options,
                      external=external)

    async def supervise(self) -> None:
        """Restart crashed nodes (with backoff) and keep the record current, until `down`."""
        assert self.cluster is not None
        tasks: set[asyncio.Task[None]] = set()
        elsewhere = getattr(self.cluster.procs, "supervises_itself", False)
        next_look = 0.0
        try:
            while not self.down.is_set():
                if not elsewhere:
                    for node in self.spec.nodes:
                        task = self.check(node)
                        if task is not None:
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)
                elif time.monotonic() >= next_look and not self.lock.locked():
                    await self.look_at_hosts()
                    next_look = time.monotonic() + HOSTS_LOOK_S
                self.publish()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.down.wait(), TICK_S)
        finally:
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def look_at_hosts(self) -> None:
        """The hosts' supervisors restart crashed nodes themselves: learn of it, and give each new process the
        network state (its runtime filter) it missed."""
        c = self.cluster
        assert c is not None
        before = {n: c.procs.pid(n) for n in c.nodes}
        assert self.faults is not None
        leave = frozenset(self.intended | self.busy | self.faults.down)
        seen = await asyncio.to_thread(c.procs.observe, leave)  # type: ignore[attr-defined]
        for node, (pid, crashes) in seen.items():
            w = self.watch[node]
            if crashes > w.restarts:
                self.event(f"crashed {crashes - w.restarts} time(s); its host's supervisor restarted it", node)
                w.restarts = crashes
            if pid is not None and pid != before.get(node) and node not in self.intended and node not in self.busy:
                with contextlib.suppress(Exception):
                    await c._refresh(node)  # the desired network state, into the new process's filter

    def check(self, node: str) -> asyncio.Task[None] | None:
        c, f = self.cluster, self.faults
        assert c is not None and f is not None
        if node in self.busy or node in self.intended or node in f.down or c.procs.alive(node):
            return None
        w = self.watch[node]
        now = time.monotonic()
        if w.next_try is None:
            w.last_exit = c.procs.exit_status(node)
            w.crashes = [t for t in w.crashes if now - t < CRASH_WINDOW_S] + [now]
            delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (len(w.crashes) - 1))
            w.next_try = now + delay
            self.event(f"crashed (exit status {w.last_exit}); restarting in {delay:g} s", node)
            return None
        if now < w.next_try:
            return None
        self.busy.add(node)
        return asyncio.ensure_future(self.bring_back(node))

    async def bring_back(self, node: str) -> None:
        assert self.cluster is not None
        w = self.watch[node]
        try:
            await self.cluster.restart(node)
            w.restarts += 1
            w.next_try = None
            self.event(f"restarted after a crash (pid {self.cluster.pid(node)})", node)
        except NodeStartError as e:
            now = time.monotonic()
            w.crashes = [t for t in w.crashes if now - t < CRASH_WINDOW_S] + [now]
            delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (len(w.crashes) - 1))
            w.next_try = now + delay
            self.event(f"did not come back ({str(e).splitlines()[0]}); next try in {delay:g} s", node)
        finally:
            self.busy.discard(node)

    # -- commands ---------------------------------------------------------------------------------
    async def handle(self, req: control.Request) -> dict[str, Any]:
        match req:
            case control.Ping():
                return {"ok": True, "said": ["up"]}
            case control.Down():
                self.event("going down (asked by `harness cluster down`)")
                self.down.set()
                return {"ok": True, "said": ["stopping every node"]}
        if self.down.is_set():
            return {"ok": False, "error": "the cluster is going down"}
        async with self.lock:
            try:
                said = await self.command(req)
            except FaultRefused as e:
                return {"ok": False, "error": str(e)}
        for line in said:
            self.event(line)
        self.publish()
        return {"ok": True, "said": said, "in_force": [w.description for w in in_force(self.cdir.faults_file)]}

    async def command(self, req: control.Request) -> list[str]:
        f = self.faults
        assert f is not None
        match req:
            case control.Fault(name=name, node=node, shape=shape):
                return await f.inflict(name, node, shape)
            case control.Heal():
                return await f.heal()
            case control.Restart(node=node):
                return await self.restart(node)
        raise FaultRefused(f"unknown request {req!r}")

    async def restart(self, node: str) -> list[str]:
        c, f = self.cluster, self.faults
        assert c is not None and f is not None
        if node not in c.nodes:
            raise FaultRefused(f"unknown node {node!r} (nodes: {' '.join(c.nodes)})")
        if node in f.down or c.is_paused(node):
            return await f.restart_down(node) or [f"{node} restarted"]
        self.busy.add(node)
        try:
            old = c.pid(node)
            await stop_gently(c, node)
            await c.restart(node)
            self.watch[node].next_try = None
            return [f"restarted {node} (pid {old} -> {c.pid(node)})"]
        except NodeStartError as e:
            raise FaultRefused(f"{node} did not come back: {str(e).splitlines()[0]}") from None
        finally:
            self.busy.discard(node)


async def stop_gently(cluster: ProcessCluster, node: str, grace_s: float = GRACE_S) -> None:
    """SIGTERM, wait up to grace_s for the node to exit, then SIGKILL (and reap)."""
    procs = cluster.procs
    stop: Callable[..., None] | None = getattr(procs, "stop", None)
    if stop is not None:
        await asyncio.to_thread(stop, node, grace_s)
        return
    if procs.alive(node):
        await asyncio.to_thread(procs.signal, node, signal.SIGCONT)
        await asyncio.to_thread(procs.signal, node, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while procs.alive(node) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    await cluster.kill(node)


def put_first(state: HostsState, pid: int) -> None:
    """Record `pid` first among the run's pids, so cleanup stops it before the nodes it would restart."""
    state.add_pid(pid)
    with state._lock:
        state.pids.remove(pid)
        state.pids.insert(0, pid)
        state.save()


def run(cluster_file: Path) -> int:
    cdir = ClusterDir(cluster_file.parent)
    doc = cdir.read()
    me = os.getpid()
    doc["supervisor"] = {"pid": me, "started": start_time(me) or 0, "socket": None}
    doc.update(state="starting", error=None)
    cdir.write(doc)
    say(f"supervisor pid {me}: starting {doc['node_count']} {doc['system']} nodes on {doc['backend']}")
    sup: Supervisor | None = None
    try:
        spec = spec_of(doc, cdir.path)
        backend = make_backend(str(doc["backend"]), float(doc.get("startup_timeout_s", 60.0)), cdir.name)
        sup = Supervisor(cdir, doc, spec, backend)
        program = registry.node_program(spec)  # an external system's program (etcd); None: runtime-seam nodes
        if program is None:
            backend.run(spec, sup.body)
        else:
            backend.run(spec, sup.body, program=program)
    except SystemExit as e:
        return finish(cdir, sup, "down", f"terminated (exit {e.code})")
    except (SetupError, NodeStartError, registry.RegistryError, ValueError, OSError) as e:
        say(f"failed: {e}")
        up = sup is not None and sup.cluster is not None
        return finish(cdir, sup, "down" if up else "failed", one_line(e), code=1)
    except BaseException as e:
        import traceback

        traceback.print_exc()
        return finish(cdir, sup, "failed", one_line(e), code=3)
    return finish(cdir, sup, "down", None)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def finish(cdir: ClusterDir, sup: Supervisor | None, state: str, error: str | None, code: int = 0) -> int:
    doc = sup.doc if sup is not None else cdir.read()
    if sup is not None:
        sup.event(f"{state}{': ' + error if error else ''}")
        doc["events"] = sup.events
    for n in doc.get("nodes_state", {}).values():
        n.update(pid=None, process="stopped")
    doc.update(state=state, error=error)
    doc["supervisor"] = {**doc.get("supervisor", {}), "socket": None}
    cdir.write(doc)
    say(f"{state}{': ' + error if error else ''}")
    return code


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m harness.services.supervisor")
    p.add_argument("--cluster-file", required=True, type=Path,
                   help="the cluster's DIR/cluster.json (the run's marker, on this process's command line)")
    args = p.parse_args(argv)
    sys.exit(run(args.cluster_file))


if __name__ == "__main__":
    main()
