"""Node processes on SSH hosts (the Raspberry Pis): the ssh backend's `Processes` strategy.

Rules this module keeps (besides those of processes.Processes):

- A host's run lives in `<data_dir>/runs/<run_id>/` (the config files,
  data/<node>, <node>.log, <node>.out, <node>.pid); `SshHost.run_base` is
  that directory once the host is deployed.
- A node is started detached (`setsid`, stdio to files, a pid file), so it
  outlives the SSH session; its pid is read back from its pid file and
  recorded in the host's HostsState entry before anything else is done.
- A remote pid is only ever signalled while its command line still carries
  the program's marker (`Remote.signal_if_ours`), so a pid reused on the
  host by another program is left alone.
- `alive` is what the harness knows (a node it killed or whose host lost
  power is not up); a node that dies on its own on a host reads as up until
  its probe fails.
- `stop_all` works the hosts in parallel, each on its own; a host where
  the nodes could not be stopped is remembered in `unstopped` (its record
  stays for `harness cleanup`).
- Keys: each host gets its own node's key file alone, in
  `<run_base>/keys` (made 0700 before the file arrives, the file then
  0600); `remove_keys` deletes that directory at teardown.
"""

from __future__ import annotations

import signal
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.node_program import KEY_DIR, NodeProgram, NodeSite
from harness.backends.process_cluster import NodeStartError
from harness.backends.ssh_config import NodeHost, SshClusterConfig
from harness.backends.ssh_remote import CHAIN, Remote, script
from harness.hosts_state import HostsState
from systems.runtime.real_auth import ClusterKeys, node_key_file


@dataclass
class SshHost:
    """One node's host and what the run put there."""

    host: NodeHost
    remote: Remote
    ip: str
    """The host's address as this machine resolved it (what iptables rules and the client use)."""
    base: str = ""
    run_base: str = ""
    python: str = ""
    pid: int | None = None
    pids: list[int] = field(default_factory=list)


def remote_entry(h: SshHost, config: SshClusterConfig, marker: str) -> dict[str, Any]:
    """The HostsState entry that lets `harness cleanup` undo what the run did on this host."""
    n = h.host
    return {
        "node": n.node, "host": n.host, "ssh_port": n.ssh_port, "user": n.user, "key": n.key,
        "sudo": n.sudo, "port": n.port, "known_hosts": config.known_hosts, "chain": CHAIN,
        "pids": list(h.pids), "marker": marker,
    }


class SshProcesses:
    def __init__(self, hosts: dict[str, SshHost], program: NodeProgram, state: HostsState,
                 config: SshClusterConfig) -> None:
        self.hosts = hosts
        self.program = program
        self.state = state
        self.config = config
        self.started_pids: list[int] = []
        self.unstopped: set[str] = set()

    def _host(self, node: str) -> SshHost:
        return self.hosts[node]

    def marker(self, node: str) -> str:
        return self.program.marker(self._host(node).run_base)

    def record(self, node: str) -> None:
        self.state.set_remote(remote_entry(self._host(node), self.config, self.marker(node)))

    # -- where ------------------------------------------------------------------------------------
    def site(self, node: str) -> NodeSite:
        h = self._host(node)
        return NodeSite(node=node, host=h.host.host, port=h.host.port, data_dir=f"{h.run_base}/data/{node}",
                        log=f"{h.run_base}/{node}.log", out=f"{h.run_base}/{node}.out", config_dir=h.run_base,
                        python=h.python)

    def describe(self, node: str) -> str:
        return self._host(node).host.where

    def write_config(self, files: dict[str, str]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in files.items():
                (Path(tmp) / name).write_text(text)

            def one(h: SshHost) -> None:
                for name in files:
                    h.remote.put(Path(tmp) / name, f"{h.run_base}/{name}")

            with ThreadPoolExecutor(max_workers=max(1, len(self.hosts))) as pool:
                list(pool.map(one, self.hosts.values()))

    def write_keys(self, keys: ClusterKeys) -> None:
        with tempfile.TemporaryDirectory() as tmp:

            def one(node: str) -> None:
                h = self._host(node)
                name = node_key_file(node)
                local = Path(tmp) / name
                local.touch(mode=0o600)
                local.write_text(keys.nodes[node].to_json())
                key_dir = f"{h.run_base}/{KEY_DIR}"
                h.remote.run(["mkdir", "-p", "-m", "700", key_dir])
                h.remote.run(["chmod", "700", key_dir])
                h.remote.put(local, f"{key_dir}/{name}")
                h.remote.run(["chmod", "600", f"{key_dir}/{name}"])

            with ThreadPoolExecutor(max_workers=max(1, len(self.hosts))) as pool:
                list(pool.map(one, list(self.hosts)))

    def remove_keys(self) -> None:
        def one(h: SshHost) -> None:
            if h.run_base:
                try:
                    h.remote.run(["rm", "-rf", f"{h.run_base}/{KEY_DIR}"], check=False)
                except Exception as e:  # teardown goes on; the keys of a finished run open nothing
                    print(f"ssh teardown: {h.host.where}: could not remove the run's keys: {e}", file=sys.stderr)

        with ThreadPoolExecutor(max_workers=max(1, len(self.hosts))) as pool:
            list(pool.map(one, self.hosts.values()))

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, node: str) -> int:
        h = self._host(node)
        site = self.site(node)
        pidfile = f"{h.run_base}/{node}.pid"
        wipe = " ".join(script("rm -rf {p} &&", p=p) for p in self.program.wipe(site)) if not h.pids else ""
        cmd = script(
            "mkdir -p {data} && cd {run} && rm -f {pidfile} && ",
            data=site.data_dir, run=h.run_base, pidfile=pidfile,
        ) + wipe + script(
            "(setsid sh -c 'echo $$ > \"$0\"; exec \"$@\"' {pidfile} ", pidfile=pidfile,
        ) + " ".join(script("{a}", a=a) for a in self.program.argv(site)) + script(
            " >> {out} 2>&1 < /dev/null &) ; "
            "i=0; while [ ! -s {pidfile} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; cat {pidfile}",
            out=site.out, pidfile=pidfile,
        )
        out = h.remote.sh(cmd).out.strip()
        try:
            pid = int(out.splitlines()[-1])
        except (ValueError, IndexError):
            raise NodeStartError(f"{h.host.where}: node did not report its pid (got {out!r})") from None
        h.pid = pid
        h.pids.append(pid)
        self.started_pids.append(pid)
        self.record(node)
        return pid

    def alive(self, node: str) -> bool:
        return self._host(node).pid is not None

    def pid(self, node: str) -> int | None:
        return self._host(node).pid

    def exit_status(self, node: str) -> int | None:
        return None

    def signal(self, node: str, sig: signal.Signals) -> bool:
        h = self._host(node)
        if h.pid is None:
            return False
        return h.remote.signal_if_ours(h.pid, sig.name.removeprefix("SIG"), self.marker(node))

    def kill(self, node: str) -> None:
        h = self._host(node)
        if h.pid is None:
            return
        h.remote.signal_if_ours(h.pid, "KILL", self.marker(node))
        h.pid = None

    def lost(self, node: str) -> None:
        h = self._host(node)
        h.pid = None
        h.remote.close()

    def log_tail(self, node: str, lines: int = 15) -> str:
        h = self._host(node)
        site = self.site(node)
        r = h.remote.run(["tail", "-n", str(lines), site.out, site.log], check=False)
        return f"its log ends:\n{r.out.strip() or '(no log)'}"

    def stop_all(self, grace_s: float = 2.0) -> None:
        def one(node: str) -> None:
            h = self._host(node)
            if not h.pids:
                return
            marker = self.marker(node)
            try:
                for pid in h.pids:
                    h.remote.signal_if_ours(pid, "CONT", marker)
                    h.remote.signal_if_ours(pid, "TERM", marker)
                pids = " ".join(str(int(p)) for p in h.pids)  # ints: nothing here needs quoting
                tries = max(1, int(grace_s / 0.05))
                h.remote.sh(f"for i in $(seq {tries}); do alive=0; for p in {pids}; do [ -d /proc/$p ] && alive=1; "
                            f"done; [ $alive = 0 ] && exit 0; sleep 0.05; done; exit 1", check=False)
                for pid in h.pids:
                    h.remote.signal_if_ours(pid, "KILL", marker)
            except Exception as e:  # the host's record stays, for `harness cleanup`
                self.unstopped.add(node)
                print(f"ssh teardown: {h.host.where}: could not stop the node: {e}", file=sys.stderr)
            h.pid = None

        with ThreadPoolExecutor(max_workers=max(1, len(self.hosts))) as pool:
            list(pool.map(one, list(self.hosts)))
