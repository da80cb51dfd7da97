"""`harness run` with a broken cluster file or a backend that cannot be set up: one clear line and exit 64,
no traceback, no run directory left behind, results/latest not moved."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness.cli"]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results root with one earlier run that results/latest points at."""
    root = tmp_path / "results"
    earlier = root / "echo" / "20200101T000000-none"
    earlier.mkdir(parents=True)
    (root / "latest").symlink_to(earlier.relative_to(root))
    return root


def harness_run(results: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {**os.environ, "PICLUSTER_STATE_DIR": str(results.parent / "well-known"), "COLUMNS": "400"}
    argv = [*HARNESS, "run", "echo", "--nodes", "1", "--nemesis", "none", "--results", str(results), *args]
    return subprocess.run(argv,
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120, env={**base, **(env or {})})


def assert_refused(r: subprocess.CompletedProcess[str], results: Path, says: str, *, lines: int = 1) -> None:
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 64, out
    assert "Traceback" not in out
    assert len(out.splitlines()) == lines, out
    last = out.splitlines()[-1]
    assert last.startswith("error: ") and says in last, out
    assert [p.name for p in (results / "echo").iterdir()] == ["20200101T000000-none"], "a run directory was left"
    assert os.readlink(results / "latest") == "echo/20200101T000000-none"


def cluster_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[nodes.n1\nhost = 1\n", "is not valid TOML"),
        ("[cluster]\nuser = 'pi'\npasword = 'x'\n[nodes.n1]\nhost = 'a'\n", "cluster.pasword: unknown key"),
        ("[cluster]\nuser = 'pi'\n[nodes.n1]\nhost = 'a'\nport = 70000\n", "nodes.n1.port: must be in 1..65535"),
        ("[cluster]\nuser = 'pi'\n[nodes.n1]\nhost = 'a'\nport = 'x'\n", "nodes.n1.port: must be int"),
    ],
    ids=["bad-toml", "unknown-key", "port-out-of-range", "port-not-int"],
)
def test_a_broken_cluster_file_is_one_line(tmp_path: Path, results: Path, text: str, says: str) -> None:
    path = cluster_file(tmp_path, text)
    r = harness_run(results, "--backend", "ssh", "--cluster", str(path))
    assert_refused(r, results, says)
    assert str(path) in r.stdout  # the line names the file


def test_a_missing_cluster_file_is_one_line(tmp_path: Path, results: Path) -> None:
    r = harness_run(results, "--backend", "ssh", "--cluster", str(tmp_path / "nope.toml"))
    assert_refused(r, results, "does not exist")


def test_ssh_without_a_cluster_file_is_one_line(results: Path) -> None:
    r = harness_run(results, "--backend", "ssh")
    assert_refused(r, results, "needs a cluster file (--cluster cluster.toml)")


def test_netns_without_iptables_is_one_line(tmp_path: Path, results: Path) -> None:
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("needs the `ip` command, to show that only iptables is missing")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ip").symlink_to(ip)
    r = harness_run(results, "--backend", "netns", env={"PATH": str(bin_dir)})
    assert_refused(r, results, "the `iptables` command (Debian package iptables)")
    assert "`ip` command" not in r.stdout


def test_an_unreachable_host_is_one_line_and_leaves_nothing(tmp_path: Path, results: Path) -> None:
    """Found only once the backend sets up (after the run directory exists): it is removed again."""
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = cluster_file(tmp_path, f"[cluster]\nuser = 'pi'\nconnect_timeout_s = 3\n"
                                  f"known_hosts = '{tmp_path / 'known_hosts'}'\n"
                                  f"[nodes.n1]\nhost = '127.0.0.1'\nssh_port = {port}\n")
    r = harness_run(results, "--backend", "ssh", "--cluster", str(path))
    # "seed N" and "run directory D" came first; the error is one line after them
    assert_refused(r, results, f"node n1 (pi@127.0.0.1:{port}): unreachable", lines=3)
    assert not list((tmp_path / "well-known").glob("*.json")), "the run's record should be gone"
