"""The ssh backend: quoting, the wheel, doctor's verdicts (pure), and, as root, a rehearsal on real
OpenSSH servers, one inside each of a few network namespaces, driven like the Raspberry Pis."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import support

from harness import doctor
from harness.backends import ssh_config
from harness.backends.ssh_deploy import build_wheel, msgpack_fallback_zip
from harness.backends.ssh_remote import HostKeyUnknown, HostUnreachable, Remote, script

ROOT = Path(__file__).resolve().parent.parent
SSHD = "/usr/sbin/sshd"


# -- pure parts ----------------------------------------------------------------------------------
def test_script_quotes_every_value() -> None:
    evil = "x'; rm -rf / #"
    cmd = script("cat {path} && echo {n}", path=evil, n=3)
    assert shlex.split(cmd) == ["cat", evil, "&&", "echo", "3"]


def test_wheel_holds_the_packages_and_a_valid_record(tmp_path: Path) -> None:
    import base64
    import hashlib

    wheel = build_wheel(tmp_path)
    assert wheel.name == "picluster-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "systems/runtime/node_main.py" in names
        assert "base/spec.py" in names  # the bottom layer every package imports
        assert "systems/echo/__init__.py" in names
        record = z.read("picluster-0.1.0.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if not digest:
                continue
            data = z.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}" and int(size) == len(data)
        assert not any("__pycache__" in n for n in names)


def test_msgpack_fallback_has_no_compiled_code() -> None:
    import io

    with zipfile.ZipFile(io.BytesIO(msgpack_fallback_zip())) as z:
        names = z.namelist()
    assert "msgpack/fallback.py" in names and "msgpack/__init__.py" in names
    assert all(n.endswith(".py") for n in names)


def test_doctor_verdicts_reject_what_is_not_ready() -> None:
    host = ssh_config.NodeHost("n1", "10.0.0.1", "pi", 22, None, "python3", "picluster", True, 7000)
    assert doctor.python_check("n1", "python3", "3.11\n").ok
    assert not doctor.python_check("n1", "python3", "3.9\n").ok
    assert not doctor.python_check("n1", "python3", "sh: python3: not found").ok
    assert doctor.iptables_check("n1", host, 0, "").ok
    bad = doctor.iptables_check("n1", host, 1, "sudo: a password is required")
    assert not bad.ok and "NOPASSWD" in bad.fix
    assert doctor.clock_check("n1", 100.0, 100.05, 100.1, 0.5).ok
    assert not doctor.clock_check("n1", 100.0, 103.0, 100.1, 0.5).ok
    assert not doctor.port_check("n1", host, 1, "Address already in use").ok
    checks = [doctor.Check("n1", "python", True, ""), doctor.Check("n1", "power cmds", False, "")]
    assert doctor.ready(checks)  # power commands are optional
    assert not doctor.ready([*checks, doctor.Check("n2", "reachable", False, "")])


def test_unreachable_host_is_named(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = ssh_config.NodeHost("n3", "127.0.0.1", "pi", port, None, "python3", "picluster", False, 7000)
    with pytest.raises(HostUnreachable, match=r"node n3 \(pi@127.0.0.1:\d+\)"):
        Remote(host, known_hosts=str(tmp_path / "known_hosts"), timeout_s=2.0).connect()


def test_ssh_backend_without_cluster_file_is_a_clear_error() -> None:
    from base.spec import TestSpec
    from harness.backends.ssh import make_backend

    spec = TestSpec(system="echo", workload="echo", nemesis=(), backend="ssh")

    async def body(c: Any) -> None:
        raise AssertionError("must not start")

    with pytest.raises(ssh_config.ClusterConfigError, match="--cluster"):
        make_backend().run(spec, body)


# -- the rehearsal (root) --------------------------------------------------------------------
WHY = "network namespaces, sshd, iptables"
needs_root = support.needs_root("ssh-keygen", SSHD, why=WHY)

POWER = '''\
"""Rehearsal power controller: `off NS` kills the node processes in namespace NS (not its sshd); `on NS` is
the host booting (its sshd never went away)."""
import os, signal, subprocess, sys
action, ns = sys.argv[1], sys.argv[2]
if action == "off":
    for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
        except OSError:
            continue
        if b"-m" in argv and any(a.startswith(b"systems.") for a in argv):
            os.kill(int(pid), signal.SIGKILL)
'''


@dataclass
class Rehearsal:
    dir: Path
    plan: Any
    key: Path
    known_hosts: Path
    power: Path

    def cluster_file(self, name: str = "cluster.toml", *, known_hosts: Path | None = None,
                     power: bool = True, switch: bool = True) -> Path:
        lines = [
            "[cluster]",
            'user = "root"',
            f"key = {json.dumps(str(self.key))}",
            f"known_hosts = {json.dumps(str(known_hosts or self.known_hosts))}",
            'python = "/usr/bin/python3"',
            "connect_timeout_s = 5",
            "boot_timeout_s = 20",
        ]
        if switch:
            lines += [f"switch_off = {json.dumps(['ip', 'link', 'set', self.plan.bridge, 'down'])}",
                      f"switch_on = {json.dumps(['ip', 'link', 'set', self.plan.bridge, 'up'])}"]
        for n in self.plan.nodes:
            lines += ["", f"[nodes.{n.node}]", f'host = "{n.ip}"',
                      f"data_dir = {json.dumps(str(self.dir / 'hosts' / n.node))}"]
            if power:
                lines += [f"power_off = {json.dumps([sys.executable, str(self.power), 'off', n.netns])}",
                          f"power_on = {json.dumps([sys.executable, str(self.power), 'on', n.netns])}",
                          f"link_down = {json.dumps(['ip', 'link', 'set', n.veth_host, 'down'])}",
                          f"link_up = {json.dumps(['ip', 'link', 'set', n.veth_host, 'up'])}"]
        path = self.dir / name
        path.write_text("\n".join(lines) + "\n")
        return path


def _wait_port(ip: str, port: int, proc: subprocess.Popen[bytes], log: Path, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sshd exited: {log.read_text()}"
        with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"sshd on {ip}:{port} did not come up: {log.read_text()}")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    reason = support.root_reason("ssh-keygen", SSHD, why=WHY)
    if reason:
        pytest.skip(reason)
    from harness.backends.netns import build_network, make_plan, teardown
    from harness.hosts_state import HostsState

    d = tmp_path_factory.mktemp("rehearsal")
    plan = make_plan(["n1", "n2", "n3"])
    state = HostsState(run_id=plan.prefix, backend="rehearsal", run_dir=str(d))
    sshds: list[subprocess.Popen[bytes]] = []
    try:
        build_network(plan, state)
        for n in plan.nodes:  # the hosts start as clean as a fresh Pi: without the netns backend's own chain
            for args in (["-D", "INPUT", "-j", "PICLUSTER"], ["-F", "PICLUSTER"], ["-X", "PICLUSTER"]):
                subprocess.run(["ip", "netns", "exec", n.netns, "iptables", "-w", *args], check=True)
        assert leftovers_of(plan) == []
        key = d / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (d / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
        known = []
        for n in plan.nodes:
            hk = d / f"host_{n.node}"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hk)], check=True)
            kind, b64 = Path(f"{hk}.pub").read_text().split()[:2]
            known.append(f"{n.ip} {kind} {b64}")
            cfg = d / f"sshd_{n.node}.conf"
            cfg.write_text("\n".join([
                f"ListenAddress {n.ip}:22", f"HostKey {hk}", f"AuthorizedKeysFile {d / 'authorized_keys'}",
                "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PidFile none",
                "Subsystem sftp internal-sftp", "MaxSessions 50", "MaxStartups 50",
            ]) + "\n")
            log = d / f"sshd_{n.node}.log"
            with log.open("wb") as out:
                sshds.append(subprocess.Popen(["ip", "netns", "exec", n.netns, SSHD, "-D", "-e", "-f", str(cfg)],
                                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            _wait_port(n.ip, 22, sshds[-1], log)
        (d / "known_hosts").write_text("\n".join(known) + "\n")
        (d / "power.py").write_text(POWER)
        yield Rehearsal(d, plan, key, d / "known_hosts", d / "power.py")
    finally:
        for p in sshds:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(10)
        teardown(state)


def node_pids_in(ns: str) -> list[int]:
    """Node processes (python -m systems.*) running in namespace ns."""
    out = []
    for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and b"-m" in argv and any(a.startswith(b"systems.") for a in argv):
            out.append(int(pid))
    return out


def leftovers(r: Rehearsal) -> list[str]:
    return leftovers_of(r.plan)


def leftovers_of(plan: Any) -> list[str]:
    out = []
    for n in plan.nodes:
        rules = subprocess.run(["ip", "netns", "exec", n.netns, "iptables", "-S"], capture_output=True,
                               text=True).stdout
        if "PICLUSTER" in rules:
            out.append(f"{n.node}: chain left: {rules}")
        if node_pids_in(n.netns):
            out.append(f"{n.node}: node processes left: {node_pids_in(n.netns)}")
    return out


def _hosts_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli_hosts", *args], cwd=str(ROOT), capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.root
@needs_root
def test_doctor_says_ready(rehearsal: Rehearsal) -> None:
    r = _hosts_cli("doctor", "--cluster", str(rehearsal.cluster_file()))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ready" in r.stdout and "FAIL" not in r.stdout


@pytest.mark.root
@needs_root
def test_doctor_and_backend_refuse_unknown_host_keys(rehearsal: Rehearsal) -> None:
    empty = rehearsal.dir / "empty_known_hosts"
    empty.write_text("")
    path = rehearsal.cluster_file("strict.toml", known_hosts=empty)
    r = _hosts_cli("doctor", "--cluster", str(path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "host key unknown" in r.stdout
    assert empty.read_text() == ""  # nothing was added behind our back
    n1 = ssh_config.load(path).nodes["n1"]
    with pytest.raises(HostKeyUnknown, match="node n1"):
        Remote(n1, known_hosts=str(empty)).connect()


@pytest.mark.root
@needs_root
def test_ssh_faults_for_real_and_nothing_left(rehearsal: Rehearsal, tmp_path: Path) -> None:
    from base.spec import TestSpec
    from harness.backends.ssh import NotConfigured, SshBackend
    from systems.runtime.api import RpcError

    spec = TestSpec(system="echo", workload="echo", nemesis=(), backend="ssh", node_count=3,
                    cluster_file=str(rehearsal.cluster_file()), run_dir=str(tmp_path / "run"))

    async def relay(c: Any, a: str, b: str, timeout: float) -> Any:
        return await c.client.call(a, "relay", {"to": b, "msg": "x", "timeout": timeout}, timeout=timeout + 1.0)

    async def body(c: Any) -> None:
        assert c.capabilities == {"kill", "pause", "partition", "links", "cable", "switch", "plug", "clock",
                                  "disk-fault"}
        assert c.capabilities == SshBackend.capabilities(spec)
        assert await relay(c, "n1", "n2", 3.0) == "x"
        await c.partition({"n2": ["n1"], "n1": ["n2"]})
        with pytest.raises(RpcError):
            await relay(c, "n1", "n2", 0.5)  # must be rejected: cut by iptables on the hosts
        assert await relay(c, "n3", "n2", 3.0) == "x"
        await c.heal()
        assert await relay(c, "n1", "n2", 3.0) == "x"
        old = c.pid("n3")
        await c.kill("n3")
        with pytest.raises(RpcError):
            await c.client.call("n3", "echo", 1, timeout=0.5)
        await c.restart("n3")
        assert c.pid("n3") != old
        assert await c.client.call("n3", "echo", 2, timeout=3.0) == 2
        await c.pause("n2")
        with pytest.raises(RpcError):
            await c.client.call("n2", "echo", 1, timeout=0.5)
        await c.resume("n2")
        assert await c.client.call("n2", "echo", 3, timeout=3.0) == 3
        await c.power_off("n1")
        assert node_pids_in(rehearsal.plan.node("n1").netns) == []
        await c.power_on("n1")
        assert await c.client.call("n1", "echo", 4, timeout=3.0) == 4
        await c.link_down("n2")
        with pytest.raises(RpcError):
            await c.client.call("n2", "echo", 1, timeout=0.5)
        await c.link_up("n2")
        assert await c.client.call("n2", "echo", 5, timeout=3.0) == 5
        await c.switch_off()
        with pytest.raises(RpcError):
            await c.client.call("n1", "echo", 1, timeout=0.5)
        await c.heal()
        assert await relay(c, "n2", "n1", 3.0) == "x"
        # the runtime's faults on a Pi: through the node's control channel, as on local
        assert (await c.set_clock("n2", {"jump_s": 30.0}))["offset_s"] == pytest.approx(30.0, abs=1.0)
        assert (await c.set_clock("n2", {"reset": True}))["offset_s"] == pytest.approx(0.0, abs=0.01)
        assert (await c.set_disk_fault("n3", {"fault": "enospc"}))["fault"] == "enospc"
        assert (await c.set_disk_fault("n3", None))["fault"] is None
        await c.lose_power("n3")
        await c.restart("n3")
        assert await c.client.call("n3", "echo", 6, timeout=3.0) == 6
        c.hardware.config = ssh_config.parse({"nodes": {"n1": {"host": "h", "user": "u"}}}, "no-commands.toml")
        with pytest.raises(NotConfigured, match="refused"):
            await c.switch_off()

    SshBackend().run(spec, body)
    run_dir = tmp_path / "run"
    assert leftovers(rehearsal) == []
    state = json.loads((run_dir / "hosts-state.json").read_text())
    assert state["remote"] == []
    for n in ("n1", "n2", "n3"):
        assert '"node-started"' in (run_dir / "nodes" / f"{n}.log").read_text()
    for n in ("n1", "n3"):  # power_off and lose_power arm a power loss the restarted node carries out
        assert '"disk-power-loss"' in (run_dir / "nodes" / f"{n}.log").read_text()
    assert '"clock-changed"' in (run_dir / "nodes" / "n2.log").read_text()


@pytest.mark.root
@needs_root
def test_an_unreachable_host_stops_the_run_naming_it(rehearsal: Rehearsal, tmp_path: Path) -> None:
    from base.spec import TestSpec
    from harness.backends.ssh import SshBackend

    path = rehearsal.cluster_file("n3-down.toml")
    path.write_text(path.read_text().replace("[nodes.n3]\n", "[nodes.n3]\nssh_port = 2222\n"))  # nobody there
    spec = TestSpec(system="echo", workload="echo", nemesis=(), backend="ssh", node_count=3,
                    cluster_file=str(path), run_dir=str(tmp_path / "run"))

    async def body(c: Any) -> None:
        raise AssertionError("must not start")

    with pytest.raises(HostUnreachable, match=r"node n3 \(root@[0-9.]+:2222\)"):
        SshBackend().run(spec, body)
    assert leftovers(rehearsal) == []
    assert json.loads((tmp_path / "run" / "hosts-state.json").read_text())["remote"] == []


@pytest.mark.root
@needs_root
def test_power_fault_without_commands_is_refused(rehearsal: Rehearsal, tmp_path: Path) -> None:
    from base.spec import TestSpec
    from harness.backends.ssh import NotConfigured, SshBackend

    spec = TestSpec(system="echo", workload="echo", nemesis=(), backend="ssh", node_count=2,
                    cluster_file=str(rehearsal.cluster_file("nopower.toml", power=False, switch=False)),
                    run_dir=str(tmp_path / "run"))

    async def body(c: Any) -> None:
        assert c.capabilities == {"kill", "pause", "partition", "links", "clock", "disk-fault"}  # no hardware faults
        with pytest.raises(NotConfigured, match="node n1"):
            await c.power_off("n1")
        with pytest.raises(NotConfigured, match="node n2"):
            await c.link_down("n2")
        with pytest.raises(NotConfigured, match="switch"):
            await c.switch_off()
        assert c.is_up("n1")
        assert await c.client.call("n1", "echo", 1, timeout=3.0) == 1

    SshBackend().run(spec, body)
    assert leftovers(rehearsal) == []


@pytest.mark.root
@pytest.mark.slow
@needs_root
def test_harness_run_on_ssh_with_partition_kill(rehearsal: Rehearsal, tmp_path: Path) -> None:
    from harness.registry import known_systems

    system = "heartbeat" if "heartbeat" in known_systems() else "echo"
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", system, "--backend", "ssh", "--cluster",
         str(rehearsal.cluster_file()), "--nemesis", "partition,kill", "--nodes", "3", "--time-limit", "12",
         "--interval", "2", "--quiet", "3", "--seed", "11", "--results", str(tmp_path)],
        cwd=str(ROOT), capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = next(p for p in (tmp_path / system).iterdir() if p.is_dir())
    assert json.loads((run_dir / "results.json").read_text())["valid"] is True
    fs = {json.loads(x)["f"] for x in (run_dir / "history.jsonl").read_text().splitlines() if '"nemesis"' in x}
    assert fs & {"start-partition", "kill"}, fs
    assert leftovers(rehearsal) == []
    assert json.loads((run_dir / "hosts-state.json").read_text())["remote"] == []


@pytest.mark.root
@pytest.mark.slow
@needs_root
def test_ctrl_c_during_an_ssh_run_leaves_nothing_on_the_hosts(rehearsal: Rehearsal, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "echo", "--backend", "ssh", "--cluster",
         str(rehearsal.cluster_file()), "--nemesis", "partition", "--nodes", "3", "--time-limit", "120",
         "--interval", "0.5", "--seed", "5", "--results", str(tmp_path)],
        cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        hist: Path | None = None
        while time.monotonic() < deadline:  # wait for a partition to be in place on the hosts
            found = list(tmp_path.glob("echo/*/history.jsonl"))
            if found and "start-partition" in found[0].read_text():
                hist = found[0]
                break
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.1)
        assert hist is not None, "no partition within the deadline"
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out
    assert leftovers(rehearsal) == []
    assert json.loads((hist.parent / "hosts-state.json").read_text())["remote"] == []


@pytest.mark.root
@needs_root
def test_cleanup_undoes_a_crashed_ssh_run(rehearsal: Rehearsal, tmp_path: Path) -> None:
    """A harness killed mid-run leaves nodes, chains and keys on the hosts; `cleanup RUN_DIR` removes them."""
    code = (
        "import asyncio, os, signal, sys\n"
        "from harness.backends.ssh import SshBackend\n"
        "from base.spec import TestSpec\n"
        f"spec = TestSpec(system='echo', workload='echo', nemesis=(), backend='ssh', node_count=2, "
        f"cluster_file={str(rehearsal.cluster_file())!r}, run_dir={str(tmp_path / 'run')!r})\n"
        "async def body(c):\n"
        "    await c.partition({'n1': ['n2']})\n"
        "    print('ready', flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "SshBackend().run(spec, body)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert r.returncode == -9 and "ready" in r.stdout, r.stdout + r.stderr
    assert leftovers(rehearsal) != []
    markers = [e["marker"] for e in json.loads((tmp_path / "run" / "hosts-state.json").read_text())["remote"]]
    key_dirs = [Path(m).parent / "keys" for m in markers]  # the hosts share this machine's file system
    assert len(key_dirs) == 2 and all(d.is_dir() and len(list(d.iterdir())) == 1 for d in key_dirs), key_dirs
    c = _hosts_cli("cleanup", str(tmp_path / "run"))
    assert c.returncode == 0, c.stdout + c.stderr
    assert "killed pid" in c.stdout and "removed chain" in c.stdout
    assert leftovers(rehearsal) == []
    assert not any(d.exists() for d in key_dirs), "each host's copy of its node's key should be gone"
