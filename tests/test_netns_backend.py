"""The netns backend: its network plan (pure), the hardware fault packages (fake cluster), and,
as root, real namespaces: faults that really cut traffic, end-to-end runs, and nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import support
from support import process_gone, run_dir_of

from harness.backends import netns_commands as net
from nemesis import link, power, switch
from nemesis.package import NemesisContext, UnsupportedFault

ROOT = Path(__file__).resolve().parent.parent


HARNESS = [sys.executable, "-m", "harness.cli"]


needs_root = support.needs_root(why="creates network namespaces and iptables rules")


def pick_system() -> str:
    from harness.registry import known_systems

    # heartbeat is left out until its checker knows link-down/switch-off as faults that excuse suspicion
    for name in ("raft", "echo"):
        if name in known_systems():
            return name
    raise AssertionError("no system with a workload")


# -- the plan (pure) ----------------------------------------------------------------------------
def test_plan_names_fit_and_addresses_are_distinct() -> None:
    plan = net.make_plan("abcde", [f"n{i}" for i in range(1, 65)], ipaddress.ip_network("198.18.7.0/24"))
    names = [plan.bridge] + [n.veth_host for n in plan.nodes] + [n.veth_ns for n in plan.nodes]
    assert all(len(x) <= 15 for x in names)
    assert len(set(names)) == len(names)
    ips = [plan.bridge_ip] + [n.ip for n in plan.nodes]
    assert len(set(ips)) == len(ips)
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(plan.subnet) for ip in ips)
    assert all(n.netns.startswith("pcabcde-") for n in plan.nodes)


def test_plan_rejects_bad_token() -> None:
    with pytest.raises(net.PlanError):
        net.make_plan("xyz; rm", ["n1"], ipaddress.ip_network("198.18.7.0/24"))


def test_subnet_avoids_routes_and_addresses() -> None:
    routes = [
        "default via 192.0.2.1 dev eth0",
        "198.18.0.0/23 dev br0 proto kernel scope link src 198.18.0.1",
        "local 198.18.2.5 dev lo table local proto kernel scope host src 198.18.2.5",
    ]
    addrs = ["5: x    inet 198.18.3.9/24 brd 198.18.3.255 scope global x"]
    used = net.used_networks(routes, addrs)
    got = net.pick_subnet(used, 0)
    assert str(got) == "198.18.4.0/24"
    # wrapping: starting at the last candidate wraps to the first free one
    assert net.pick_subnet(used, len(net.CANDIDATES) - 1) == net.CANDIDATES[-1]


def test_subnet_exhaustion_is_an_error() -> None:
    with pytest.raises(net.PlanError):
        net.pick_subnet([ipaddress.ip_network("198.16.0.0/12")], 0)


def test_partition_rules_flush_our_chain_only_then_drop_sources() -> None:
    plan = net.make_plan("00001", ["n1", "n2", "n3"], ipaddress.ip_network("198.18.9.0/24"))
    cmds = net.partition_rules(plan, "n1", ["n3", "n2", "n3"])
    ns = plan.node("n1").netns
    assert cmds[0] == ["ip", "netns", "exec", ns, "iptables", "-w", "-F", "PICLUSTER"]
    assert cmds[1:] == [
        ["ip", "netns", "exec", ns, "iptables", "-w", "-A", "PICLUSTER", "-s", f"{plan.node(s).ip}/32", "-j", "DROP"]
        for s in ("n2", "n3")
    ]
    assert all("INPUT" not in c for c in cmds)  # healing never touches anything but our chain


# -- hardware packages against a fake cluster ----------------------------------------------------
class FakeHardware:
    def __init__(self) -> None:
        self.nodes = ["n1", "n2", "n3"]
        self.calls: list[tuple[str, Any]] = []

    async def link_down(self, node: str) -> None:
        self.calls.append(("link_down", node))

    async def link_up(self, node: str) -> None:
        self.calls.append(("link_up", node))

    async def switch_off(self) -> None:
        self.calls.append(("switch_off", None))

    async def switch_on(self) -> None:
        self.calls.append(("switch_on", None))

    async def power_off(self, node: str) -> None:
        self.calls.append(("power_off", node))

    async def power_on(self, node: str) -> None:
        self.calls.append(("power_on", node))


class Plain:
    def __init__(self) -> None:
        self.nodes = ["n1", "n2"]


def _ctx(cluster: Any) -> tuple[NemesisContext, list[tuple[str, Any]]]:
    recorded: list[tuple[str, Any]] = []
    ctx = NemesisContext(cluster=cluster, rng=random.Random(1), sink=lambda f, v, extra: recorded.append((f, v)))
    return ctx, recorded


@pytest.mark.parametrize(
    ("package", "calls", "ops"),
    [
        (link.PullCable, ["link_down", "link_up"], ["link-down", "link-up"]),
        (switch.Switch, ["switch_off", "switch_on"], ["switch-off", "switch-on"]),
        (power.Plug, ["power_off", "power_on"], ["power-off", "power-on"]),
    ],
)
def test_hardware_packages_inflict_record_and_cure(package: Any, calls: list[str], ops: list[str]) -> None:
    cluster = FakeHardware()
    ctx, recorded = _ctx(cluster)
    pkg = package()

    async def go() -> None:
        await pkg.start(ctx)
        await pkg.stop(ctx)
        await pkg.stop(ctx)  # a second stop cures nothing more

    asyncio.run(go())
    assert [c for c, _ in cluster.calls] == calls
    assert [f for f, _ in recorded] == ops
    if package is switch.Switch:
        assert [v for _, v in recorded] == [None, None]
    else:
        victim = cluster.calls[0][1]
        assert cluster.calls[1][1] == victim
        assert [v for _, v in recorded] == [[victim], [victim]]


@pytest.mark.parametrize("package", [link.PullCable, switch.Switch, power.Plug])
def test_hardware_packages_refuse_a_backend_without_the_method(package: Any) -> None:
    ctx, recorded = _ctx(Plain())
    with pytest.raises(UnsupportedFault, match=package.name):
        asyncio.run(package().start(ctx))
    assert recorded == []


# -- real namespaces (root) ---------------------------------------------------------------------
def leftovers(run_dir: Path) -> list[str]:
    """Anything the run's plan named that still exists on the machine, plus a non-empty state record."""
    plan = json.loads((run_dir / "netns-plan.json").read_text())
    out = []
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for node in plan["nodes"].values():
        if node["netns"] in namespaces:
            out.append(f"netns {node['netns']}")
        if subprocess.run(["ip", "link", "show", "dev", node["veth_host"]], capture_output=True).returncode == 0:
            out.append(f"link {node['veth_host']}")
    if subprocess.run(["ip", "link", "show", "dev", plan["bridge"]], capture_output=True).returncode == 0:
        out.append(f"bridge {plan['bridge']}")
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    if plan["subnet"] in routes:
        out.append(f"route {plan['subnet']}")
    state = json.loads((run_dir / "hosts-state.json").read_text())
    if state["netns"] or state["links"] or state["pids"]:
        out.append(f"state record not empty: {state}")
    from harness.hosts_state import state_dir

    if (state_dir() / f"{plan['prefix']}.json").exists():
        out.append("well-known state file still there")
    return out


@pytest.mark.root
@needs_root
def test_netns_faults_really_cut_traffic(tmp_path: Path) -> None:
    from base.spec import TestSpec
    from harness.backends.netns import NetnsBackend, rules
    from systems.runtime.api import RpcError

    spec = TestSpec(system="echo", workload="echo", nemesis=(), node_count=3, run_dir=str(tmp_path / "run"))
    backend = NetnsBackend()
    seen: dict[str, Any] = {}

    async def relay(c: Any, a: str, b: str, timeout: float) -> Any:
        return await c.client.call(a, "relay", {"to": b, "msg": "x", "timeout": timeout}, timeout=timeout + 1.0)

    async def body(c: Any) -> None:
        plan = backend.last_plan
        assert c.capabilities == {"kill", "pause", "partition", "links", "cable", "switch", "plug", "corrupt", "clock",
                                  "disk-fault"}
        assert await relay(c, "n1", "n2", 3.0) == "x"
        await c.partition({"n2": ["n1"], "n1": ["n2"]})
        assert "-s " + plan.node("n1").ip + "/32 -j DROP" in rules(plan, "n2")
        with pytest.raises(RpcError):
            await relay(c, "n1", "n2", 0.5)  # must be rejected: n1 and n2 are cut apart
        assert await relay(c, "n3", "n2", 3.0) == "x"  # n3 still reaches both
        assert await c.client.call("n2", "echo", 1, timeout=3.0) == 1  # the client is never partitioned
        await c.heal()
        assert "DROP" not in rules(plan, "n2")
        assert await relay(c, "n1", "n2", 3.0) == "x"
        await c.link_down("n3")
        with pytest.raises(RpcError):
            await c.client.call("n3", "echo", 1, timeout=0.5)
        await c.link_up("n3")
        assert await c.client.call("n3", "echo", 2, timeout=3.0) == 2
        await c.switch_off()
        with pytest.raises(RpcError):
            await c.client.call("n1", "echo", 1, timeout=0.5)
        await c.heal()  # heal brings the switch back too
        assert await relay(c, "n2", "n1", 3.0) == "x"
        old = c.pid("n1")
        await c.kill("n1")
        assert not c.is_up("n1")
        await c.restart("n1")
        assert c.pid("n1") != old
        assert await c.client.call("n1", "echo", 3, timeout=3.0) == 3
        await c.power_off("n2")
        assert not c.is_up("n2")
        await c.power_on("n2")
        assert await c.client.call("n2", "echo", 4, timeout=3.0) == 4
        seen["pids"] = [c.pid(n) for n in c.nodes]

    backend.run(spec, body)
    run_dir = tmp_path / "run"
    assert leftovers(run_dir) == []
    for pid in seen["pids"]:
        assert process_gone(pid)


@pytest.mark.root
@needs_root
def test_capture_records_traffic_between_nodes(tmp_path: Path) -> None:
    from base.spec import TestSpec
    from harness.backends.netns import NetnsBackend
    from harness.backends.netns_capture import read_pcap

    spec = TestSpec(system="echo", workload="echo", nemesis=(), node_count=2, run_dir=str(tmp_path / "run"))
    backend = NetnsBackend(capture=True)
    ips: dict[str, str] = {}

    async def body(c: Any) -> None:
        ips.update({n: backend.last_plan.node(n).ip for n in c.nodes})
        await c.switch_off()  # the capture survives the switch going down and up
        await c.switch_on()
        for _ in range(3):
            assert await c.client.call("n1", "relay", {"to": "n2", "msg": "x", "timeout": 3.0}, timeout=4.0) == "x"

    backend.run(spec, body)
    assert backend.last_capture is not None and backend.last_capture.error is None
    frames = read_pcap(tmp_path / "run" / "capture.pcap")
    pairs = set()
    for _, f in frames:
        if len(f) >= 34 and f[12:14] == b"\x08\x00":  # IPv4
            pairs.add((socket_ntoa(f[26:30]), socket_ntoa(f[30:34])))
    # forwarded between two nodes' ports, not only to and from the harness
    assert (ips["n1"], ips["n2"]) in pairs and (ips["n2"], ips["n1"]) in pairs
    assert leftovers(tmp_path / "run") == []


def socket_ntoa(b: bytes) -> str:
    return ".".join(str(x) for x in b)


@pytest.mark.root
@needs_root
def test_netns_teardown_after_an_exception_in_the_body(tmp_path: Path) -> None:
    from base.spec import TestSpec
    from harness.backends.netns import NetnsBackend

    spec = TestSpec(system="echo", workload="echo", nemesis=(), node_count=2, run_dir=str(tmp_path / "run"))

    async def body(c: Any) -> None:
        await c.partition({"n1": ["n2"]})
        await c.link_down("n2")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        NetnsBackend().run(spec, body)
    assert leftovers(tmp_path / "run") == []


def _harness(args: list[str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HARNESS, *args], cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, **kw,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    """Kill the harness if it still runs, reap it, and close its pipe (no unclosed-file warning later)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.root
@pytest.mark.slow
@needs_root
def test_harness_run_on_netns_with_partition_link_switch(tmp_path: Path) -> None:
    system = pick_system()
    root_rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    proc = _harness([
        "run", system, "--backend", "netns", "--nemesis", "partition,link,switch", "--nodes", "3",
        "--time-limit", "10", "--interval", "1.5", "--quiet", "2", "--seed", "7", "--results", str(tmp_path),
    ])
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        _stop(proc)
    assert proc.returncode == 0, out
    run_dir = run_dir_of(out)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    fs = [json.loads(line)["f"] for line in (run_dir / "history.jsonl").read_text().splitlines()
          if '"nemesis"' in line]
    assert "start-partition" in fs or "link-down" in fs or "switch-off" in fs, fs
    assert leftovers(run_dir) == []
    # the root namespace's firewall was never touched
    assert subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout == root_rules


@pytest.mark.root
@pytest.mark.slow
@needs_root
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_a_netns_run_leaves_nothing_behind(tmp_path: Path, sig: int) -> None:
    proc = _harness([
        "run", "echo", "--backend", "netns", "--nemesis", "partition,link", "--nodes", "3",
        "--time-limit", "60", "--interval", "0.5", "--seed", "3", "--results", str(tmp_path),
    ])
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        run_dir: Path | None = None
        # wait until the history shows a fault in place (or the run has clearly started)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("run directory "):
                run_dir = Path(line.removeprefix("run directory ").strip())
                break
        assert run_dir is not None, "".join(lines)
        hist = run_dir / "history.jsonl"
        while time.monotonic() < deadline:
            if hist.exists() and '"nemesis"' in hist.read_text():
                break
            assert proc.poll() is None, "".join(lines) + proc.stdout.read()
            time.sleep(0.1)
        else:
            raise AssertionError("no fault within the deadline")
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    # Ctrl-C is the CLI's "interrupted" (130); SIGTERM ends the backend with 128 + 15, as on `local`
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), "".join(lines) + out
    assert leftovers(run_dir) == []


@pytest.mark.root
@needs_root
def test_cleanup_removes_what_a_killed_harness_left(tmp_path: Path) -> None:
    """A harness SIGKILLed mid-run cleans nothing; `cleanup` then removes exactly what its record names."""
    from harness.hosts_state import cleanup_state, load

    proc = _harness([
        "run", "echo", "--backend", "netns", "--nemesis", "none", "--nodes", "2",
        "--time-limit", "60", "--results", str(tmp_path),
    ], start_new_session=True)
    run_dir: Path | None = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline and run_dir is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("run directory "):
                run_dir = Path(line.removeprefix("run directory ").strip())
        assert run_dir is not None, "".join(lines)
        while time.monotonic() < deadline:
            if (run_dir / "history.jsonl").exists() and (run_dir / "history.jsonl").stat().st_size > 0:
                break
            time.sleep(0.1)
        proc.kill()
        proc.wait()
    finally:
        _stop(proc)
    state = load(run_dir / "hosts-state.json")
    assert state.netns and state.pids, "the record should still name the namespaces and node pids"
    pids = list(state.pids)
    assert leftovers(run_dir) != []
    r = subprocess.run([sys.executable, "-m", "harness.cli_hosts", "cleanup", str(run_dir)], cwd=str(ROOT),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "deleted netns" in r.stdout and "killed pid" in r.stdout
    assert leftovers(run_dir) == []
    assert cleanup_state(load(run_dir / "hosts-state.json")) == []  # a second cleanup finds nothing
    for pid in pids:
        assert process_gone(pid)
    with contextlib.suppress(Exception):
        proc.stdout.close()  # type: ignore[union-attr]
