"""Sweeps: seeds, replay commands, swarm draws, scripts, the page; then small sweeps through the real CLI.

The pure parts first (fast); the sim tier runs real sweeps of a few short seeds through `harness sweep` on
local worker processes and checks what they wrote, their exit codes, that a swarm seed replays alone from
`harness run --swarm`, and that an explicit schedule is played as written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from base.spec import TestSpec
from harness.sweep import Outcome, SweepPlan, parse_seeds, replay_command
from harness.sweep_page import list_sweeps, render, sweeps_section
from harness.sweep_run import anomaly_kinds, pack, unpack
from harness.sweep_swarm import draw
from nemesis.catalog import VOCABULARY
from nemesis.schedule import Pace, Script, deal

HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=timeout)


# -- seeds and replay commands ---------------------------------------------------------------------


def test_seeds_are_ranges_and_lists_without_repeats() -> None:
    assert parse_seeds("1-5") == (1, 2, 3, 4, 5)
    assert parse_seeds("7") == (7,)
    assert parse_seeds("1,5,9-11,5") == (1, 5, 9, 10, 11)
    for bad in ("", "a-3", "5-1", "1-", "-3", "1,,2"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_a_seeds_replay_command_gives_only_what_differs_from_the_defaults() -> None:
    spec = TestSpec(system="raft", workload="register", nemesis=("leader-isolate",), backend="sim", seed=9,
                    time_limit_s=10.0, bugs=("stale-read",), options={"max_batch": 1, "tick_s": 0.1})
    assert replay_command(spec) == ("harness run raft --backend sim --seed 9 --nemesis leader-isolate "
                                    "--time-limit 10 --option max_batch=1 --bug stale-read")


def test_a_swarm_seeds_replay_command_is_the_seed_and_what_the_user_pinned() -> None:
    base = TestSpec(system="raft", workload="register", nemesis=("partition",), backend="sim", time_limit_s=12.0,
                    bugs=("stale-read",))
    plan = SweepPlan(base=base, seeds=(4,), swarm=True, pinned=frozenset({"time_limit_s"}))
    spec = plan.spec_for(4)
    assert spec.command_line == "harness run raft --backend sim --seed 4 --swarm --time-limit 12 --bug stale-read"
    assert spec.time_limit_s == 12.0 and spec.swarm["seed"] == 4


# -- swarm ---------------------------------------------------------------------------------------------


def spec_of(system: str, seed: int, **kw: Any) -> TestSpec:
    return TestSpec(**{"system": system, "workload": "register" if system == "raft" else "set",
                       "nemesis": ("partition",), "backend": "sim", "seed": seed, **kw})


def test_a_swarm_draw_is_a_function_of_the_seed() -> None:
    a, b = draw(spec_of("raft", 5)), draw(spec_of("raft", 5))
    assert a == b and a.swarm == b.swarm
    draws = [draw(spec_of("raft", s)) for s in range(1, 41)]
    assert len({d.nemesis for d in draws}) > 10, "the fault mix should differ from seed to seed"
    assert {d.node_count for d in draws} == {3, 5}
    assert len({d.options["max_batch"] for d in draws}) > 1, "raft's SWARM_OPTIONS should be drawn"
    assert len({d.workload for d in draws}) == 3


def test_a_swarm_draws_only_packages_that_apply() -> None:
    for seed in range(1, 60):
        d = draw(spec_of("raft", seed))
        assert d.nemesis, "at least one package"
        if d.node_count < 5:
            assert "figure8" not in d.nemesis
        assert not {"cut-replicas", "split-replicas", "membership", "link", "switch", "plug"} & set(d.nemesis)
        assert set(d.pace["weights"]) == set(d.nemesis)
        Pace.from_json(d.pace)  # a well-formed pace
    for seed in range(1, 30):
        assert not {"figure8", "voter-crash", "leader-isolate"} & set(draw(spec_of("kv", seed)).nemesis)


def test_a_mapreduce_swarm_draws_a_bigger_corpus_and_duplicated_frames_on_sim_only() -> None:
    def spec(seed: int, backend: str) -> TestSpec:
        return TestSpec(system="mapreduce", workload="jobs", nemesis=("partition",), backend=backend, seed=seed)

    draws = [draw(spec(s, "sim")) for s in range(1, 41)]
    assert {d.options["corpus_bytes"] for d in draws} == {120_000, 400_000}
    assert {d.options["sim"].get("duplicate", 0.0) for d in draws} == {0.0, 0.05}, "double-commit needs duplicates"
    for seed in range(1, 11):
        on_sim, local = draw(spec(seed, "sim")), draw(spec(seed, "local"))
        assert "sim" not in local.options and "sim" not in local.swarm["options"]
        assert local.options["corpus_bytes"] == on_sim.options["corpus_bytes"]
        assert (local.workload, local.rate, local.pace["hold"]) == (on_sim.workload, on_sim.rate, on_sim.pace["hold"])


def test_pinning_a_setting_keeps_it_and_leaves_the_other_draws_alone() -> None:
    free = draw(spec_of("raft", 11))
    pinned = draw(spec_of("raft", 11, node_count=5, time_limit_s=7.0), frozenset({"node_count", "time_limit_s"}))
    assert pinned.node_count == 5 and pinned.time_limit_s == 7.0
    assert pinned.workload == free.workload and pinned.rate == free.rate and pinned.pace["hold"] == free.pace["hold"]
    pool = draw(spec_of("raft", 11, nemesis=("kill", "pause")), frozenset({"nemesis"}))
    assert set(pool.nemesis) <= {"kill", "pause"}
    with pytest.raises(ValueError, match="cannot pin"):
        draw(spec_of("raft", 1), frozenset({"seed"}))


# -- pace and scripts ------------------------------------------------------------------------------------


def test_the_default_pace_deals_as_the_schedule_always_did() -> None:
    import random

    names = ["kill", "pause", "partition"]
    old, new = random.Random(3), random.Random(3)
    rounds_old = []
    for _ in range(5):
        deck = list(names)
        old.shuffle(deck)
        rounds_old += deck
    dealt = deal(names, new)  # type: ignore[arg-type]
    assert [next(dealt) for _ in range(15)] == rounds_old
    assert Pace.from_json({}) == Pace() and Pace.from_json(Pace().to_json()) == Pace()
    for bad in ({"hold": [2, 1]}, {"healthy": "x"}, {"weights": {"kill": -1}}, {"speed": 1}):
        with pytest.raises(ValueError, match="pace"):
            Pace.from_json(bad)


def test_a_script_reads_back_what_it_wrote_and_refuses_what_cannot_be_played() -> None:
    rows = [
        {"package": "kill", "start_s": 1.0, "stop_s": 2.5, "inflict": {"f": "kill", "value": ["n2"]}},
        {"package": "partition", "start_s": 3.0, "stop_s": None,
         "inflict": {"f": "start-partition", "value": {"n1": ["n2"], "n2": ["n1"]}, "shape": "halves"}},
        {"package": "leader-isolate", "start_s": 4.0, "stop_s": 9.0},
    ]
    script = Script.from_json({"faults": rows})
    assert script.to_json() == rows and script.packages() == ("kill", "partition", "leader-isolate")
    script.check(["n1", "n2", "n3"], VOCABULARY)
    with pytest.raises(ValueError, match="not in this cluster"):
        script.check(["n1", "n3"], VOCABULARY)
    bad = [
        ({"faults": "x"}, "list of faults"),
        ([{"package": "kill", "start_s": -1}], "start_s"),
        ([{"package": "kill", "start_s": 2, "stop_s": 1}], "stop_s"),
        ([{"package": "kill", "start_s": 2, "when": 1}], "unknown key"),
        ([{"package": "kill", "start_s": 2, "inflict": {"value": 1}}], "inflict"),
    ]
    for data, words in bad:
        with pytest.raises(ValueError, match=words):
            Script.from_json(data)
    with pytest.raises(ValueError, match="no fault kind starts"):
        Script.from_json([{"package": "kill", "start_s": 1, "inflict": {"f": "explode", "value": []}}]).check(
            ["n1"], VOCABULARY)
    with pytest.raises(ValueError, match="cannot be replayed"):
        Script.from_json([{"package": "membership", "start_s": 1, "inflict": {"f": "leave", "value": ["n1"]}}]).check(
            ["n1"], VOCABULARY)
    with pytest.raises(ValueError, match="twice at once"):
        Script.from_json([{"package": "figure8", "start_s": 1, "stop_s": 5},
                          {"package": "figure8", "start_s": 4, "stop_s": 8}]).check(["n1"], VOCABULARY)


# -- rows and the page -------------------------------------------------------------------------------------


def test_anomaly_kinds_name_what_each_failing_checker_found() -> None:
    results = {"checkers": {
        "elle": {"valid": False, "anomalies": {"G-single": [1], "G1c": [2]}},
        "heartbeat": {"valid": False, "violation_counts": {"false_dead": 3, "missed_detections": 0}},
        "raft-safety": {"valid": False, "two_leaders": [{"term": 3}], "term_conflicts": [], "stable": [{"x": 1}]},
        "linearizable": {"valid": False, "failures": ["r1"]},
        "kv-set": {"valid": True, "lost": [{"e": 1}]},
        "designed": {"valid": False, "expected": False, "as_designed": True},
    }}
    assert anomaly_kinds(results) == ["elle: G-single", "elle: G1c", "heartbeat: false_dead",
                                      "raft-safety: two_leaders", "linearizable"]


def test_run_files_travel_compressed_and_land_only_inside_the_target(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "nodes").mkdir(parents=True)
    (src / "history.jsonl").write_text("{}\n")
    (src / "nodes" / "n1.log").write_text("x" * 1000)
    files = pack(src)
    unpack(files, tmp_path / "dst")
    assert (tmp_path / "dst" / "nodes" / "n1.log").read_text() == "x" * 1000
    with pytest.raises(ValueError, match="outside"):
        unpack({"../evil": files["history.jsonl"]}, tmp_path / "dst")


def test_the_page_puts_failing_seeds_first_in_full_and_escapes_everything(tmp_path: Path) -> None:
    rows = [
        {"seed": 2, "verdict": "valid", "ops": 10, "faults": "kill x1", "cpu_s": 1.0},
        {"seed": 1, "verdict": "invalid", "anomalies": ["linearizable"], "failing": {"linearizable": "<b>bad</b>"},
         "run": "runs/1", "replay": "harness run raft --seed 1", "cpu_s": 2.0},
        {"seed": 3, "verdict": "unknown", "failing": {"faults": "no fault took effect"}, "cpu_s": 1.5},
    ]
    page = render({"system": "raft", "seeds": 3, "counts": Outcome(rows).counts}, rows)
    assert page.index("runs/1/report.html") < page.index("Passing seeds")
    assert "&lt;b&gt;bad&lt;/b&gt;" in page and "<b>bad</b>" not in page
    assert "no fault took effect" in page and "harness run raft --seed 1" in page
    assert Outcome(rows).exit_code == 1
    assert Outcome([rows[0], rows[2]]).exit_code == 2, "unknown is never counted as passing"
    assert Outcome([rows[0]]).exit_code == 0
    assert Outcome([rows[0], {"seed": 4, "verdict": "error"}]).exit_code == 3
    sweep = tmp_path / "raft" / "sweeps" / "20260101T000000"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"system": "raft", "seeds": 3, "done": 3, "counts": {"invalid": 1}}))
    assert [s["path"] for s in list_sweeps(tmp_path)] == ["raft/sweeps/20260101T000000"]
    assert "raft/sweeps/20260101T000000/index.html" in sweeps_section(tmp_path)
    assert sweeps_section(tmp_path / "nothing") == ""


def test_bad_sweep_input_is_one_line_and_exit_64(tmp_path: Path) -> None:
    for args, words in [
        (["raft", "--seeds", "9-1"], "--seeds"),
        (["nosuch", "--seeds", "1"], "unknown system"),
        (["raft", "--seeds", "1", "--bug", "nosuch"], "no bug switch"),
        (["raft", "--seeds", "1", "--nemesis", "cut-replicas"], "kv only"),
        (["raft", "--seeds", "1", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers"),
        (["raft", "--seeds", "1", "--scheduler", "tcp://127.0.0.1:1"], "cannot reach the Dask scheduler"),
        (["raft", "--seeds", "1", "--option", "nosuch=1"], "no option 'nosuch'"),
        (["etcd", "--seeds", "1"], "cannot run etcd"),
    ]:
        proc = harness("sweep", *args, "--results", str(tmp_path), timeout=120)
        assert proc.returncode == 64, (args, proc.stdout, proc.stderr)
        assert words in proc.stdout and len(proc.stdout.strip().splitlines()) == 1, proc.stdout
    assert not (tmp_path / "raft").exists() and not (tmp_path / "etcd").exists()


def test_bad_schedule_files_are_one_line_and_exit_64(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"faults": [{"package": "kill", "start_s": 1, "inflict": {"f": "kill", "value": ["n9"]}}]}')
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    for path, words in [(bad, "n9"), (broken, "not valid JSON"), (tmp_path / "none.json", "cannot read")]:
        proc = harness("run", "raft", "--backend", "sim", "--schedule", str(path), "--results", str(tmp_path))
        assert proc.returncode == 64 and words in proc.stdout, proc.stdout
    proc = harness("run", "raft", "--backend", "sim", "--swarm", "--schedule", str(bad), "--results", str(tmp_path))
    assert proc.returncode == 64 and "one of them" in proc.stdout


def test_every_planted_bug_says_how_it_is_exposed_and_harness_systems_prints_it() -> None:
    from harness import registry
    from harness.sweep_exposure import exposed_spec, exposures

    with_bugs = [s for s in registry.known_systems() if registry.bugs(s)]
    assert {"heartbeat", "raft", "kv", "dfs", "etcd"} <= set(with_bugs)
    for system in with_bugs:
        declared = exposures(system)
        assert declared and all(declared.values()), f"{system}: every bug declares its exposure"
        for bug, settings in declared.items():
            spec = exposed_spec(spec_of(system, 1, bugs=(bug,)), settings)
            assert spec.nemesis == tuple(settings["nemesis"]) and spec.bugs == (bug,)
            # sim runs every system but an external program, whose exposure names a real backend
            assert (settings.get("backend", "sim") == "sim") is not registry.is_external(system), (system, bug)
    proc = harness("systems", timeout=120)
    assert proc.returncode == 0
    assert ("exposed by: harness run raft --backend sim --nemesis figure8 --time-limit 40 --interval 20 "
            "--option max_batch=1 --bug commit-old-term --seed N") in proc.stdout
    assert "exposed by: harness run dfs --backend sim --nemesis corrupt --bug no-checksum --seed N" in proc.stdout
    assert "exposed by: harness run etcd --backend local --workload lock" in proc.stdout
    assert proc.stdout.count("exposed by: harness run") == sum(len(registry.bugs(s)) for s in with_bugs)
    assert "(not declared)" not in proc.stdout


def test_a_broken_exposure_declaration_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import systems.raft
    from harness.sweep_exposure import exposures

    monkeypatch.setattr(systems.raft, "EXPOSED_BY", {"stale-read": {"nemsis": ["kill"]}})
    with pytest.raises(ValueError, match="unknown setting"):
        exposures("raft")
    monkeypatch.setattr(systems.raft, "EXPOSED_BY", {"no-such-bug": {}})
    with pytest.raises(ValueError, match="not one of its bugs"):
        exposures("raft")


# -- real sweeps ---------------------------------------------------------------------------------------


def rows_of(sweep_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (sweep_dir / "summary.jsonl").read_text().splitlines()]


def the_sweep(root: Path, system: str) -> Path:
    (sweep_dir,) = (root / system / "sweeps").iterdir()
    return sweep_dir


@pytest.mark.sim
def test_a_sweep_with_a_planted_bug_exits_1_and_keeps_the_failing_runs_in_full(tmp_path: Path) -> None:
    proc = harness("sweep", "raft", "--seeds", "1-3", "--workers", "2", "--bug", "stale-read", "--nemesis",
                   "leader-isolate", "--time-limit", "10", "--quiet", "2", "--results", str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    sweep_dir = the_sweep(tmp_path, "raft")
    rows = rows_of(sweep_dir)
    assert sorted(r["seed"] for r in rows) == [1, 2, 3]
    failing = [r for r in rows if r["verdict"] == "invalid"]
    assert failing, rows
    for r in failing:
        assert "linearizable" in r["anomalies"] and r["cpu_s"] > 0
        run = sweep_dir / r["run"]
        assert (run / "history.jsonl").exists() and (run / "report.html").exists() and (run / "results.json").exists()
        assert json.loads((run / "results.json").read_text())["valid"] is False
        assert r["replay"].startswith("harness run raft --backend sim --seed ")
    for r in rows:
        if r["verdict"] == "valid":
            assert not (sweep_dir / "runs" / str(r["seed"])).exists(), "passing runs are summarised, not kept"
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["counts"]["invalid"] == len(failing) and meta["done"] == 3 and meta["cpu_s"] > 0
    assert "runs/" in (sweep_dir / "index.html").read_text()
    from harness.serve import index_html

    assert f"raft/sweeps/{sweep_dir.name}/index.html" in index_html(tmp_path)


@pytest.mark.sim
def test_a_clean_sweep_exits_0_and_stop_on_first_stops(tmp_path: Path) -> None:
    proc = harness("sweep", "echo", "--seeds", "1-2", "--workers", "1", "--nemesis", "kill", "--time-limit", "6",
                   "--interval", "2", "--quiet", "1", "--results", str(tmp_path / "clean"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["verdict"] for r in rows_of(the_sweep(tmp_path / "clean", "echo"))] == ["valid", "valid"]
    proc = harness("sweep", "raft", "--seeds", "1-6", "--workers", "1", "--bug", "stale-read", "--nemesis",
                   "leader-isolate", "--time-limit", "10", "--quiet", "2", "--stop-on-first",
                   "--results", str(tmp_path / "first"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = rows_of(the_sweep(tmp_path / "first", "raft"))
    assert len(rows) < 6 and rows[-1]["verdict"] == "invalid", [r["verdict"] for r in rows]


@pytest.mark.sim
def test_a_sweep_longer_than_any_worker_limit_finishes(tmp_path: Path) -> None:
    """60 seeds on 2 workers: a pool that recycled its workers after 25 tasks each hung at seed 50."""
    proc = harness("sweep", "echo", "--seeds", "1-60", "--workers", "2", "--nemesis", "none", "--time-limit", "1",
                   "--quiet", "0", "--allow-no-faults", "--results", str(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted(r["seed"] for r in rows_of(the_sweep(tmp_path, "echo"))) == list(range(1, 61))


@pytest.mark.sim
def test_a_swarm_seed_replays_alone_from_harness_run(tmp_path: Path) -> None:
    """The swarm's draw is recorded in test.json and `harness run --swarm --seed N` makes the same run."""
    proc = harness("sweep", "raft", "--seeds", "7", "--workers", "1", "--swarm", "--time-limit", "8",
                   "--keep", "all", "--results", str(tmp_path / "sweep"))
    assert proc.returncode in (0, 1, 2), proc.stdout + proc.stderr
    sweep_dir = the_sweep(tmp_path / "sweep", "raft")
    (row,) = rows_of(sweep_dir)
    kept = sweep_dir / "runs" / "7"
    test = json.loads((kept / "test.json").read_text())
    assert test["swarm"]["seed"] == 7 and test["swarm"]["nemesis"] == test["nemesis"]
    assert test["pace"]["weights"] and test["time_limit_s"] == 8.0
    assert row["replay"] == "harness run raft --backend sim --seed 7 --swarm --time-limit 8"
    argv = row["replay"].split()[2:]
    harness("run", *argv, "--results", str(tmp_path / "replay"))
    (run,) = [p for p in (tmp_path / "replay" / "raft").iterdir() if p.is_dir()]
    assert (run / "history.jsonl").read_bytes() == (kept / "history.jsonl").read_bytes()


@pytest.mark.sim
def test_an_explicit_schedule_is_played_as_written(tmp_path: Path) -> None:
    schedule = tmp_path / "schedule.json"
    schedule.write_text(json.dumps({"faults": [
        {"package": "kill", "start_s": 1.0, "stop_s": 2.0, "inflict": {"f": "kill", "value": ["n2"]}},
        {"package": "partition", "start_s": 3.0, "stop_s": 4.5,
         "inflict": {"f": "start-partition", "value": {"n1": ["n3"], "n2": [], "n3": ["n1"]}, "shape": "by hand"}},
        {"package": "pause", "start_s": 5.0, "stop_s": 5.5},
    ]}))
    proc = harness("run", "echo", "--backend", "sim", "--nodes", "3", "--time-limit", "7", "--quiet", "1",
                   "--schedule", str(schedule), "--results", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = (tmp_path / "latest").resolve()
    assert json.loads((run / "test.json").read_text())["nemesis"] == ["kill", "partition", "pause"]
    ops = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    nemesis = [(op["f"], op.get("value"), op.get("package"), round(op["time"] / 1e9, 1))
               for op in ops if op["process"] == "nemesis"]
    assert nemesis[:4] == [("kill", ["n2"], "kill", 1.0), ("restart", ["n2"], "kill", 2.0),
                           ("start-partition", {"n1": ["n3"], "n2": [], "n3": ["n1"]}, "partition", 3.0),
                           ("stop-partition", None, "partition", 4.5)]
    assert [(f, p) for f, _, p, _ in nemesis[4:]] == [("pause", "pause"), ("resume", "pause")]
    assert 5.0 <= nemesis[4][3] <= 5.1


@pytest.mark.sim
@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_keeps_the_finished_seeds(tmp_path: Path) -> None:
    import os
    import signal
    import time

    proc = subprocess.Popen([*HARNESS, "sweep", "echo", "--seeds", "1-40", "--workers", "2", "--nemesis", "kill",
                             "--time-limit", "6", "--interval", "2", "--quiet", "1", "--results", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        summary = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(tmp_path.glob("echo/sweeps/*/summary.jsonl"))
            if found and found[0].read_text().count("\n") >= 1:
                summary = found[0]
                break
            time.sleep(0.5)
        assert summary is not None, "no seed finished within the bound"
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole group we started
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    rows = rows_of(summary.parent)
    assert 1 <= len(rows) < 40 and all(r["verdict"] == "valid" for r in rows)
    meta = json.loads((summary.parent / "sweep.json").read_text())
    assert meta["interrupted"] is True and meta["done"] == len(rows)
    assert "interrupted" in (summary.parent / "index.html").read_text()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # every worker of the group is gone
        left = [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == proc.pid]
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"processes of the sweep still running: {left}"


def _pgid(pid: int) -> int | None:
    import os

    try:
        return os.getpgid(pid)
    except OSError:
        return None
