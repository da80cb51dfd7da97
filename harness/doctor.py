"""`harness doctor`: is every host in a cluster file ready for a run, and if not, what to fix.

Rules this module keeps:

- Each check is a pure verdict on what a host answered (`Check`: node,
  name, ok, detail, fix); the SSH calls that gather the answers are apart
  (`check_node`) so the verdict logic is testable without hosts.
- Checks per node: reachable over SSH with a known host key; python
  version (3.11 or newer); iptables usable without a password prompt (sudo
  -n when `sudo = true`); clock offset from this machine within
  `max_offset_s` (midpoint of the round trip); the node's port free on its
  address; the data directory writable. Cluster-wide: power and switch
  commands configured (informational: a run without them refuses those
  faults), and every program those commands and the link commands name
  found on this machine (where they run), each missing program reported
  once with the commands and nodes that use it.
- A host that cannot be reached gets one failed `reachable` check and no
  others, in one line: the SSH library's own log (tracebacks of a failed
  banner exchange, printed from its thread) is silenced, its error told in
  words. Nothing on a host is changed apart from creating the data
  directory.
- For an external system (`--system etcd`): on this machine, the program
  (`etcd --version`, 3.x), its client library (etcd3aio), a trial member
  (one etcd on a free loopback port until its /health says it serves; then
  stopped by its pid and its data removed) and, informational, whether
  partitions can be made (the netns backend's needs); on each host of a
  cluster file, the program's version over SSH.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness.backends.console import ConsoleScript
from harness.backends.ssh_config import NodeHost, SshClusterConfig
from harness.backends.ssh_deploy import home_path
from harness.backends.ssh_remote import HostUnreachable, Remote

MIN_PYTHON = (3, 11)


@dataclass(frozen=True, slots=True)
class Check:
    node: str
    name: str
    ok: bool
    detail: str
    fix: str = ""


def python_check(node: str, python: str, answer: str) -> Check:
    try:
        major, minor = (int(x) for x in answer.strip().split(".")[:2])
    except ValueError:
        return Check(node, "python", False, f"{python} did not run ({answer.strip()[:80]!r})",
                     f"install Python 3.11+ or set `python` for {node} in the cluster file")
    ok = (major, minor) >= MIN_PYTHON
    return Check(node, "python", ok, f"{python} is {major}.{minor}",
                 "" if ok else "install Python 3.11+ or point `python` at one")


def iptables_check(node: str, host: NodeHost, rc: int, err: str) -> Check:
    how = "sudo -n iptables" if host.sudo else "iptables"
    if rc == 0:
        return Check(node, "iptables", True, f"{how} works without a prompt")
    if "password" in err.lower():
        fix = f"allow it without a password: `{host.user} ALL=(root) NOPASSWD: /usr/sbin/iptables` in /etc/sudoers.d"
    elif "not found" in err.lower():
        fix = "install iptables (apt-get install iptables)"
    elif not host.sudo:
        fix = "log in as root or set `sudo = true` for this node"
    else:
        fix = "check that iptables runs on this host"
    return Check(node, "iptables", False, f"{how} failed: {err.strip()[:120]}", fix)


def clock_check(node: str, t0: float, remote_t: float, t1: float, max_offset_s: float) -> Check:
    offset = remote_t - (t0 + t1) / 2
    ok = abs(offset) <= max_offset_s + (t1 - t0) / 2
    return Check(node, "clock", ok, f"offset {offset * 1000:+.0f} ms (round trip {(t1 - t0) * 1000:.0f} ms)",
                 "" if ok else "run an NTP client (chrony, systemd-timesyncd) on every host")


def port_check(node: str, host: NodeHost, rc: int, err: str) -> Check:
    ok = rc == 0
    return Check(node, "port", ok, f"{host.host}:{host.port} " + ("is free" if ok else f"is not free: {err[-120:]}"),
                 "" if ok else f"stop what listens on port {host.port} (a node left running? `harness cleanup`) "
                               f"or set another `port`")


BIND = ("import socket, sys\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind((sys.argv[1], int(sys.argv[2])))\n")


def unreachable_words(text: str) -> str:
    """paramiko's "Error reading SSH protocol banner[Errno 104] Connection reset by peer", said plainly."""
    marker = "ssh failed: Error reading SSH protocol banner"
    if marker in text:
        head, _, why = text.partition(marker)
        why = why.strip() or "the connection closed"
        return f"{head}no SSH server answered there (no SSH banner: {why})"
    return text


def check_node(host: NodeHost, config: SshClusterConfig, max_offset_s: float = 0.5) -> list[Check]:
    node = host.node
    remote = Remote(host, known_hosts=config.known_hosts, accept_new=config.accept_new_host_keys,
                    timeout_s=config.connect_timeout_s)
    try:
        remote.connect()
    except HostUnreachable as e:
        return [Check(node, "reachable", False, unreachable_words(str(e)),
                      "check the address, that sshd runs, the key and known_hosts")]
    out = [Check(node, "reachable", True, f"{host.user}@{host.host}:{host.ssh_port}")]
    try:
        r = remote.run([host.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], check=False)
        out.append(python_check(node, host.python, r.out if r.rc == 0 else r.err or r.out))
        r = remote.iptables("-S", "INPUT", check=False)
        out.append(iptables_check(node, host, r.rc, r.err))
        t0 = time.time()
        r = remote.run([host.python, "-c", "import time; print(repr(time.time()))"], check=False)
        t1 = time.time()
        try:
            out.append(clock_check(node, t0, float(r.out.strip()), t1, max_offset_s))
        except ValueError:
            out.append(Check(node, "clock", False, f"could not read the clock: {r.err.strip()[:80]}"))
        r = remote.run([host.python, "-c", BIND, host.host, str(host.port)], check=False)
        out.append(port_check(node, host, r.rc, r.err.strip()))
        data = home_path(remote, host.data_dir)
        r = remote.sh(shlex.join(["mkdir", "-p", data]) + " && " + shlex.join(["test", "-w", data]), check=False)
        out.append(Check(node, "data dir", r.rc == 0, data,
                         "" if r.rc == 0 else "make the data directory writable by the login user"))
    except HostUnreachable as e:
        out.append(Check(node, "reachable", False, str(e), "the connection dropped during the checks"))
    finally:
        remote.close()
    return out


def cluster_checks(config: SshClusterConfig) -> list[Check]:
    out = []
    for h in config.nodes.values():
        ok = h.power_off is not None and h.power_on is not None
        out.append(Check(h.node, "power cmds", ok, "configured" if ok else "none: power faults will be refused",
                         "" if ok else "optional: set power_off/power_on (smart plug, uhubctl, PDU)"))
    ok = config.switch_off is not None and config.switch_on is not None
    out.append(Check("cluster", "switch cmds", ok, "configured" if ok else "none: switch faults will be refused",
                     "" if ok else "optional: set switch_off/switch_on in [cluster]"))
    return out + missing_programs(config)


NODE_COMMANDS = ("power_off", "power_on", "link_down", "link_up")


def missing_programs(config: SshClusterConfig) -> list[Check]:
    """One failed check per program that a power, switch or link command names and this machine lacks."""
    users: dict[str, list[tuple[str, str]]] = {}  # program -> (command name, node or "cluster")
    commands = [("switch_off", "cluster", config.switch_off), ("switch_on", "cluster", config.switch_on)]
    for h in config.nodes.values():
        commands += [(name, h.node, getattr(h, name, None)) for name in NODE_COMMANDS]
    for name, where, cmd in commands:
        program = cmd.console.program if isinstance(cmd, ConsoleScript) else cmd[0] if cmd else None
        if program and shutil.which(program) is None:
            users.setdefault(program, []).append((name, where))
    out = []
    for program, uses in users.items():
        names = sorted({n for n, _ in uses})
        wheres = sorted({w for _, w in uses}, key=lambda w: (len(w), w))
        check = "switch cmds" if all(n.startswith("switch") for n in names) else "power cmds"
        if any(n.startswith("link") for n in names):
            check = "link cmds" if all(n.startswith("link") for n in names) else "commands"
        out.append(Check(" ".join(wheres), check, False,
                         f"{program} (in {', '.join(names)}) not found on this machine, where these commands run",
                         f"install {program} or give its full path"))
    return out


def quiet_ssh_library() -> None:
    """paramiko logs a failed connection's tracebacks from its own thread; its errors reach us as exceptions."""
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


REQUIRED = ("reachable", "python", "iptables", "clock", "port", "data dir")


def ready(checks: list[Check]) -> bool:
    """Ready to run: every required check passed (power/switch commands are optional)."""
    return all(c.ok for c in checks if c.name in REQUIRED)


def run_doctor(config: SshClusterConfig, nodes: list[str] | None = None,
               checker: Callable[[NodeHost, SshClusterConfig], list[Check]] = check_node) -> list[Check]:
    quiet_ssh_library()
    hosts = [config.nodes[n] for n in (nodes or list(config.nodes))]
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        per_node = list(pool.map(lambda h: checker(h, config), hosts))
    return [c for checks in per_node for c in checks] + cluster_checks(config)


# -- external systems (etcd): is the program installed, does the client library load, does a member start -------
ETCD_MAJOR = 3
SYSTEM_REQUIRED = ("etcd", "etcd client", "etcd starts")


def etcd_version_check(node: str, rc: int, out: str, hint: str) -> Check:
    """`etcd --version` answered (rc, out): etcd 3.x is what the etcd workloads speak (its v3 gRPC API)."""
    found = re.search(r"etcd Version:\s*(\d+)\.(\d+)\.(\d+)", out)
    if rc != 0 or found is None:
        return Check(node, "etcd", False, f"`etcd --version` failed: {out.strip()[:100] or f'exit {rc}'}", hint)
    version = ".".join(found.groups())
    ok = int(found.group(1)) == ETCD_MAJOR
    return Check(node, "etcd", ok, f"etcd {version}",
                 "" if ok else "the etcd workloads speak etcd 3's v3 gRPC API: install etcd 3.x")


def etcd_client_check() -> Check:
    try:
        import etcd3aio
    except ImportError as e:
        return Check("here", "etcd client", False, f"etcd3aio does not import: {e}",
                     "pip install -e . (etcd3aio is a dependency)")
    return Check("here", "etcd client", True, f"etcd3aio {etcd3aio.__version__} (native gRPC)")


def etcd_start_check(timeout_s: float = 20.0) -> Check:
    """Start one etcd member on loopback, wait until /health says it serves, stop it, remove its data."""
    import asyncio
    import subprocess
    import tempfile

    from harness.backends.local import free_ports
    from harness.external import http_get
    from systems import etcd

    work = tempfile.mkdtemp(prefix="picluster-doctor-etcd-")
    addrs = {"n1": ("127.0.0.1", free_ports(1)[0])}
    argv = etcd.argv(etcd.EXTERNAL, "n1", f"{work}/data", work, addrs, dict(etcd.DEFAULT_OPTIONS))
    started = time.monotonic()
    try:
        with open(f"{work}/etcd.log", "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    except OSError as e:
        shutil.rmtree(work, ignore_errors=True)
        return Check("here", "etcd starts", False, f"could not run etcd: {e}", etcd.INSTALL_HINT)
    try:
        seen = "no answer"
        while time.monotonic() - started < timeout_s and proc.poll() is None:
            try:
                status, body = asyncio.run(http_get(*addrs["n1"], etcd.HEALTH_PATH, 0.5))
                if status == 200 and etcd.healthy(body):
                    took = time.monotonic() - started
                    return Check("here", "etcd starts", True, f"one member on loopback served in {took:.1f} s")
                seen = f"{status} {body[:60]!r}"
            except (OSError, TimeoutError) as e:
                seen = repr(e)
            time.sleep(0.1)
        with open(f"{work}/etcd.log", errors="replace") as f:
            tail = " | ".join(f.read().splitlines()[-3:])[-300:]
        why = f"exited {proc.returncode}" if proc.poll() is not None else f"not healthy in {timeout_s:g} s ({seen})"
        return Check("here", "etcd starts", False, f"a member on loopback {why}: {tail}",
                     "run the etcd command by hand to see why")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def partitions_check() -> Check:
    """Informational: an external program has no packet filter, so partitions need root here (a cgroup per
    member and iptables on local, or the netns backend)."""
    from harness.backends import cgroup_partitions
    from harness.backends.netns import missing_requirements

    local, netns = cgroup_partitions.missing(), missing_requirements()
    if not local:
        return Check("here", "partitions", True, "on local (by each member's cgroup) and on netns"
                     if not netns else "on local (by each member's cgroup)", "")
    return Check("here", "partitions", not netns,
                 "on netns only (local needs " + "; ".join(local) + ")" if not netns else "needs " + "; ".join(netns),
                 "" if not netns else "optional: partitions of an external system need root (local or netns) or ssh")


def system_checks(system: str) -> list[Check]:
    """This machine, for an external system: the program, its client library, a trial member, partitions."""
    if system != "etcd":
        raise ValueError(f"doctor knows no installation checks for {system!r} (known: etcd)")
    from systems import etcd

    try:
        r = subprocess_run([etcd.EXTERNAL, "--version"])
        version = etcd_version_check("here", r[0], r[1], etcd.INSTALL_HINT)
    except OSError as e:
        version = Check("here", "etcd", False, f"no `{etcd.EXTERNAL}` program: {e.strerror}", etcd.INSTALL_HINT)
    out = [version, etcd_client_check()]
    if version.ok:
        out.append(etcd_start_check())
    return [*out, partitions_check()]


def subprocess_run(argv: list[str], timeout_s: float = 10.0) -> tuple[int, str]:
    import subprocess

    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    return r.returncode, r.stdout + r.stderr


def host_system_checks(system: str, config: SshClusterConfig, nodes: list[str] | None = None) -> list[Check]:
    """Each host of a cluster file, for an external system: is its program there (etcd 3.x)?"""
    from systems import etcd

    def one(host: NodeHost) -> Check:
        remote = Remote(host, known_hosts=config.known_hosts, accept_new=config.accept_new_host_keys,
                        timeout_s=config.connect_timeout_s)
        try:
            remote.connect()
            r = remote.run([etcd.EXTERNAL, "--version"], check=False)
            return etcd_version_check(host.node, r.rc, r.out + r.err, etcd.INSTALL_HINT)
        except HostUnreachable as e:
            return Check(host.node, "etcd", False, f"could not ask: {e}", "see the `reachable` row")
        finally:
            remote.close()

    hosts = [config.nodes[n] for n in (nodes or list(config.nodes))]
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return list(pool.map(one, hosts))


def system_ready(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.name in SYSTEM_REQUIRED)
