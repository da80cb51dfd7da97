"""One SSH connection to one node's host (paramiko), and the remote commands the ssh backend sends.

Rules this module keeps:

- Host keys are checked against the cluster's known_hosts file; an unknown
  host is refused (`HostKeyUnknown`, naming the host and the file) unless
  the cluster file says `accept_new_host_keys = true`, in which case the new
  key is written to that file and said so on stderr. A *changed* key is
  always refused. Never a silent auto-add.
- Every remote command is an argv list joined with `shlex.join`; remote
  shell snippets are fixed text whose every variable part went through
  `shlex.quote` (see `script`). User input is never pasted into a command.
- `sudo -n` (never a password prompt) is prepended to iptables when the
  node's `sudo` is true.
- Connection problems raise `HostUnreachable` naming the node and address.
- `clean_remote_entry` (used by `harness cleanup`) undoes what a hosts-state
  entry records on one host: its node pids (only those whose command line
  still carries the run's marker) and the iptables chain.
"""

from __future__ import annotations

import shlex
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from harness.backends.base import SetupError
from harness.backends.ssh_config import NodeHost

CHAIN = "PICLUSTER"


class HostUnreachable(SetupError):
    """A host cannot be reached (or its key is not trusted); the message names the node and address."""


class HostKeyUnknown(HostUnreachable):
    pass


class RemoteError(RuntimeError):
    """A remote command failed; the message names the node, the command and its stderr."""


@dataclass(frozen=True, slots=True)
class Result:
    rc: int
    out: str
    err: str


def script(template: str, **values: Any) -> str:
    """A fixed shell snippet with every `{name}` replaced by shlex.quote(str(value))."""
    return template.format(**{k: shlex.quote(str(v)) for k, v in values.items()})


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Explicitly requested: add an unknown host's key to the known_hosts file (a changed key still fails)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        print(f"ssh: accepted new host key {key.get_name()} for {hostname} into {self.path} "
              f"(accept_new_host_keys = true)", file=sys.stderr)


class Remote:
    """A connected node host. Thread-safe: one command at a time per host."""

    def __init__(self, host: NodeHost, *, known_hosts: str, accept_new: bool = False,
                 timeout_s: float = 10.0) -> None:
        self.host = host
        self.known_hosts = Path(known_hosts).expanduser()
        self.accept_new = accept_new
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None

    # -- connection ---------------------------------------------------------------------------
    def connect(self) -> None:
        h = self.host
        client = paramiko.SSHClient()
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        if self.accept_new:
            client.set_missing_host_key_policy(_AcceptNew(self.known_hosts))
        else:
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                h.host, port=h.ssh_port, username=h.user,
                key_filename=str(Path(h.key).expanduser()) if h.key else None,
                timeout=self.timeout_s, banner_timeout=self.timeout_s, auth_timeout=self.timeout_s,
                allow_agent=h.key is None, look_for_keys=h.key is None,
            )
        except paramiko.BadHostKeyException as e:
            client.close()
            raise HostKeyUnknown(
                f"{h.where}: its host key CHANGED since it was recorded in {self.known_hosts} ({e}); "
                f"if the node was reinstalled, remove its old line with `ssh-keygen -R {h.host}`"
            ) from None
        except paramiko.SSHException as e:
            client.close()
            if "not found in known_hosts" in str(e):
                raise HostKeyUnknown(
                    f"{h.where}: host key unknown (not in {self.known_hosts}); check it and add it with "
                    f"`ssh-keyscan -p {h.ssh_port} {h.host} >> {self.known_hosts}`, or set "
                    f"accept_new_host_keys = true in [cluster]"
                ) from None
            raise HostUnreachable(f"{h.where}: ssh failed: {e}") from None
        except OSError as e:
            client.close()
            raise HostUnreachable(f"{h.where}: unreachable: {e}") from None
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            self.connect()
        assert self._client is not None
        return self._client

    # -- commands -----------------------------------------------------------------------------
    def sh(self, command: str, *, timeout: float = 60.0, check: bool = True) -> Result:
        """Run a shell command line (already quoted) and wait for it."""
        with self._lock:
            try:
                _stdin, stdout, stderr = self.client.exec_command(command, timeout=timeout)
                stdout.channel.settimeout(timeout)
                out = stdout.read().decode(errors="replace")
                err = stderr.read().decode(errors="replace")
                rc = stdout.channel.recv_exit_status()
            except (paramiko.SSHException, OSError, EOFError) as e:
                self.close()
                raise HostUnreachable(f"{self.host.where}: lost the connection running {command!r}: {e}") from None
        if check and rc != 0:
            raise RemoteError(f"{self.host.where}: `{command}` failed ({rc}): {err.strip() or out.strip()}")
        return Result(rc, out, err)

    def run(self, argv: list[str], **kw: Any) -> Result:
        return self.sh(shlex.join(argv), **kw)

    def iptables(self, *args: str, check: bool = True) -> Result:
        prefix = ["sudo", "-n"] if self.host.sudo else []
        return self.run([*prefix, "iptables", "-w", *args], check=check)

    def put(self, local: Path, remote: str) -> None:
        with self._lock:
            sftp = self.client.open_sftp()
            try:
                sftp.put(str(local), remote)
            finally:
                sftp.close()

    def get(self, remote: str, local: Path) -> bool:
        with self._lock:
            sftp = self.client.open_sftp()
            try:
                sftp.get(remote, str(local))
                return True
            except OSError:
                return False
            finally:
                sftp.close()

    # -- the chain ----------------------------------------------------------------------------
    def chain_install(self) -> None:
        """Create our chain (if missing) and jump to it from INPUT (once)."""
        self.iptables("-N", CHAIN, check=False)
        if self.iptables("-C", "INPUT", "-j", CHAIN, check=False).rc != 0:
            self.iptables("-I", "INPUT", "-j", CHAIN)

    def chain_set(self, sources: list[str]) -> None:
        """Flush our chain, then drop inbound traffic from each source address."""
        self.iptables("-F", CHAIN)
        for src in sources:
            self.iptables("-A", CHAIN, "-s", f"{src}/32", "-j", "DROP")

    def chain_remove(self) -> list[str]:
        done = []
        for _ in range(10):  # every jump we may have inserted
            if self.iptables("-D", "INPUT", "-j", CHAIN, check=False).rc != 0:
                break
            done.append("removed INPUT jump")
        if self.iptables("-F", CHAIN, check=False).rc == 0:
            self.iptables("-X", CHAIN, check=False)
            done.append(f"removed chain {CHAIN}")
        return done

    # -- processes ----------------------------------------------------------------------------
    def signal_if_ours(self, pid: int, sig: str, marker: str) -> bool:
        """Send `sig` to pid only if its command line still carries `marker`; True if it was sent."""
        cmd = script(
            "tr '\\0' '\\n' < /proc/{pid}/cmdline 2>/dev/null | grep -qxF -- {marker} && kill -{sig} {pid}",
            pid=int(pid), marker=marker, sig=sig,
        )
        return self.sh(cmd, check=False).rc == 0


def clean_remote_entry(entry: dict[str, Any]) -> list[str]:
    """Undo one hosts-state remote entry: kill its recorded node pids, remove the iptables chain and
    the run's keys."""
    host = NodeHost(
        node=str(entry["node"]), host=str(entry["host"]), user=str(entry["user"]),
        ssh_port=int(entry.get("ssh_port", 22)), key=entry.get("key"), python="python3",
        data_dir="", sudo=bool(entry.get("sudo", False)), port=int(entry.get("port", 7000)),
    )
    remote = Remote(host, known_hosts=str(entry.get("known_hosts", "~/.ssh/known_hosts")))
    done: list[str] = []
    try:
        for pid in entry.get("pids", []):
            remote.signal_if_ours(int(pid), "CONT", str(entry.get("marker", "")))
            if remote.signal_if_ours(int(pid), "KILL", str(entry.get("marker", ""))):
                done.append(f"killed pid {pid} on {host.node} ({host.host})")
        if entry.get("chain"):
            done += [f"{x} on {host.node} ({host.host})" for x in remote.chain_remove()]
        marker = str(entry.get("marker", ""))
        if marker.endswith("/cluster.json"):  # the runtime's nodes: their run's keys beside it
            keys = f"{marker.rsplit('/', 1)[0]}/keys"
            if remote.run(["rm", "-rf", keys], check=False).rc == 0:
                done.append(f"removed {keys} on {host.node} ({host.host})")
    finally:
        remote.close()
    return done
