"""`harness run` refuses bad usage in one line, exit 64, before its `seed N` line and before any run directory.

Node options are the system's own (DEFAULT_OPTIONS keys, with their defaults' types) plus, on the sim
backend only, `sim` with the simulator's settings as harness/backends/sim.py reads them. `--rate 0`
is allowed and documented: unpaced, every client issues its next op as soon as its last one ends.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from base.history import pairs, read_history
from base.spec import TestSpec
from harness import registry
from harness.backends import sim
from harness.cli import cli
from systems.runtime.sim_net import NetConfig


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", *args, "--results", str(tmp_path / "results")])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["raft", "--option", "nosuch=1"], "system 'raft' has no option 'nosuch'; known: apply_wait_s"),
        (["raft", "--option", "tick_s=fast"], '--option tick_s: expected number like the default 0.1, got "fast"'),
        (["raft", "--option", "check_quorum=1"], "--option check_quorum: expected bool like the default true"),
        (["kv", "--option", "members=n1"], "--option members: expected list"),
        (["raft", "--option", 'sim={"loss": 0.1}'], "--option sim applies only to --backend sim, not local"),
        (["raft", "--backend", "sim", "--option", 'sim={"latency": 1}'], "--option sim: unknown key 'latency'"),
        (["raft", "--option", "novalue"], "--option wants KEY=VALUE"),
        (["raft", "--nemesis", "meteor"], "unknown nemesis"),
        (["raft", "--bug", "nosuch"], "no bug switch"),
        (["raft", "--workload", "nosuch"], "has no workload"),
        (["nosuch"], "unknown system"),
    ],
)
def test_bad_usage_is_one_line_before_any_seed_line(tmp_path: Path, args: list[str], says: str) -> None:
    code, out = run(tmp_path, *args)
    assert code == 64, out
    assert out.strip().splitlines() == [out.strip()], out  # one line
    assert out.startswith("error: ") and says in out, out
    assert "seed" not in out.split(says)[0]
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").glob("*/*"))


def test_good_options_pass() -> None:
    registry.check_options("raft", "local", {"tick_s": 1, "max_batch": 1, "read_mode": "log"})
    registry.check_options("kv", "sim", {"clock_skew_s": {"n1": 0.3}, "members": [], "sim": {"loss": 0.01}})


def test_the_sim_option_keys_are_the_ones_the_sim_backend_reads(tmp_path: Path) -> None:
    net_keys = {f.name for f in dataclasses.fields(NetConfig)}
    assert set(registry.SIM_OPTION_KEYS) == net_keys | set(sim._WORLD_KEYS)
    every = {"base_s": 0.001, "tail_s": 0.001, "loss": 0.01, "duplicate": 0.01, "reorder": True, "sync_s": 0.001,
             "time_limit_s": 100.0}
    assert set(every) == set(registry.SIM_OPTION_KEYS)
    net, world = sim.sim_settings(TestSpec(system="echo", workload="echo", nemesis=(), options={"sim": every}))
    assert net.loss == 0.01 and world == {"sync_s": 0.001, "time_limit_s": 100.0}


@pytest.mark.sim
def test_rate_zero_runs_unpaced(tmp_path: Path) -> None:
    code, out = run(tmp_path, "echo", "--backend", "sim", "--nodes", "2", "--nemesis", "none", "--time-limit", "2",
                    "--quiet", "0", "--rate", "0", "--seed", "1")
    assert code == 0, out
    run_dir = next((tmp_path / "results" / "echo").iterdir())
    ps = [p for p in pairs(read_history(run_dir / "history.jsonl").ops) if not p.invoke.get("final")]
    # back to back: each client's next op starts when its last one ends
    for process in {p.invoke["process"] for p in ps}:
        mine = [p for p in ps if p.invoke["process"] == process]
        assert all(b.invoke["time"] == a.complete["time"] for a, b in itertools.pairwise(mine))
    assert len(ps) > 20 * 2 * 5  # far more than the default 20 ops/s would give in 2 s
    assert "unpaced" in (run_dir / "report.html").read_text()
    assert json.loads((run_dir / "test.json").read_text())["rate"] == 0
