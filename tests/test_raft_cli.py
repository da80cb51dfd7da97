"""The Raft command line with every node down says, for each node it tried, what happened."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_every_node_down_lists_every_node_tried_and_why(tmp_path: Path) -> None:
    ports = free_ports(3)
    cluster = tmp_path / "cluster.json"
    cluster.write_text(json.dumps({"system": "raft", "nodes": {
        f"n{i}": {"host": "127.0.0.1", "port": p} for i, p in enumerate(ports, start=1)}}))
    proc = subprocess.run([sys.executable, "-m", "systems.raft.cli", "--cluster", str(cluster), "--timeout", "1",
                           "put", "k1", "7"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = json.loads(proc.stdout)
    assert line["type"] == "fail"
    assert sorted(line["tried"]) == ["n1", "n2", "n3"]
    assert all(why.startswith("unreachable: connection refused") for why in line["tried"].values()), line
    for i, port in enumerate(ports, start=1):
        assert f"raft-cli: n{i} (127.0.0.1:{port}): unreachable: connection refused" in proc.stderr
    assert "Traceback" not in proc.stderr
