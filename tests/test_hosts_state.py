"""The hosts state record and `harness cleanup`: exactly what was recorded is removed, nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness import hosts_state
from harness.cli_hosts import cleanup_cmd
from harness.hosts_state import HostsState, cleanup_state, load


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "well-known"
    monkeypatch.setenv("PICLUSTER_STATE_DIR", str(d))
    return d


class FakeIp:
    """Records every command; links in `existing` exist until deleted (unless listed as stuck)."""

    def __init__(self, existing: set[str], stuck: frozenset[str] = frozenset()) -> None:
        self.calls: list[list[str]] = []
        self.existing = existing
        self.stuck = stuck

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        rc = 0
        if argv[:3] == ["ip", "link", "show"]:
            rc = 0 if argv[-1] in self.existing else 1
        elif argv[:3] == ["ip", "link", "delete"]:
            rc = 1 if argv[-1] in self.stuck else 0
            if not rc:
                self.existing.discard(argv[-1])
        return subprocess.CompletedProcess(argv, rc, "", "")


def test_state_is_written_in_both_places_and_reads_back(tmp_path: Path, state_dir: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    s = HostsState(run_id="pcabcde", backend="netns", run_dir=str(run_dir), marker="/x/cluster.json")
    s.add_netns("pcabcde-n1")
    s.add_link("pcabcdebr")
    s.add_pid(12345)
    s.add_netns("pcabcde-n1")  # recorded once
    for path in (run_dir / "hosts-state.json", state_dir / "pcabcde.json"):
        d = json.loads(path.read_text())
        assert d["netns"] == ["pcabcde-n1"] and d["links"] == ["pcabcdebr"] and d["pids"] == [12345]
    back = load(state_dir / "pcabcde.json")
    assert back.to_json() == s.to_json()
    assert [p.name for p, _ in hosts_state.recorded_states()] == ["pcabcde.json"]


def test_cleanup_removes_only_recorded_names(tmp_path: Path, state_dir: Path) -> None:
    s = HostsState(run_id="pc00001", backend="netns", run_dir=str(tmp_path))
    s.add_link("pc00001br")
    s.add_netns("pc00001-n1")
    s.add_netns("pc00001-n2")
    s.add_link("pc00001h1")
    ip = FakeIp(existing={"pc00001br"})
    done = cleanup_state(s, run=ip)
    touched = [c for c in ip.calls if c[:3] != ["ip", "link", "show"]]
    assert touched == [
        ["ip", "netns", "delete", "pc00001-n1"],
        ["ip", "netns", "delete", "pc00001-n2"],
        ["ip", "link", "delete", "dev", "pc00001br"],  # h1 went with its namespace: not deleted twice
    ]
    assert not any(c[:3] == ["ip", "netns", "list"] or c[:3] == ["ip", "link", "list"] for c in ip.calls)
    assert "deleted link pc00001br" in done
    assert s.is_empty()
    assert not (state_dir / "pc00001.json").exists()
    assert json.loads((tmp_path / "hosts-state.json").read_text())["netns"] == []


def test_a_link_that_will_not_go_stays_recorded_and_is_reported(tmp_path: Path, state_dir: Path) -> None:
    s = HostsState(run_id="pc00003", backend="netns", run_dir=str(tmp_path))
    s.add_link("pc00003br")
    done = cleanup_state(s, run=FakeIp(existing={"pc00003br"}, stuck=frozenset({"pc00003br"})))
    assert any(line.startswith("FAILED to delete link pc00003br") for line in done)
    assert s.links == ["pc00003br"]


def test_cleanup_kills_a_recorded_pid_only_while_it_carries_the_marker(tmp_path: Path) -> None:
    marker = str(tmp_path / "cluster.json")
    code = "import sys; print('up', flush=True); sys.stdin.read()"
    ours = subprocess.Popen([sys.executable, "-c", code, marker], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    other = subprocess.Popen([sys.executable, "-c", code, "else"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for p in (ours, other):  # both are running python (not mid-exec) before cleanup looks at them
            assert p.stdout is not None and p.stdout.readline() == b"up\n"
        s = HostsState(run_id="pc00002", backend="netns", run_dir=str(tmp_path), marker=marker)
        s.add_pid(ours.pid)
        s.add_pid(other.pid)  # a recorded pid now reused by another program: must be left alone
        done = cleanup_state(s, run=FakeIp(set()))
        assert ours.wait(10) == -9
        assert other.poll() is None
        assert done == [f"killed pid {ours.pid}"]
        assert s.pids == []
    finally:
        for p in (ours, other):
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=10)


def test_a_remote_that_cannot_be_cleaned_stays_recorded(tmp_path: Path, state_dir: Path) -> None:
    s = HostsState(run_id="ssh-1", backend="ssh", run_dir=str(tmp_path))
    s.set_remote({"node": "n1", "host": "10.0.0.1"})
    s.set_remote({"node": "n2", "host": "10.0.0.2"})

    def cleaner(entry: dict[str, Any]) -> list[str]:
        if entry["node"] == "n2":
            raise RuntimeError("unreachable")
        return [f"removed chain PICLUSTER on {entry['node']}"]

    done = cleanup_state(s, run=FakeIp(set()), remote_cleaner=cleaner)
    assert "removed chain PICLUSTER on n1" in done
    assert any(x.startswith("FAILED on n2") for x in done)
    assert [r["node"] for r in s.remote] == ["n2"]
    assert (state_dir / "ssh-1.json").exists()  # kept for the next `harness cleanup`


def test_harness_alive() -> None:
    import os

    assert not hosts_state.harness_alive(os.getpid())  # ourselves: never "another live harness"
    assert not hosts_state.harness_alive(0)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(10)
    assert not hosts_state.harness_alive(p.pid)


def test_cleanup_command_skips_live_runs_and_reports(tmp_path: Path, state_dir: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(cleanup_cmd, [])
    assert r.exit_code == 0 and "nothing to clean" in r.output
    live = subprocess.Popen([sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None and live.stdout.readline() == "up\n"  # running python, not mid-exec
        s = HostsState(run_id="pc00003", backend="netns", run_dir="", harness_pid=live.pid)
        s.add_link("pc00003br-never-created")
        r = runner.invoke(cleanup_cmd, [])
        assert r.exit_code == 0 and "still running" in r.output
        assert (state_dir / "pc00003.json").exists()
    finally:
        live.kill()
        live.communicate(timeout=10)


def test_a_harness_is_alive_only_while_its_pid_has_the_recorded_start_time() -> None:
    live = subprocess.Popen([sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None and live.stdout.readline() == "up\n"
        started = hosts_state.start_time(live.pid)
        assert started is not None
        assert hosts_state.harness_alive(live.pid, started)
        assert not hosts_state.harness_alive(live.pid, started + 1)  # the pid now belongs to another process
        assert HostsState(run_id="x", backend="local", run_dir="", harness_pid=live.pid).harness_started == started
    finally:
        live.kill()
        live.communicate(timeout=10)
    assert hosts_state.start_time(live.pid) is None


def test_leftovers_name_live_node_pids_and_forget_records_of_dead_ones(tmp_path: Path, state_dir: Path) -> None:
    marker = str(tmp_path / "cluster.json")
    code = "import sys; print('up', flush=True); sys.stdin.read()"
    node = subprocess.Popen([sys.executable, "-c", code, marker], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    try:
        assert node.stdout is not None and node.stdout.readline() == b"up\n"
        gone_harness = dead.pid  # a harness that is no more
        left = HostsState(run_id="local-left", backend="local", run_dir=str(tmp_path), marker=marker,
                          harness_pid=gone_harness, harness_started=1)
        left.add_pid(node.pid)
        stale = HostsState(run_id="local-stale", backend="local", run_dir="", marker=marker,
                           harness_pid=gone_harness, harness_started=1)
        stale.add_pid(dead.pid)  # its only node is gone: nothing to clean
        found = hosts_state.leftovers()
        assert [s.run_id for s in found] == ["local-left"]
        assert hosts_state.describe(found[0]) == f"local run {tmp_path}: 1 node process"
        assert not (state_dir / "local-stale.json").exists()
        assert (state_dir / "local-left.json").exists()
    finally:
        node.kill()
        node.communicate(timeout=10)


def test_a_run_directory_of_the_older_local_record_is_read(tmp_path: Path) -> None:
    (tmp_path / "local-state.json").write_text(json.dumps(
        {"harness_pid": 1, "system": "echo", "cluster": "/r/cluster.json", "pids": {"n1": 11, "n2": 12}}))
    state = hosts_state.load_run_dir(tmp_path)
    assert state is not None
    assert (state.backend, state.marker, state.pids) == ("local", "/r/cluster.json", [11, 12])
    assert hosts_state.load_run_dir(tmp_path / "nothing-here") is None
