"""One lifecycle for every process backend (local, netns, ssh): set up, start, run the body, tear down.

Jepsen's shape: a backend says *where* nodes run (`Processes`), *what* a node
is (`NodeProgram`), how the network is broken (`Network`) and, if it has
any, which hardware there is (`Hardware`); this module does the rest, once.

    run_process_cluster(spec, body, run_dir=..., deploy=...)

Rules this module keeps:

- `deploy(teardown)` is the backend's set-up (ports, namespaces, SSH
  connections, ...). It pushes the release of everything it creates onto
  `teardown` *as soon as it exists*, and returns a `Deployment`.
- Then, for a program whose nodes authenticate (node_program.KeyedProgram),
  fresh keys are made for the run: the harness's and the clients' key files
  go into the run directory's KEY_DIR, each node's to its host
  (`Processes.write_keys`). Two endpoints reach the nodes: the cluster's
  `control` holds the harness key (the one identity whose control frames
  nodes obey: filters, faults, probes), and `client`, which the workload,
  the nemeses' ordinary requests and the test clock use, holds the
  clients' key, so nothing a workload does can send a control frame. An
  open cluster (no keys) uses one endpoint for both. Teardown removes the
  keys. Then the program's config files are written to every host, the
  nodes are started and waited for (a node whose port was taken meanwhile makes the
  whole cluster start again on fresh addresses, up to START_ATTEMPTS
  times, when the backend can pick new ones), and `body(cluster)` runs in a
  fresh asyncio loop.
- Teardown on every exit path (return, exception, KeyboardInterrupt,
  SIGTERM): in the loop, hardware restored, paused nodes continued, the
  network healed (bounded), the client closed; then every node continued,
  stopped (SIGTERM, then SIGKILL) and reaped; then the backend's own
  releases, last pushed first. Each step runs even when an earlier one
  failed (a failure is one line on stderr), with SIGINT and SIGTERM ignored.
- SIGTERM during a run ends it with `SystemExit(143)` after teardown;
  KeyboardInterrupt and exceptions propagate unchanged after teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from base.spec import TestSpec
from harness.backends import exit_signals
from harness.backends.hardware import Hardware
from harness.backends.networks import Network
from harness.backends.node_program import KEY_DIR, KeyedProgram, NodeProgram
from harness.backends.process_cluster import HardwareProcessCluster, NodeStartError, ProcessCluster
from harness.backends.processes import Processes
from harness.hosts_state import HostsState
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_auth import CLIENT_KEY_FILE, HARNESS_KEY_FILE, ClusterKeys, write_key_files
from systems.runtime.real_log import JsonLog
from systems.runtime.real_transport import Address

T = TypeVar("T")

START_ATTEMPTS = 3
"""How often the cluster is started on fresh addresses when a chosen port was taken meanwhile."""


class Teardown:
    """A with-resources stack: every pushed release runs on exit, last pushed first, each on its own."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], Any]]] = []

    def push(self, what: str, release: Callable[[], Any]) -> None:
        self._steps.append((what, release))

    def __enter__(self) -> Teardown:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with exit_signals.signals_ignored():
            while self._steps:
                what, release = self._steps.pop()
                try:
                    release()
                except Exception as e:  # one failed release must not stop the others
                    print(f"teardown: could not {what}: {e!r}", file=sys.stderr)


@dataclass
class Deployment:
    """What a backend set up for one run, for the shared lifecycle to drive."""

    procs: Processes
    program: NodeProgram
    addrs: dict[str, Address]
    """How the harness's client reaches each node."""
    network: Callable[[ClientEndpoint], Network]
    """Made once the harness's client exists (the runtime filter is set through it)."""
    hardware: Hardware | None = None
    readdress: Callable[[], dict[str, Address]] | None = None
    """Fresh addresses after a node found its port taken; None when the backend cannot pick others."""
    node_addrs: dict[str, Address] | None = None
    """The addresses as the nodes know each other, in their config (default: `addrs`)."""


def run_directory(spec: TestSpec) -> Path:
    """The spec's run directory (a fresh temporary one when it has none), with nodes/ in it."""
    run_dir = (Path(spec.run_dir) if spec.run_dir else Path(tempfile.mkdtemp(prefix="picluster-"))).resolve()
    (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
    return run_dir


def record_run(teardown: Teardown, *, backend: str, run_id: str, run_dir: Path, marker: str) -> HostsState:
    """A saved HostsState for this run, forgotten at teardown once nothing it records is left."""
    state = HostsState(run_id=run_id, backend=backend, run_dir=str(run_dir), marker=marker)
    state.save()
    teardown.push("forget the run's record", lambda: state.finish() if state.is_empty() else None)
    return state


def run_process_cluster(
    spec: TestSpec,
    body: Callable[[Any], Awaitable[T]],
    *,
    run_dir: Path,
    deploy: Callable[[Teardown], Deployment],
    startup_timeout_s: float = 20.0,
    probe_interval_s: float = 0.02,
) -> T:
    """Set up, start, run `body(cluster)`, and tear everything down on every exit path (see module rules)."""
    with exit_signals.sigterm_exits(), Teardown() as teardown:
        d = deploy(teardown)
        teardown.push("stop the nodes", d.procs.stop_all)
        keys = _make_keys(spec, run_dir, d, teardown)
        d.procs.write_config(d.program.config_files(d.node_addrs or d.addrs))
        main = _main(spec, body, run_dir, d, startup_timeout_s, probe_interval_s, keys)
        try:
            return asyncio.run(main)
        except asyncio.CancelledError:  # SIGTERM cancelled the body; teardown has run in the loop
            raise SystemExit(exit_signals.EXIT_SIGTERM) from None


def _make_keys(spec: TestSpec, run_dir: Path, d: Deployment, teardown: Teardown) -> ClusterKeys | None:
    """Fresh keys for the run, where each party needs them; removed at teardown (see the module rules)."""
    keys = d.program.keys(list(spec.nodes)) if isinstance(d.program, KeyedProgram) else None
    if keys is None:
        return None
    local = run_dir / KEY_DIR
    teardown.push("remove the run's keys", lambda: (d.procs.remove_keys(), shutil.rmtree(local, ignore_errors=True)))
    write_key_files(local, {HARNESS_KEY_FILE: keys.harness.to_json(), CLIENT_KEY_FILE: keys.client.to_json()})
    d.procs.write_keys(keys)
    return keys


async def _main(
    spec: TestSpec,
    body: Callable[[Any], Awaitable[T]],
    run_dir: Path,
    d: Deployment,
    startup_timeout_s: float,
    probe_interval_s: float,
    keys: ClusterKeys | None,
) -> T:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    installed = False
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
        installed = True
    client_log = JsonLog.to_file("client", str(run_dir / "client.log"), min_level="info")
    client = ClientEndpoint(dict(d.addrs), seed=spec.seed, log=client_log,
                            credentials=keys.client if keys is not None else None)
    control = client if keys is None else ClientEndpoint(dict(d.addrs), node_id="harness", seed=spec.seed,
                                                         log=client_log, credentials=keys.harness)
    cluster = _make_cluster(spec, run_dir, d, client, control, startup_timeout_s, probe_interval_s)
    try:
        await _start(cluster, d)
        return await body(cluster)
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)  # leaves SIG_DFL: put ours back at once
            signal.signal(signal.SIGTERM, exit_signals.raise_exit)
        with exit_signals.signals_ignored():
            await cluster.quiesce()
            await client.close()
            if control is not client:
                await control.close()
            client_log.close()


def _make_cluster(spec: TestSpec, run_dir: Path, d: Deployment, client: ClientEndpoint, control: ClientEndpoint,
                  startup_timeout_s: float, probe_interval_s: float) -> ProcessCluster:
    network = d.network(control)
    if d.hardware is not None:
        return HardwareProcessCluster(list(spec.nodes), dict(d.addrs), d.procs, d.program, network, client, run_dir,
                                      hardware=d.hardware, startup_timeout_s=startup_timeout_s,
                                      probe_interval_s=probe_interval_s, control=control)
    return ProcessCluster(list(spec.nodes), dict(d.addrs), d.procs, d.program, network, client, run_dir,
                          startup_timeout_s=startup_timeout_s, probe_interval_s=probe_interval_s, control=control)


async def _start(cluster: ProcessCluster, d: Deployment) -> None:
    """Start every node; if one finds its port taken (another program grabbed it after we chose it),
    start the whole cluster again on fresh addresses."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            await cluster.start_all()
            return
        except NodeStartError as e:
            if not e.port_taken or attempt == START_ATTEMPTS or d.readdress is None:
                raise
        await asyncio.to_thread(d.procs.stop_all, 0.5)
        fresh = d.readdress()
        d.procs.write_config(d.program.config_files(fresh))
        cluster.addrs.update(fresh)
        await cluster.client.readdress(fresh)
        if cluster.control is not cluster.client:
            await cluster.control.readdress(fresh)
