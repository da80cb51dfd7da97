"""bench/bench_dfs.py --quick runs end to end on our DFS and prints its whole table (never judged on speed).

MooseFS and the netns copy of our DFS run too when this machine can (root, the packages); otherwise the
table says why they were skipped, and so does this test's output.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CELLS = {("write", 1), ("read", 1), ("write", 4), ("read", 4), ("append", 4)}
LIMITS = {"loopback stream", "disk write+fsync", "disk read (warm)", "disk read (cold)"}


@pytest.mark.real
@pytest.mark.slow
def test_quick_benchmark_prints_every_cell_limit_target_and_kill(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_dfs.py"), "--quick", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    doc = json.loads(out.read_text())
    ran = sorted({c["contender"] for c in doc["cells"]})
    assert "dfs/local" in ran, ran
    for name, why in doc["skipped"].items():
        assert why.strip(), f"{name} skipped without a reason"
        assert f"{name}: skipped: {why}" in r.stdout
        assert name not in ran
    for name in ran:
        cells = {(c["op"], c["clients"]): c for c in doc["cells"] if c["contender"] == name}
        assert set(cells) == CELLS, name
        for c in cells.values():
            assert c["reps"] == doc["reps"] == 2
            assert c["errors"] == 0, (name, c)  # every byte read back was checked
            for key in ("mb_s", "mb_s_min", "mb_s_max", "p50_ms", "p99_ms", "server_cpu_ms_per_mb", "load"):
                assert math.isfinite(c[key]) and c[key] >= 0, (name, key, c)
            assert c["mb_s_min"] <= c["mb_s"] <= c["mb_s_max"]
            assert c["p50_ms"] <= c["p99_ms"]
        assert name in doc["via"]
    assert {x["limit"] for x in doc["limits"]} == LIMITS
    assert all(x["min"] <= x["mb_s"] <= x["max"] for x in doc["limits"])
    assert {t["contender"] for t in doc["targets"]} == set(ran)
    kills = {x["contender"]: x for x in doc["rereplication"]}
    assert set(kills) == set(ran)
    assert all(k["kills"] == 1 and k["mb"] > 0 and k["seconds"] > 0 for k in kills.values()), kills
    if "moosefs/netns" in ran:
        assert {x["contender"] for x in doc["ratios"]} == set(ran) - {"moosefs/netns"}
    for header in ("contender", "MB/s", "p99 ms", "srv ms/MB", "machine limits", "targets:", "re-replication",
                   "load average"):
        assert header in r.stdout, header
