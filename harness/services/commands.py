"""`harness cluster ...`: bring a system up as a service, watch it, break it by hand, take it down.

    harness cluster up SYSTEM [--backend local|netns|ssh] [--nodes N] [--cluster FILE] [--name NAME]
    harness cluster status [--watch] [--json]
    harness cluster fault NAME [NODE] [--shape SHAPE]      (any nemesis package; `power NODE` is one plug)
    harness cluster heal
    harness cluster restart NODE
    harness cluster logs NODE [-f] [-n LINES]
    harness cluster down [--wipe]
    harness cluster list

Rules this module keeps:

- A command finds its cluster by --dir, else --name under the clusters
  root, else the only one running (clusterdir.locate); ambiguity or absence
  is one line and exit 64.
- `up` checks everything `harness run` checks before anything starts (the
  system, bugs, options, the backend's preflight: root for netns, the
  cluster file for ssh), then starts the supervisor detached and waits
  until the cluster is up or has failed; it exits 0 once every node is
  ready, 1 when the start failed (the reason on one line), 64 for bad usage.
- `down` asks the supervisor to take everything down and waits for it to
  exit; if it is gone or does not go, the run's record (hosts-state.json)
  is cleaned as `harness cleanup` would, so nothing it created is left.
  `--wipe` then removes the cluster directory (and, on ssh, the run's
  directories on the hosts).
- Exit codes: 0 done, 1 the cluster refused (a fault that cannot apply, a
  node that did not come back) or is not running (status), 64 bad usage.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from harness import hosts_state, registry
from harness.services import control
from harness.services.clusterdir import ClusterDir, ClusterError, check_name, locate, supervisor_alive
from systems.runtime.real_clusters import clusters_root

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 64
BACKENDS = ("local", "netns", "ssh")
F = TypeVar("F", bound=Callable[..., Any])

console = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(message)}")
    sys.exit(code)


def which_cluster(f: F) -> F:
    f = click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                     help="The cluster's directory (default: clusters/NAME).")(f)
    return click.option("--name", default=None, help="The cluster's name (default: the only one running).")(f)


def _locate(name: str | None, directory: Path | None, *, live_only: bool = True) -> ClusterDir:
    try:
        return locate(name, directory, live_only=live_only)
    except ClusterError as e:
        fail(str(e))


@click.group("cluster")
def cluster_cmd() -> None:
    """Run a system as a service: up, status, fault, heal, restart, logs, down."""


# -- up --------------------------------------------------------------------------------------------
@cluster_cmd.command("up")
@click.argument("system")
@click.option("--backend", default="local", show_default=True, type=click.Choice(BACKENDS))
@click.option("--nodes", "node_count", default=3, show_default=True, type=click.IntRange(1, 64))
@click.option("--cluster", "cluster_file", default=None, help="Cluster file (TOML) for the ssh backend.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--bug", "bugs", multiple=True, help="Plant a named bug in the system (repeatable).")
@click.option("--option", "options", multiple=True, help="Node option KEY=VALUE (see `harness systems`).")
@click.option("--wipe", is_flag=True, help="Start over: remove the data a previous `up` of this name left.")
@click.option("--timeout", "timeout_s", default=None, type=click.FloatRange(1.0),
              help="How long to wait for every node to be ready (default 120 s; ssh 600 s).")
@which_cluster
def up_cmd(system: str, backend: str, node_count: int, cluster_file: str | None, seed: int, bugs: tuple[str, ...],
           options: tuple[str, ...], wipe: bool, timeout_s: float | None, name: str | None,
           directory: Path | None) -> None:
    """Start SYSTEM's nodes as long-running services and leave them running."""
    from base.spec import TestSpec
    from harness.cli import _parse_options

    try:
        registry.system_module(system)
        registry.check_bugs(system, bugs)
        opts = _parse_options(options)
        registry.check_options(system, backend, opts)
        spec = TestSpec(system=system, workload=registry.default_workload(system), nemesis=(), backend=backend,
                        node_count=node_count, seed=seed, bugs=bugs, options=opts, cluster_file=cluster_file)
        registry.preflight(spec)
        cdir = ClusterDir(directory.absolute() if directory else clusters_root() / check_name(name or system))
    except (registry.RegistryError, ValueError) as e:
        fail(str(e))
    old = _previous(cdir, system, wipe)
    if cluster_file:
        cluster_file = str(Path(cluster_file).absolute())
    limit = timeout_s or (600.0 if backend == "ssh" else 120.0)
    cdir.write({
        "version": 1, "name": cdir.name, "system": system, "backend": backend, "node_count": node_count,
        "nodes": spec.nodes, "seed": seed, "bugs": list(bugs), "options": opts, "cluster_file": cluster_file,
        "startup_timeout_s": min(limit, 60.0), "state": "starting", "error": None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "supervisor": {}, "events": old.get("events", []),
    })
    proc = _spawn_supervisor(cdir)
    doc = _wait_until_settled(cdir, proc, limit)
    if doc.get("state") != "up":
        why = doc.get("error") or f"the supervisor exited (status {proc.poll()})"
        console.print(f"[red]the cluster did not come up:[/red] {escape(str(why))}")
        console.print(f"its log: {cdir.supervisor_log}")
        sys.exit(EXIT_REFUSED)
    _print_up(cdir, doc)


def _previous(cdir: ClusterDir, system: str, wipe: bool) -> dict[str, Any]:
    """What an earlier `up` of this directory left: refuse a running cluster, reuse or wipe a stopped one."""
    if not cdir.exists():
        if cdir.path.exists() and any(cdir.path.iterdir()):
            fail(f"{cdir.path} exists and is not a cluster directory; choose another --name or --dir")
        return {}
    try:
        doc = cdir.read()
    except ClusterError as e:
        fail(str(e))
    if cdir.running(doc) or supervisor_alive(doc):
        fail(f"cluster {cdir.name!r} is already running (supervisor pid {doc['supervisor'].get('pid')}); "
             f"`harness cluster down --name {cdir.name}` first, or choose another --name")
    state = hosts_state.load_run_dir(cdir.path)
    if state is not None and _only_gone_pids(state):
        state.finish()
    if state is not None and not state.is_empty():
        fail(f"cluster {cdir.name!r} left {hosts_state.describe(state)}; `harness cluster down --name {cdir.name}` "
             f"removes it first")
    if wipe:
        shutil.rmtree(cdir.path)
        return {}
    if doc.get("system") != system:
        fail(f"{cdir.path} holds a {doc.get('system')} cluster's data; choose another --name, or --wipe it")
    return doc


def _only_gone_pids(state: hosts_state.HostsState) -> bool:
    """A record naming only processes, none of them still the cluster's: nothing is left to remove."""
    only_pids = not (state.netns or state.links or state.remote)
    return only_pids and not any(hosts_state.pid_carries(pid, state.marker) for pid in state.pids)


def _spawn_supervisor(cdir: ClusterDir) -> subprocess.Popen[bytes]:
    from harness.backends.processes import REPO_ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    marker = f"{str(cdir.path.resolve()).rstrip('/')}/cluster.json"  # RuntimeProgram.marker of the run dir
    with cdir.supervisor_log.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "harness.services.supervisor", "--cluster-file", marker],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _wait_until_settled(cdir: ClusterDir, proc: subprocess.Popen[bytes], limit_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    with console.status(f"starting {cdir.name} (supervisor pid {proc.pid})"):
        while True:
            doc = cdir.read()
            if doc.get("state") in ("up", "failed", "down"):
                return doc
            if proc.poll() is not None:
                return cdir.read()
            if time.monotonic() > deadline:
                return {**doc, "error": f"not up within {limit_s:g} s; it goes on starting: watch "
                                        f"`harness cluster status --name {cdir.name}` or take it down"}
            time.sleep(0.1)


def _print_up(cdir: ClusterDir, doc: dict[str, Any]) -> None:
    system = doc["system"]
    console.print(f"[green]up[/green]: {doc['node_count']} {system} nodes on {doc['backend']}, "
                  f"cluster {cdir.name!r} in {cdir.path}")
    for n, s in sorted((doc.get("nodes_state") or {}).items()):
        console.print(f"  {n}  {s.get('address')}  pid {s.get('pid')}")
    console.print(f"watch it:  harness cluster status --watch{_name_flag(cdir)}")
    cli = {"raft": "python -m systems.raft.cli put k1 hello", "kv": "python -m systems.kv.cli put k1 hello",
           "heartbeat": "python -m systems.heartbeat.cli watch", "dfs": "python -m systems.dfs.cli append /log hello"
           }.get(system)
    if cli:
        console.print(f"talk to it: {cli}")
    console.print(f"break it:  harness cluster fault kill n1{_name_flag(cdir)}   then: harness cluster heal")


def _name_flag(cdir: ClusterDir) -> str:
    return f" --name {cdir.name}" if cdir.path.parent == clusters_root() else f" --dir {cdir.path}"


# -- status ----------------------------------------------------------------------------------------
@cluster_cmd.command("status")
@click.option("--watch", is_flag=True, help="Redraw every --interval seconds until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@click.option("--interval", "interval_s", default=1.0, show_default=True, type=click.FloatRange(0.1))
@click.option("--timeout", "timeout_s", default=1.0, show_default=True, type=click.FloatRange(0.05),
              help="Seconds to wait for each node's answer.")
@click.option("--svg", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also save the dashboard as an SVG picture of the terminal.")
@which_cluster
def status_cmd(watch: bool, as_json: bool, interval_s: float, timeout_s: float, svg: Path | None, name: str | None,
               directory: Path | None) -> None:
    """Who is alive, who leads, what each node reports: from the nodes' own status RPCs."""
    from harness.services import dashboard
    from harness.services.probe import gather

    cdir = _locate(name, directory, live_only=False)
    if as_json:
        status = gather(cdir, timeout_s=timeout_s)
        sys.stdout.write(json.dumps(status, indent=2, sort_keys=True) + "\n")
        sys.exit(EXIT_OK if status["state"] == "up" else EXIT_REFUSED)
    if watch:
        with contextlib.suppress(KeyboardInterrupt):
            dashboard.watch(console, lambda: gather(cdir, timeout_s=timeout_s), interval_s)
        return
    status = gather(cdir, timeout_s=timeout_s)
    if svg is not None:
        picture = Console(record=True, width=console.width, file=io.StringIO())
        picture.print(dashboard.render(status))
        picture.save_svg(str(svg), title=f"harness cluster status --name {cdir.name}")
    console.print(dashboard.render(status))
    sys.exit(EXIT_OK if status["state"] == "up" else EXIT_REFUSED)


@cluster_cmd.command("list")
def list_cmd() -> None:
    """Every cluster under the clusters root, and whether it runs."""
    from harness.services.clusterdir import all_clusters

    found = all_clusters()
    if not found:
        console.print(f"no clusters under {clusters_root()}")
        return
    for c in found:
        doc = c.read()
        state = doc.get("state") if c.running(doc) or doc.get("state") not in ("up", "starting") else "supervisor gone"
        console.print(f"{c.name}: {doc.get('system')} x{doc.get('node_count')} on {doc.get('backend')}, {state}")


# -- commands to the supervisor --------------------------------------------------------------------
def _ask(cdir: ClusterDir, req: control.Request, timeout_s: float = 120.0) -> dict[str, Any]:
    doc = cdir.read()
    if not cdir.running(doc):
        fail(f"cluster {cdir.name!r} is not running (state {doc.get('state')}"
             f"{'' if supervisor_alive(doc) else ', no supervisor'})", EXIT_REFUSED)
    try:
        return control.ask(cdir.socket_path(), req, timeout_s)
    except control.Unanswered as e:
        fail(str(e), EXIT_REFUSED)


def _said(reply: dict[str, Any]) -> None:
    if not reply.get("ok"):
        fail(str(reply.get("error")), EXIT_REFUSED)
    for line in reply.get("said", []):
        console.print(escape(str(line)))
    if "in_force" in reply:
        force = reply["in_force"]
        console.print("in force: " + ("; ".join(escape(str(x)) for x in force) if force else "nothing"))


@cluster_cmd.command("fault")
@click.argument("fault")
@click.argument("node", required=False)
@click.option("--shape", default=None, help="partition: halves, isolate, majorities-ring, bridge, isolate-leader.")
@which_cluster
def fault_cmd(fault: str, node: str | None, shape: str | None, name: str | None, directory: Path | None) -> None:
    """Make one fault by hand with a nemesis package (kill, pause, partition, power, plug, link, switch, ...)."""
    _said(_ask(_locate(name, directory), control.Fault(fault, node, shape)))


@cluster_cmd.command("heal")
@which_cluster
def heal_cmd(name: str | None, directory: Path | None) -> None:
    """Cure every fault made by hand: the network healed, paused nodes continued, downed nodes back."""
    _said(_ask(_locate(name, directory), control.Heal(), timeout_s=600.0))


@cluster_cmd.command("restart")
@click.argument("node")
@which_cluster
def restart_cmd(node: str, name: str | None, directory: Path | None) -> None:
    """Restart NODE over its data directory (a node a fault took down is brought back)."""
    _said(_ask(_locate(name, directory), control.Restart(node), timeout_s=600.0))


# -- logs ------------------------------------------------------------------------------------------
@cluster_cmd.command("logs")
@click.argument("node")
@click.option("-f", "--follow", is_flag=True, help="Keep printing what the node logs until Ctrl-C.")
@click.option("-n", "--lines", default=20, show_default=True, type=click.IntRange(0))
@click.option("--raw", is_flag=True, help="The JSON lines as the node wrote them.")
@which_cluster
def logs_cmd(node: str, follow: bool, lines: int, raw: bool, name: str | None, directory: Path | None) -> None:
    """Print NODE's log (its last --lines lines), and follow it with -f."""
    from harness.services.logs import show

    cdir = _locate(name, directory, live_only=False)
    doc = cdir.read()
    if node not in doc.get("nodes", []):
        fail(f"unknown node {node!r} (nodes: {' '.join(doc.get('nodes', []))})")
    with contextlib.suppress(KeyboardInterrupt):
        show(cdir, doc, node, lines=lines, follow=follow, raw=raw, out=sys.stdout)


# -- down ------------------------------------------------------------------------------------------
@cluster_cmd.command("down")
@click.option("--wipe", is_flag=True, help="Also remove the cluster's directory: data, logs, record.")
@click.option("--timeout", "timeout_s", default=120.0, show_default=True, type=click.FloatRange(1.0))
@which_cluster
def down_cmd(wipe: bool, timeout_s: float, name: str | None, directory: Path | None) -> None:
    """Stop every node and remove everything the cluster created (namespaces, chains, processes)."""
    cdir = _locate(name, directory, live_only=False)
    doc = cdir.read()
    if supervisor_alive(doc):
        _stop_supervisor(cdir, doc, timeout_s)
    state = hosts_state.load_run_dir(cdir.path)
    if state is not None and not state.is_empty():
        console.print(f"the supervisor left {hosts_state.describe(state)}; removing it")
        for line in hosts_state.cleanup_state(state):
            console.print(f"  {escape(line)}")
        if not state.is_empty():
            fail(f"could not remove everything; it stays recorded: `harness cleanup {cdir.path}` tries again",
                 EXIT_REFUSED)
    doc = cdir.read()
    if doc.get("state") != "down":
        cdir.update(state="down", error=doc.get("error") or "taken down after its supervisor was gone")
    if wipe:
        _wipe(cdir, doc)
        console.print(f"down; removed {cdir.path}")
    else:
        console.print(f"down; data and logs kept in {cdir.path} (`harness cluster up {doc.get('system')}"
                      f"{_name_flag(cdir)}` starts it again over them, `down --wipe` removes them)")


def _stop_supervisor(cdir: ClusterDir, doc: dict[str, Any], timeout_s: float) -> None:
    pid = int(doc["supervisor"]["pid"])
    try:
        control.ask(cdir.socket_path(), control.Down(), 10.0)
    except control.Unanswered as e:
        console.print(f"[yellow]{escape(str(e))}[/yellow]; sending it SIGTERM")
        _signal(pid, signal.SIGTERM)
    with console.status(f"taking {cdir.name} down"):
        if _wait_gone(cdir, timeout_s):
            return
        console.print(f"[yellow]the supervisor (pid {pid}) did not finish within {timeout_s:g} s; SIGTERM[/yellow]")
        _signal(pid, signal.SIGTERM)
        if _wait_gone(cdir, 30.0):
            return
        console.print("[yellow]still there; SIGKILL[/yellow]")
        _signal(pid, signal.SIGKILL)
        _wait_gone(cdir, 10.0)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(cdir: ClusterDir, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not supervisor_alive(cdir.read()):
            return True
        time.sleep(0.1)
    return False


def _wipe(cdir: ClusterDir, doc: dict[str, Any]) -> None:
    if doc.get("backend") == "ssh":
        from harness.services.ssh_service import wipe_hosts

        for line in wipe_hosts(doc):
            console.print(f"  {escape(line)}")
    with contextlib.suppress(FileNotFoundError):
        cdir.socket_path().unlink()
    shutil.rmtree(cdir.path)
