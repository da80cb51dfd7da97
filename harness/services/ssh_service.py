"""Nodes as services on SSH hosts (the Pis): each node runs under a small supervisor script on its host.

The ssh backend (harness/backends/ssh.py) deploys and connects as for a run;
its `Processes` strategy is `SshServiceProcesses` here: a node is started by
`supervise.sh` on its host, which restarts it when it dies unless it was
told to hold (a fault, a restart by hand) or to stop (down). So the cluster
lives on, and heals its crashes, even while the harness machine is away.

Rules this module keeps (besides ssh_processes'):

- On each host the cluster lives in `<data_dir>/clusters/<name>/`: the
  supervisor script, each node's data directory, log and output, and its
  control files (`<node>.pid` the node's pid while it runs, `<node>.sup` the
  supervisor's, `<node>.hold`, `<node>.stop`, `<node>.events` one line per
  crash). The run's config (cluster.json, the run's marker) stays in the
  ssh backend's run directory. `down` keeps all of it; `down --wipe` removes
  it (`wipe_hosts`).
- The supervisor's command line carries the run's marker and the node's
  whole command line, and its pid is recorded before the node's in the
  host's HostsState entry, so `harness cleanup` kills it first (and the
  rehearsal's power script, which kills a namespace's `-m systems.*`
  processes, takes it down with the node, as a power cut would).
- kill = hold, then SIGKILL the node, then wait until the supervisor saw
  it go; start = lift the hold (starting the supervisor when it is not
  running, e.g. after a power cut) and wait for the new node's pid; stop
  (a restart by hand) = hold, SIGTERM, SIGKILL after a grace period.
- `observe()` reads every host's pid and crash count in one command per
  host, so the harness's supervisor learns of a crash the host's supervisor
  already healed (it then re-applies the network state to the new process).
- The supervisor script is plain POSIX sh: it runs where systemd does not
  (and where it does, without asking anything of it).
"""

from __future__ import annotations

import functools
import shlex
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.backends import ssh_config
from harness.backends.node_program import NodeProgram, NodeSite
from harness.backends.process_cluster import NodeStartError
from harness.backends.ssh_config import SshClusterConfig
from harness.backends.ssh_processes import SshHost, SshProcesses
from harness.backends.ssh_remote import HostUnreachable, Remote, script
from harness.hosts_state import HostsState

SUPERVISE_SH = r"""#!/bin/sh
# picluster's node supervisor: runs one node, restarts it when it dies, unless told to hold or stop.
# usage: sh supervise.sh DIR NODE MARKER -- NODE-ARGV...   (MARKER, the run's cluster file, is for cleanup)
dir=$1; node=$2; shift 3; [ "$1" = "--" ] && shift
echo $$ > "$dir/$node.sup"
child=
trap 'touch "$dir/$node.stop"; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT HUP
delay=1
while [ ! -e "$dir/$node.stop" ]; do
  if [ -e "$dir/$node.hold" ]; then sleep 0.2; continue; fi
  "$@" >> "$dir/$node.out" 2>&1 < /dev/null &
  child=$!
  echo $child > "$dir/$node.pid"
  started=$(date +%s)
  wait $child; status=$?
  while kill -0 $child 2>/dev/null; do wait $child; status=$?; done
  child=
  rm -f "$dir/$node.pid"
  [ -e "$dir/$node.stop" ] && break
  [ -e "$dir/$node.hold" ] && continue
  echo "$(date +%s) crashed $status" >> "$dir/$node.events"
  [ $(( $(date +%s) - started )) -ge 60 ] && delay=1
  sleep $delay
  [ $delay -lt 30 ] && delay=$((delay * 2))
done
rm -f "$dir/$node.sup" "$dir/$node.stop"
"""

OURS = "tr '\\0' '\\n' < /proc/$p/cmdline 2>/dev/null | grep -qxF -- {marker}"
"""Is pid $p ours: does its command line still carry the run's marker?"""


class SshServiceProcesses(SshProcesses):
    """Node processes under a supervisor on each host (see the module rules)."""

    supervises_itself = True

    def __init__(self, hosts: dict[str, SshHost], program: NodeProgram, state: HostsState,
                 config: SshClusterConfig, *, cluster: str) -> None:
        super().__init__(hosts, program, state, config)
        self.cluster = cluster
        self.crashes: dict[str, int] = dict.fromkeys(hosts, 0)
        self._installed: set[str] = set()

    # -- where ------------------------------------------------------------------------------------
    def home(self, node: str) -> str:
        return f"{self._host(node).base}/clusters/{self.cluster}"

    def site(self, node: str) -> NodeSite:
        h, home = self._host(node), self.home(node)
        return NodeSite(node=node, host=h.host.host, port=h.host.port, data_dir=f"{home}/data/{node}",
                        log=f"{home}/{node}.log", out=f"{home}/{node}.out", config_dir=h.run_base, python=h.python)

    def remote_dirs(self) -> dict[str, dict[str, str]]:
        return {n: {"cluster": self.home(n), "run": h.run_base} for n, h in self.hosts.items()}

    def _file(self, node: str, suffix: str) -> str:
        return f"{self.home(node)}/{node}.{suffix}"

    def _install(self, node: str) -> str:
        path = f"{self.home(node)}/supervise.sh"
        if node not in self._installed:
            h = self._host(node)
            h.remote.run(["mkdir", "-p", f"{self.home(node)}/data"])
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / "supervise.sh"
                local.write_text(SUPERVISE_SH)
                h.remote.put(local, path)
            self._installed.add(node)
        return path

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, node: str) -> int:
        h, site, marker = self._host(node), self.site(node), self.marker(node)
        sup_script = self._install(node)
        pid_f, sup_f, hold_f, stop_f = (self._file(node, s) for s in ("pid", "sup", "hold", "stop"))
        argv = " ".join(shlex.quote(a) for a in self.program.argv(site))
        cmd = (
            script("mkdir -p {data} && cd {home} && rm -f {hold} {stop}; ", data=site.data_dir, home=self.home(node),
                   hold=hold_f, stop=stop_f)
            + script("p=$(cat {sup} 2>/dev/null); if [ -n \"$p\" ] && " + OURS + "; then :; else rm -f {pid} {sup}; "
                     "(setsid sh {script} {home} {node} {marker} -- ", sup=sup_f, marker=marker, pid=pid_f,
                     script=sup_script, home=self.home(node), node=node)
            + argv + " > /dev/null 2>&1 < /dev/null &); fi; "
            + script("i=0; while [ $i -lt 400 ]; do p=$(cat {pid} 2>/dev/null); "
                     "if [ -n \"$p\" ] && " + OURS + "; then echo \"$(cat {sup}) $p\"; exit 0; fi; "
                     "sleep 0.05; i=$((i+1)); done; echo none; exit 1", pid=pid_f, sup=sup_f, marker=marker)
        )
        out = h.remote.sh(cmd, check=False).out.strip().splitlines()
        try:
            sup, pid = (int(x) for x in out[-1].split())
        except (ValueError, IndexError):
            tail = h.remote.run(["tail", "-n", "5", site.out], check=False).out.strip()
            raise NodeStartError(f"{h.host.where}: the node did not start under its supervisor "
                                 f"(got {out[-1:] or 'nothing'}); its output ends: {tail or '(none)'}") from None
        for p in (sup, pid):
            if p not in h.pids:
                h.pids.append(p)
        h.pid = pid
        self.started_pids.append(pid)
        self.record(node)
        return pid

    def kill(self, node: str) -> None:
        self._hold_and_signal(node, "KILL", grace_s=0.0)

    def stop(self, node: str, grace_s: float = 5.0) -> None:
        """Hold the node, ask it to stop (SIGTERM), SIGKILL it after grace_s."""
        self._hold_and_signal(node, "TERM", grace_s=grace_s)

    def _hold_and_signal(self, node: str, sig: str, grace_s: float) -> None:
        h, marker = self._host(node), self.marker(node)
        pid_f = self._file(node, "pid")
        tries = max(1, int(grace_s / 0.05))
        h.remote.sh(script(
            "touch {hold}; p=$(cat {pid} 2>/dev/null); [ -n \"$p\" ] && " + OURS + " && "
            "{{ kill -CONT $p; kill -{sig} $p; }}; i=0; while [ -s {pid} ] && [ $i -lt {tries} ]; do sleep 0.05; "
            "i=$((i+1)); done; p=$(cat {pid} 2>/dev/null); [ -n \"$p\" ] && " + OURS + " && kill -KILL $p; "
            "i=0; while [ -s {pid} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; true",
            hold=self._file(node, "hold"), pid=pid_f, marker=marker, sig=sig, tries=tries), check=False)
        h.pid = None

    def signal(self, node: str, sig: Any) -> bool:
        h, marker = self._host(node), self.marker(node)
        r = h.remote.sh(script("p=$(cat {pid} 2>/dev/null) && " + OURS + " && kill -{sig} $p && echo $p",
                               pid=self._file(node, "pid"), marker=marker, sig=sig.name.removeprefix("SIG")),
                        check=False)
        if r.rc == 0 and r.out.strip().isdigit():
            h.pid = int(r.out.strip())
            return True
        return False

    def observe(self, leave: frozenset[str] = frozenset()) -> dict[str, tuple[int | None, int]]:
        """Each node's pid as its host's supervisor last started it (None while it is down: a pid is taken only
        while its process still carries the run's marker), and how often it crashed. Nodes held on purpose,
        and those in `leave` (the harness took them down, or is bringing them back), keep the pid the harness
        knows."""

        def one(node: str) -> tuple[str, int | None, int, bool] | None:
            h = self._host(node)
            if not h.run_base:
                return None
            r = h.remote.sh(script("p=$(cat {pid} 2>/dev/null); [ -n \"$p\" ] && " + OURS + " && echo pid=$p; "
                                   "printf 'crashes=%s\\n' \"$(grep -c crashed {events} 2>/dev/null)\"; "
                                   "[ -e {hold} ] && echo held=1; true", pid=self._file(node, "pid"),
                                   marker=self.marker(node), events=self._file(node, "events"),
                                   hold=self._file(node, "hold")), check=False)
            seen = dict(line.split("=", 1) for line in r.out.splitlines() if "=" in line)
            pid = int(seen["pid"]) if seen.get("pid", "").isdigit() else None
            crashes = int(seen["crashes"]) if seen.get("crashes", "").isdigit() else 0
            return node, pid, crashes, "held" in seen

        out: dict[str, tuple[int | None, int]] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(self.hosts))) as pool:
            for seen in pool.map(lambda n: _quietly(one, n), list(self.hosts)):
                if seen is None:
                    continue
                node, pid, crashes, held = seen
                h = self._host(node)
                self.crashes[node] = crashes
                if not held and node not in leave:
                    if pid is not None and pid not in h.pids:
                        h.pids.append(pid)
                        self.record(node)
                    h.pid = pid
                out[node] = (h.pid, crashes)
        return out

    def stop_all(self, grace_s: float = 2.0) -> None:
        def mark(node: str) -> None:
            h = self._host(node)
            if h.run_base:
                h.remote.run(["touch", self._file(node, "stop")], check=False)

        with ThreadPoolExecutor(max_workers=max(1, len(self.hosts))) as pool:
            list(pool.map(lambda n: _quietly(mark, n), list(self.hosts)))
        super().stop_all(grace_s)


def _quietly(fn: Any, node: str) -> Any:
    try:
        return fn(node)
    except HostUnreachable as e:  # a host that is away (powered off) says nothing this time
        print(f"ssh service: {e}", file=sys.stderr)
        return None


def service_backend(*, startup_timeout_s: float, cluster: str) -> Any:
    from harness.backends.ssh import SshBackend

    return SshBackend(startup_timeout_s=startup_timeout_s,
                      processes=functools.partial(SshServiceProcesses, cluster=cluster))


# -- what the command line does on the hosts without the supervisor -------------------------------------
def _remote(doc: dict[str, Any], node: str) -> Remote:
    config = ssh_config.load(str(doc["cluster_file"]))
    if node not in config.nodes:
        raise ssh_config.ClusterConfigError(f"{doc['cluster_file']}: no node {node} any more")
    return Remote(config.nodes[node], known_hosts=config.known_hosts, accept_new=False,
                  timeout_s=config.connect_timeout_s)


def remote_log(doc: dict[str, Any], node: str, *, lines: int, follow: bool) -> Iterator[str]:
    """The node's log on its host: its last `lines` lines, then (follow) what it writes next."""
    where = (doc.get("remote_dirs") or {}).get(node)
    if not where:
        raise ssh_config.ClusterConfigError(f"the record does not say where {node}'s log is on its host")
    from harness import registry

    remote = _remote(doc, node)
    # a runtime node writes its structured log to <node>.log; an external program (etcd) logs to its output
    path = f"{where['cluster']}/{node}.{'out' if registry.is_external(str(doc.get('system'))) else 'log'}"
    try:
        cmd = shlex.join(["tail", "-n", str(lines), *(["-F"] if follow else []), path])
        _stdin, stdout, _stderr = remote.client.exec_command(cmd)
        for line in stdout:
            yield line.rstrip("\n")
    finally:
        remote.close()


def wipe_hosts(doc: dict[str, Any]) -> list[str]:
    """Remove the cluster's directories on every host (its data, logs and the runs' config)."""
    said = []
    for node, where in sorted((doc.get("remote_dirs") or {}).items()):
        try:
            remote = _remote(doc, node)
            try:
                remote.run(["rm", "-rf", where["cluster"], where["run"]])
            finally:
                remote.close()
            said.append(f"removed {where['cluster']} and {where['run']} on {node}")
        except Exception as e:  # one host away must not keep the others' data
            said.append(f"FAILED to remove {node}'s directories: {e}")
    return said
