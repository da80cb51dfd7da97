"""The shared process-cluster lifecycle: network strategies (pure, fake hosts), and an external program
(not `python -m systems.*`) run as nodes by the same lifecycle, killed, paused, restarted and, on netns
(root), partitioned by iptables."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import needs_root, process_gone

from base.links import LinkFault
from base.spec import TestSpec
from harness.backends.lifecycle import Teardown
from harness.backends.local import LocalBackend
from harness.backends.networks import IptablesNetwork, NetState, NetworkFaultsRefused
from harness.backends.node_program import NodeSite
from systems.runtime.real import ClientEndpoint
from systems.runtime.real_transport import Address


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "well-known"
    monkeypatch.setenv("PICLUSTER_STATE_DIR", str(d))
    return d


# -- the teardown stack (pure) ----------------------------------------------------------------------
def test_teardown_runs_every_release_last_first_even_after_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    done: list[str] = []

    def fail() -> None:
        done.append("b")
        raise OSError("device busy")

    with pytest.raises(KeyError), Teardown() as td:
        td.push("a", lambda: done.append("a"))
        td.push("b", fail)
        td.push("c", lambda: done.append("c"))
        raise KeyError("the body failed")
    assert done == ["c", "b", "a"]
    assert "teardown: could not b: OSError('device busy')" in capsys.readouterr().err


# -- network strategies against fake hosts (pure) ---------------------------------------------------
class FakeChains:
    parallel = False

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    def install(self, node: str) -> None:
        self.calls.append(("install", node, []))

    def set_drops(self, node: str, sources: list[str]) -> None:
        self.calls.append(("drops", node, list(sources)))


class FakeFilter:
    carries_grudge = False

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    async def send(self, node: str, state: NetState) -> None:
        self.sent.append((node, state.version))

    async def send_all(self, nodes: list[str], state: NetState, running: Any) -> None:
        for n in nodes:
            if running(n):
                await self.send(n, state)


def test_iptables_network_rewrites_only_changed_hosts_and_sends_links_to_running_nodes() -> None:
    chains, flt = FakeChains(), FakeFilter()
    netw = IptablesNetwork(["n1", "n2", "n3"], chains, flt)  # type: ignore[arg-type]
    assert netw.capabilities == {"partition", "links"}
    s0 = NetState()
    s1 = NetState({"n1": ["n2"], "n2": ["n1"]}, {}, 1)
    s2 = NetState({"n1": ["n2"]}, {("n3", "n1"): LinkFault(drop=0.5)}, 2)
    running = {"n1": True, "n2": True, "n3": False}.__getitem__

    async def go() -> None:
        await netw.apply(s0, s1, running)
        assert chains.calls == [("drops", "n1", ["n2"]), ("drops", "n2", ["n1"])]
        assert flt.sent == []  # links unchanged: no control frames
        chains.calls.clear()
        await netw.apply(s1, s2, running)
        assert chains.calls == [("drops", "n2", [])]  # n1's rules stay as they are
        assert flt.sent == [("n1", 2), ("n2", 2)]  # n3 is not running: it gets the state on refresh
        await netw.refresh("n3", s2)
        assert flt.sent[-1] == ("n3", 2)
        chains.calls.clear()
        await netw.rewire("n1", s2)  # its host rebooted: the chain comes back with the current rules
        assert chains.calls == [("install", "n1", []), ("drops", "n1", ["n2"])]

    asyncio.run(go())
    assert s2.links_into("n1") == {"n3": LinkFault(drop=0.5).to_wire()}
    assert IptablesNetwork(["n1"], chains, None).capabilities == {"partition"}  # type: ignore[arg-type]


# -- an external program as nodes ------------------------------------------------------------------
SERVER = textwrap.dedent(
    """
    # A node that is not a runtime node: a line-based TCP server. It counts its starts in its data dir.
    import os, socket, sys, threading
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    data = args["data"]
    os.makedirs(data, exist_ok=True)
    path = os.path.join(data, "starts")
    starts = int(open(path).read()) + 1 if os.path.exists(path) else 1
    with open(path, "w") as f:
        f.write(str(starts))
        f.flush()
        os.fsync(f.fileno())
    srv = socket.create_server((args["host"], int(args["port"])))

    def serve(conn):
        with conn:
            line = conn.makefile().readline().split()
            if line[:1] == ["hello"]:
                conn.sendall(f"hello {os.getpid()} {starts}\\n".encode())
            elif line[:1] == ["relay"]:
                try:
                    socket.create_connection((line[1], int(line[2])), timeout=0.5).close()
                    conn.sendall(b"ok\\n")
                except OSError:
                    conn.sendall(b"fail\\n")

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    """
)


async def ask(addr: Address, line: str, timeout: float = 5.0) -> str:
    async def go() -> str:
        reader, writer = await asyncio.open_connection(*addr)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await reader.readline()).decode().strip()
        finally:
            writer.close()

    return await asyncio.wait_for(go(), timeout)


@dataclass(frozen=True)
class LineServer:
    """A `NodeProgram` that is an ordinary program: argv, a data dir to wipe, a TCP readiness probe."""

    script: str
    carries_filter: bool = False

    def argv(self, site: NodeSite) -> list[str]:
        return [site.python, self.script, f"host={site.host}", f"port={site.port}", f"data={site.data_dir}",
                self.marker(site.config_dir)]

    def config_files(self, addrs: dict[str, Address]) -> dict[str, str]:
        return {"servers.json": json.dumps({n: list(a) for n, a in addrs.items()})}

    def marker(self, config_dir: str) -> str:
        return f"run={config_dir}"

    def wipe(self, site: NodeSite) -> list[str]:
        return [site.data_dir]

    def port_taken(self, status: int | None) -> bool:
        return False

    async def probe(self, client: ClientEndpoint, site: NodeSite, pid: int) -> str | None:
        try:
            answer = await ask((site.host, site.port), "hello", timeout=0.5)
        except (OSError, TimeoutError) as e:
            return repr(e)
        return None if answer.startswith(f"hello {pid} ") else f"answered {answer!r}"


@pytest.mark.real
def test_an_external_program_is_killed_paused_and_restarted_by_the_same_lifecycle(tmp_path: Path) -> None:
    script = tmp_path / "line_server.py"
    script.write_text(SERVER)
    run_dir = tmp_path / "run"
    (run_dir / "data" / "n1").mkdir(parents=True)
    (run_dir / "data" / "n1" / "starts").write_text("41")  # stale data: wiped before the first start
    spec = TestSpec(system="external", workload="none", nemesis=(), node_count=2, run_dir=str(run_dir))
    seen: dict[str, Any] = {}

    async def body(c: Any) -> None:
        assert c.capabilities == {"kill", "pause", "corrupt"}  # no packet filter of its own, no iptables on local
        pid = c.pid("n1")
        assert await ask(c.addrs["n1"], "hello") == f"hello {pid} 1"
        await c.kill("n1")
        assert not c.is_up("n1")
        await c.restart("n1")
        assert await ask(c.addrs["n1"], "hello") == f"hello {c.pid('n1')} 2"  # same data dir, not wiped again
        await c.pause("n2")
        with pytest.raises(TimeoutError):
            await ask(c.addrs["n2"], "hello", timeout=0.5)
        await c.resume("n2")
        assert (await ask(c.addrs["n2"], "hello")).startswith("hello ")
        with pytest.raises(NetworkFaultsRefused, match="no packet filter"):
            await c.partition({"n1": ["n2"]})
        await c.pause("n1")
        seen["pids"] = [c.pid(n) for n in c.nodes]
        raise RuntimeError("the body failed with n1 paused")

    backend = LocalBackend()
    with pytest.raises(RuntimeError, match="n1 paused"):
        backend.run(spec, body, program=LineServer(str(script)))
    assert all(process_gone(p) for p in backend.last_pids) and len(backend.last_pids) == 3
    assert json.loads((run_dir / "hosts-state.json").read_text())["pids"] == []
    assert json.loads((run_dir / "servers.json").read_text()).keys() == {"n1", "n2"}


@pytest.mark.root
@needs_root()
def test_an_external_program_is_partitioned_by_iptables_on_netns(tmp_path: Path) -> None:
    from harness.backends.netns import NetnsBackend

    script = tmp_path / "line_server.py"
    script.write_text(SERVER)
    spec = TestSpec(system="external", workload="none", nemesis=(), node_count=3, run_dir=str(tmp_path / "run"))
    backend = NetnsBackend(python=sys.executable)

    async def relay(c: Any, a: str, b: str) -> str:
        host, port = c.addrs[b]
        return await ask(c.addrs[a], f"relay {host} {port}")

    async def body(c: Any) -> None:
        assert c.capabilities == {"kill", "pause", "partition", "cable", "switch", "plug", "corrupt"}  # no links
        assert await relay(c, "n1", "n2") == "ok"
        await c.partition({"n2": ["n1"]})
        assert await relay(c, "n1", "n2") == "fail"  # cut by iptables in n2's namespace
        assert await relay(c, "n3", "n2") == "ok"
        await c.power_off("n2")
        await c.power_on("n2")
        assert await relay(c, "n1", "n2") == "fail"  # the partition holds across the power cycle
        await c.heal()
        assert await relay(c, "n1", "n2") == "ok"

    backend.run(spec, body, program=LineServer(str(script)))
    assert backend.last_state is not None and backend.last_state.is_empty()
    names = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    assert not any(n.startswith(backend.last_plan.prefix) for n in names)  # type: ignore[union-attr]


@dataclass(frozen=True)
class LineServerOnLocal(LineServer):
    """The line server, telling the lifecycle where each node listens (what cgroup partitions need)."""

    addrs: dict[str, Address] = field(default_factory=dict)

    def config_files(self, addrs: dict[str, Address]) -> dict[str, str]:
        self.addrs.clear()
        self.addrs.update(addrs)
        return super().config_files(addrs)

    def endpoints(self, node: str) -> list[Address]:
        return [self.addrs[node]]


def pc_chains() -> list[str]:
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
    return [line for line in rules.splitlines() if "PC-" in line]


@pytest.mark.root
@needs_root("iptables-restore", why="iptables rules and a cgroup per node")
def test_an_external_program_is_partitioned_on_local_by_its_nodes_cgroups(tmp_path: Path) -> None:
    from harness.backends import cgroup_partitions

    if cgroup_partitions.cgroup2_root() is None:
        pytest.skip("needs a cgroup2 mount (cgroup v2)")
    script = tmp_path / "line_server.py"
    script.write_text(SERVER)
    spec = TestSpec(system="external", workload="none", nemesis=(), node_count=3, run_dir=str(tmp_path / "run"))
    backend = LocalBackend()
    seen: dict[str, Any] = {}

    async def relay(c: Any, a: str, b: str) -> str:
        host, port = c.addrs[b]
        return await ask(c.addrs[a], f"relay {host} {port}")

    async def body(c: Any) -> None:
        assert "partition" in c.capabilities and "links" not in c.capabilities
        seen["state"] = json.loads((tmp_path / "run" / "hosts-state.json").read_text())
        assert await relay(c, "n1", "n2") == "ok"
        await c.partition({"n2": ["n1"]})
        assert await relay(c, "n1", "n2") == "fail"  # n1's packets to n2 dropped by n1's cgroup
        assert await relay(c, "n2", "n1") == "fail"  # n1's answers on n2's connection too
        assert await relay(c, "n3", "n2") == "ok"
        assert await ask(c.addrs["n2"], "hello") != ""  # the harness's own client is never cut
        await c.kill("n1")
        await c.restart("n1")  # a restarted node joins its cgroup again
        assert await relay(c, "n1", "n2") == "fail"
        await c.heal()
        assert await relay(c, "n1", "n2") == "ok"
        assert await relay(c, "n2", "n1") == "ok"

    backend.run(spec, body, program=LineServerOnLocal(str(script)))
    assert len(seen["state"]["chains"]) == 4 and len(seen["state"]["cgroups"]) == 4  # top chain + one per node
    assert backend.last_state is not None and backend.last_state.is_empty()
    assert pc_chains() == [line for line in pc_chains() if not any(c in line for c in seen["state"]["chains"])]
    assert not any(Path(p).exists() for p in seen["state"]["cgroups"])


@pytest.mark.root
@needs_root("iptables-restore", why="iptables rules and a cgroup per node")
def test_cleanup_removes_the_chains_and_cgroups_a_killed_harness_left(tmp_path: Path) -> None:
    from harness.backends import cgroup_partitions
    from harness.hosts_state import HostsState, cleanup_state

    if cgroup_partitions.cgroup2_root() is None:
        pytest.skip("needs a cgroup2 mount (cgroup v2)")
    state = HostsState(run_id="local-c1ea0f", backend="local", run_dir=str(tmp_path), harness_pid=1)
    chains = cgroup_partitions.CgroupChains(state.run_id, ["n1", "n2"], lambda n: [("127.0.0.1", 1)], state)
    chains.prepare()
    chains.set_drops("n2", ["n1"])
    assert any(chains.top in line for line in pc_chains()) and Path(state.cgroups[-1]).is_dir()
    lines = cleanup_state(state)
    assert not any(line.startswith("FAILED") for line in lines), lines
    assert not any(chains.top in line for line in pc_chains())
    assert not chains.group.exists() and state.is_empty()
