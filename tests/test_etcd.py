"""etcd through the harness.

Pure: the members' command lines and addresses, the refusals before a run
(sim, an unknown option, a fault the cluster cannot carry, etcd missing),
the workloads' conversions and outcome rules, and the checker of etcd's own
account (it must reject two leaders in a term, a term going back, diverged
stores).

Real (etcd members as processes on loopback; skipped without etcd): a
healthy run with linearizable reads ends valid, every workload gets a
verdict under faults, the lock checker catches a client that ignores its
lease, every etcd process is stopped even when a run fails, and `harness
cleanup` removes the members of a harness that was killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from checkers import etcd_status
from harness import registry
from systems import etcd
from workloads.etcd import _apply_appends, _fill_reads, failed_cas_as_reads
from workloads.etcd_client import outcome

HARNESS = [sys.executable, "-m", "harness.cli"]
ETCD_MISSING = shutil.which("etcd") is None
needs_etcd = pytest.mark.skipif(ETCD_MISSING, reason="etcd is not installed (apt-get install etcd-server)")


# -- the members (pure) ---------------------------------------------------------------------------------
def test_loopback_members_listen_for_peers_on_their_own_loopback_address() -> None:
    addrs = {"n1": ("127.0.0.1", 4001), "n2": ("127.0.0.1", 4002), "n3": ("127.0.0.1", 4003)}
    argv = etcd.argv("etcd", "n2", "/run/data/n2", "/run", addrs, dict(etcd.DEFAULT_OPTIONS))
    flag = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert flag["--listen-client-urls"] == "http://127.0.0.1:4002"
    assert flag["--listen-peer-urls"] == "http://127.0.1.2:4002"
    assert flag["--initial-cluster"] == ("n1=http://127.0.1.1:4001,n2=http://127.0.1.2:4002,"
                                         "n3=http://127.0.1.3:4003")
    assert flag["--data-dir"] == "/run/data/n2/etcd"
    assert etcd.marker("/run") in argv  # the run's marker, verbatim, as one argument
    assert etcd.wipe("/run/data/n2") == ["/run/data/n2/etcd"]


def test_members_elsewhere_use_the_next_port_for_peers() -> None:
    addrs = {"n1": ("198.18.4.2", 7000), "n2": ("198.18.4.3", 7000)}
    assert etcd.peer_address("n2", addrs) == ("198.18.4.3", 7001)
    doc = json.loads(etcd.config_files(addrs)["etcd-members.json"])
    assert doc["n1"] == {"client": "http://198.18.4.2:7000", "peer": "http://198.18.4.2:7001"}
    named = etcd.argv("etcd", "n1", "/d", "/c", {"n1": ("pi1.lan", 7000)}, dict(etcd.DEFAULT_OPTIONS))
    flag = dict(zip(named[1::2], named[2::2], strict=False))
    assert flag["--listen-peer-urls"] == "http://0.0.0.0:7001"  # etcd binds only IP literals
    assert flag["--initial-advertise-peer-urls"] == "http://pi1.lan:7001"


def test_health_answers() -> None:
    assert etcd.healthy(b'{"health":"true"}')
    assert not etcd.healthy(b'{"health":"false"}')
    assert not etcd.healthy(b"<html>")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"read_mode": "stale"}, "read_mode must be one of linearizable, serializable"),
        ({"nope": 1}, "etcd has no option 'nope'"),
        ({"lock_ttl_s": 0}, "lock_ttl_s must be a positive integer"),
        ({"heartbeat_ms": 300}, "at least 5 times heartbeat_ms"),
    ],
)
def test_bad_options_are_one_clear_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        etcd.check_options(options)


# -- refusals before a run (pure) -----------------------------------------------------------------------
def spec(**kw: Any) -> TestSpec:
    base: dict[str, Any] = {"system": "etcd", "workload": "register", "nemesis": (), "node_count": 3}
    return TestSpec(**{**base, **kw})


def test_etcd_is_an_external_system() -> None:
    assert "etcd" in registry.known_systems()
    assert registry.is_external("etcd") and not registry.is_external("raft")
    assert registry.node_program(spec(system="raft")) is None


def refuse(s: TestSpec) -> None:
    """What `harness run` checks before a run directory exists, in its order."""
    from harness.applicability import check_nemesis

    registry.check_options(s.system, s.backend, s.options)
    check_nemesis(s)
    registry.preflight(s)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"backend": "sim"}, "the sim backend cannot run etcd: its nodes are the external program `etcd`"),
        ({"nemesis": ("partition",)}, "the partition nemesis needs a cluster that can partition the network; "
                                      "the local backend's cannot: etcd's nodes are an external program, without "
                                      r"the runtime's packet filter, and partitions on local need root \(iptables "
                                      r"rules and a cgroup per node\) \(it runs on: netns, ssh\)"),
        ({"nemesis": ("flaky",), "backend": "netns"}, "the flaky nemesis needs a cluster that can degrade links; "
                                                      r".*\(it runs on: no backend\)"),
        ({"nemesis": ("leader-churn",), "backend": "netns"}, "the leader-churn nemesis steers by the runtime's "
                                                             "status RPC, which etcd's nodes"),
        ({"options": {"read_mode": "stale"}}, "read_mode must be one of"),
        ({"options": {"heartbeat_ms": 300}}, "at least 5 times heartbeat_ms"),
    ],
)
def test_what_etcd_cannot_do_is_refused_before_the_run(kw: dict[str, Any], message: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.backends.netns.preflight", lambda spec: None)  # root or not
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # local partitions need root: this user has none
    with pytest.raises(ValueError, match=message):
        refuse(spec(**kw))


def test_what_etcd_can_do_passes_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.backends import cgroup_partitions

    monkeypatch.setattr("harness.backends.netns.preflight", lambda spec: None)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    refuse(spec(nemesis=("kill", "pause", "power")))
    refuse(spec(backend="netns", nemesis=("partition", "kill", "pause", "power", "plug", "link", "switch")))
    local, netns = registry.capabilities(spec()), registry.capabilities(spec(backend="netns"))
    assert {"kill", "pause"} <= local and not {"partition", "links"} & local  # no packet filter, no root
    assert {"kill", "pause", "partition", "cable", "switch", "plug"} <= netns and "links" not in netns
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # as root, with a cgroup2 mount: partitions by cgroup
    monkeypatch.setattr(cgroup_partitions, "cgroup2_root", lambda mounts=None: Path("/sys/fs/cgroup"))
    refuse(spec(nemesis=("partition", "kill")))
    assert "partition" in registry.capabilities(spec()) and "links" not in registry.capabilities(spec())


def test_etcd_missing_is_refused_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(registry.RegistryError, match=r"no `etcd` program on PATH .*apt-get install etcd-server"):
        registry.preflight(spec())


def test_the_cli_refuses_sim_in_one_line_and_leaves_no_run_directory(tmp_path: Path) -> None:
    proc = subprocess.run([*HARNESS, "run", "etcd", "--backend", "sim", "--results", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 64
    assert proc.stdout.strip().count("\n") == 0 and "sim backend cannot run etcd" in proc.stdout
    assert not (tmp_path / "r").exists()


# -- the workloads' conversions and outcomes (pure) ------------------------------------------------------
def test_a_txn_reads_its_own_appends_and_the_lists_it_read() -> None:
    mops = [["r", "a", None], ["append", "a", 5], ["r", "a", None], ["append", "b", 6], ["r", "c", None]]
    lists = {"a": [1], "b": None, "c": [2, 3]}
    assert _fill_reads(mops, lists) == [["r", "a", [1]], ["append", "a", 5], ["r", "a", [1, 5]],
                                        ["append", "b", 6], ["r", "c", [2, 3]]]
    assert _apply_appends(mops, lists) == {"a": [1, 5], "b": [6], "c": [2, 3]}
    assert lists == {"a": [1], "b": None, "c": [2, 3]}  # untouched


def test_a_cas_that_failed_its_comparison_is_checked_as_the_read_it_made() -> None:
    history = [
        {"index": 0, "time": 1, "process": 0, "type": "invoke", "f": "cas", "key": "r1", "value": [1, 2]},
        {"index": 1, "time": 2, "process": 0, "type": "fail", "f": "cas", "key": "r1", "value": [1, 2],
         "error": "cas-mismatch", "read": 4},
        {"index": 2, "time": 3, "process": 1, "type": "invoke", "f": "cas", "key": "r1", "value": [4, 2]},
        {"index": 3, "time": 4, "process": 1, "type": "fail", "f": "cas", "key": "r1", "value": [4, 2],
         "error": "TimeoutError"},
        {"index": 4, "time": 5, "process": "nemesis", "type": "info", "f": "kill", "value": ["n1"]},
    ]
    out = failed_cas_as_reads(history)
    assert [(o["f"], o["type"], o["value"]) for o in out] == [
        ("read", "invoke", None), ("read", "ok", 4), ("cas", "invoke", [4, 2]), ("cas", "fail", [4, 2])]


@pytest.mark.parametrize(
    ("error", "writes", "kind"),
    [
        (TimeoutError(), False, "fail"),  # a read that timed out changed nothing
        (TimeoutError(), True, "info"),  # a write that timed out may still be applied
        (RuntimeError("UNAVAILABLE (etcdserver: request timed out)"), True, "info"),
        (RuntimeError("UNAVAILABLE (connections to all backends failing; Connection refused)"), True, "fail"),
        (RuntimeError("raft proposal dropped"), True, "fail"),
    ],
)
def test_outcomes_follow_jepsen(error: BaseException, writes: bool, kind: str) -> None:
    assert outcome(error, writes=writes)[0] == kind


# -- the checker of etcd's own account (pure) ------------------------------------------------------------
def status_history(*reports: tuple[float, str, str, str | None, int], final_hashes: dict[str, int] | None = None,
                   applied_term: int = 1) -> list[dict[str, Any]]:
    """(time, member, id, leader id, Raft term) per report; final_hashes: member -> hash at revision 9."""
    ops: list[dict[str, Any]] = []
    for i, (t, member, mid, leader, term) in enumerate(reports):
        value = {"member": member, "id": mid, "leader": leader, "raft_leader": leader, "term": term,
                 "applied_term": applied_term, "index": 1, "revision": 9}
        ops.append({"index": len(ops), "time": int(t * 1e9), "process": i, "type": "invoke", "f": "status",
                    "value": None, "node": member})
        ops.append({"index": len(ops), "time": int(t * 1e9) + 1000, "process": i, "type": "ok", "f": "status",
                    "value": value, "node": member})
    for member, h in (final_hashes or {}).items():
        value = {"member": member, "id": member, "leader": None, "applied_term": 9, "revision": 9,
                 "hash": {"revision": 9, "hash": h, "compact_revision": 0}}
        ops.append({"index": len(ops), "time": 10**11, "process": 99, "type": "invoke", "f": "status",
                    "value": None, "final": True})
        ops.append({"index": len(ops), "time": 10**11 + 1, "process": 99, "type": "ok", "f": "status",
                    "value": value})
    return ops


def test_the_members_account_is_valid_when_it_agrees() -> None:
    h = status_history((1, "n1", "a", "a", 2), (2, "n2", "b", "a", 2), (3, "n1", "a", "b", 3),
                       final_hashes={"n1": 7, "n2": 7})
    result = etcd_status.check(h)
    assert result["valid"] is True, result
    assert result["leaders_by_term"] == {"2": ["n1"], "3": ["n2"]}  # ids named by the members themselves
    assert "final store hashes agree" in result["summary"]


def test_two_leaders_in_one_term_are_rejected() -> None:
    h = status_history((1, "n1", "a", "a", 4), (2, "n2", "b", "b", 4))
    result = etcd_status.check(h)
    assert result["valid"] is False
    assert result["two_leaders"] == [{"term": 4, "leaders": ["n1", "n2"]}]


def test_a_term_going_back_is_rejected() -> None:
    h = status_history((1, "n1", "a", "a", 5), (2, "n1", "a", "a", 4))
    result = etcd_status.check(h)
    assert result["valid"] is False
    assert result["term_went_back"][0]["after_term"] == 5


def test_members_with_different_stores_at_one_revision_are_rejected() -> None:
    h = status_history((1, "n1", "a", "a", 2), final_hashes={"n1": 7, "n2": 8})
    result = etcd_status.check(h)
    assert result["valid"] is False and "different stores" in result["summary"]


def test_no_status_at_all_is_unknown() -> None:
    assert etcd_status.check([])["valid"] == "unknown"


def test_leaders_are_judged_by_the_raft_term_not_the_applied_one() -> None:
    """etcd's status API gives the term of the last applied entry: a new leader (n3, Raft term 3) that has not
    applied an entry of its term yet reports the old one, next to a follower still following n5. Not two
    leaders of one term; the Raft terms say so."""
    h = status_history((1, "n5", "e", "e", 2), (2, "n3", "c", "c", 3), (2.1, "n1", "a", "e", 2), applied_term=2)
    result = etcd_status.check(h)
    assert result["valid"] is True, result
    assert result["leaders_by_term"] == {"2": ["n5"], "3": ["n3"]}
    for op in h:
        if isinstance(op.get("value"), dict):
            del op["value"]["term"]  # members that did not expose their Raft node
    assert etcd_status.check(h)["valid"] == "unknown"


# -- real etcd members ----------------------------------------------------------------------------------
def marked_pids(marker: str) -> list[int]:
    """Live processes whose command line carries `marker` as one argument."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in args and state != "Z":
            found.append(int(entry.name))
    return found


def run_harness(root: Path, *args: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], Path]:
    proc = subprocess.run([*HARNESS, "run", "etcd", "--nodes", "3", "--quiet", "1", "--interval", "2",
                           "--results", str(root), *args], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("run directory ")]
    assert lines, proc.stdout + proc.stderr
    run_dir = Path(lines[0].removeprefix("run directory ").strip())
    assert marked_pids(etcd.marker(str(run_dir.resolve()))) == [], "etcd members outlived the run"
    return proc, run_dir


def results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.real
@needs_etcd
def test_a_healthy_run_with_linearizable_reads_is_valid(tmp_path: Path) -> None:
    proc, run_dir = run_harness(tmp_path, "--workload", "register", "--nemesis", "none", "--time-limit", "6",
                                "--seed", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = results(run_dir)
    assert r["valid"] is True
    assert r["checkers"]["linearizable"]["valid"] is True
    assert r["checkers"]["linearizable"]["read_mode"] == "linearizable"
    assert r["checkers"]["etcd-status"]["valid"] is True
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    oks = [op for op in history if op["type"] == "ok" and op["f"] in ("read", "write", "cas")]
    assert len(oks) > 20, "the clients hardly did anything"
    report = (run_dir / "report.html").read_text()
    assert "etcd: leaders by term" in report


@pytest.mark.real
@needs_etcd
@pytest.mark.parametrize(("workload", "nemesis", "checker"), [("list-append", "kill", "elle"),
                                                              ("lock", "pause", "lock"),
                                                              ("register", "kill,pause", "linearizable")])
def test_every_workload_gets_a_verdict_under_faults(tmp_path: Path, workload: str, nemesis: str,
                                                    checker: str) -> None:
    proc, run_dir = run_harness(tmp_path, "--workload", workload, "--nemesis", nemesis, "--time-limit", "12",
                                "--seed", "7")
    r = results(run_dir)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # a verdict, not unknown or a crash
    assert r["checkers"][checker]["valid"] in (True, False), r["checkers"][checker]
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert any(op["process"] == "nemesis" for op in history), "no fault happened"


@pytest.mark.real
@needs_etcd
def test_the_lock_checker_catches_a_client_that_ignores_its_lease(tmp_path: Path) -> None:
    proc, run_dir = run_harness(tmp_path, "--workload", "lock", "--nemesis", "none", "--time-limit", "12",
                                "--seed", "3", "--bug", "lock-no-keepalive", "--option", "lock_hold_s=5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lock = results(run_dir)["checkers"]["lock"]
    assert lock["valid"] is False
    first = lock["violations"][0]
    assert first["earlier_lease_lapsed"] is True  # the earlier holder's lease had run out: the client's fault


@pytest.mark.real
@needs_etcd
def test_members_are_killed_paused_restarted_and_always_stopped(tmp_path: Path) -> None:
    from harness.backends import cgroup_partitions
    from harness.backends.local import LocalBackend
    from workloads.etcd_client import Connections, member_status

    s = spec(run_dir=str(tmp_path / "run"), options=dict(etcd.DEFAULT_OPTIONS))
    program = registry.node_program(s)
    assert program is not None
    seen: dict[str, Any] = {}

    async def body(cluster: Any) -> None:
        assert {"kill", "pause"} <= cluster.capabilities and "links" not in cluster.capabilities  # no filter
        assert ("partition" in cluster.capabilities) == (not cgroup_partitions.missing())  # by cgroup, as root
        connections = Connections()
        try:
            before = await member_status(await connections.get(cluster.addrs["n1"]), cluster.addrs["n1"], 2.0)
            await cluster.kill("n1")
            await cluster.restart("n1")  # ready once its client port answers (it rejoins by itself)
            await cluster.pause("n2")
            await cluster.resume("n2")
            after = None
            for _ in range(100):
                try:
                    after = await member_status(await connections.get(cluster.addrs["n1"]), cluster.addrs["n1"], 1.0)
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            assert after is not None and after["id"] == before["id"] and after["term"] >= before["term"]
        finally:
            await connections.aclose()
        seen["marker"] = program.marker(str(cluster.run_dir))
        await cluster.pause("n3")
        raise RuntimeError("the body failed with n3 paused")

    backend = LocalBackend()
    with pytest.raises(RuntimeError, match="n3 paused"):
        backend.run(s, body, program=program)
    assert len(backend.last_pids) == 4  # three members and n1 again
    assert marked_pids(seen["marker"]) == []
    assert all(not Path(f"/proc/{p}").exists() or "Z" in Path(f"/proc/{p}/stat").read_text().split()[2]
               for p in backend.last_pids)
    assert os.path.isdir(tmp_path / "run" / "data" / "n1" / "etcd" / "member")


@pytest.mark.real
@needs_etcd
def test_members_of_a_killed_harness_are_found_and_removed_by_cleanup(tmp_path: Path) -> None:
    import signal
    import time

    harness = subprocess.Popen([*HARNESS, "run", "etcd", "--nodes", "3", "--nemesis", "none", "--time-limit", "120",
                                "--results", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    marker = ""
    try:
        assert harness.stdout is not None
        for line in harness.stdout:
            if line.startswith("run directory "):
                run_dir = Path(line.removeprefix("run directory ").strip()).resolve()
                marker = etcd.marker(str(run_dir))
                break
        deadline = time.monotonic() + 60
        while len(marked_pids(marker)) < 3 and time.monotonic() < deadline and harness.poll() is None:
            time.sleep(0.2)
        assert len(marked_pids(marker)) == 3, "the members never came up"
        harness.send_signal(signal.SIGKILL)  # the harness dies without a word; its members live on
        harness.wait(30)
        assert len(marked_pids(marker)) == 3
        cleanup = subprocess.run([*HARNESS, "cleanup", str(run_dir)], capture_output=True, text=True, timeout=60)
        assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
        assert cleanup.stdout.count("killed pid") == 3
        assert marked_pids(marker) == []
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(30)
        if harness.stdout is not None:
            harness.stdout.close()
        for pid in marked_pids(marker) if marker else []:  # whatever went wrong, no member outlives the test
            os.kill(pid, signal.SIGKILL)
