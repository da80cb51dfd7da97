"""`harness doctor` speaks in one line per problem: no library tracebacks, each missing command once."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import doctor
from harness.backends import ssh_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def not_ssh() -> Iterator[int]:
    """A loopback port whose server answers like a web server and hangs up: no SSH banner."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


def cluster(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return path


def test_a_host_that_is_not_ssh_is_one_line_without_traceback(tmp_path: Path, not_ssh: int) -> None:
    path = cluster(tmp_path, f"[cluster]\nuser = 'pi'\nconnect_timeout_s = 3\nknown_hosts = '{tmp_path / 'kh'}'\n"
                             f"[nodes.n1]\nhost = '127.0.0.1'\nssh_port = {not_ssh}\n"
                             f"[nodes.n2]\nhost = '127.0.0.1'\nssh_port = {not_ssh}\nport = 7011\n")
    r = subprocess.run([sys.executable, "-m", "harness.cli", "doctor", "--cluster", str(path)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT, env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr and r.stderr.strip() == "", r.stderr
    rows = [line for line in r.stdout.splitlines() if "no SSH server answered there" in line]
    assert len(rows) == 2 and "n1" in rows[0] and "n2" in rows[1], r.stdout


def test_each_missing_power_or_switch_program_is_reported_once(tmp_path: Path) -> None:
    path = cluster(tmp_path, "[cluster]\nuser = 'pi'\nswitch_off = ['no-such-plug', 'off']\n"
                             "switch_on = ['no-such-plug', 'on']\n"
                             "[nodes.n1]\nhost = 'a'\npower_off = ['no-such-hub', 'off']\n"
                             "power_on = ['no-such-hub', 'on']\n"
                             "[nodes.n2]\nhost = 'b'\npower_off = ['no-such-hub', 'off']\n"
                             "power_on = ['no-such-hub', 'on']\n"
                             "[nodes.n3]\nhost = 'c'\npower_off = ['true']\npower_on = ['true']\n")
    failed = [c for c in doctor.cluster_checks(ssh_config.load(path)) if not c.ok]
    assert [(c.node, c.name) for c in failed] == [("cluster", "switch cmds"), ("n1 n2", "power cmds")]
    assert "no-such-plug (in switch_off, switch_on) not found" in failed[0].detail
    assert "no-such-hub (in power_off, power_on) not found" in failed[1].detail
