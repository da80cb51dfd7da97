"""Helpers shared by test files (import as `from support import ...`; tests/ is on sys.path).

Rules: nothing here asserts; each helper answers one question a test asks of the machine or of
the harness's output, the same way in every file that asks it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

HINTS = {"ip": "iproute2", "iptables": "iptables", "ssh-keygen": "openssh-client", "etcd": "etcd-server"}


def root_reason(*tools: str, why: str = "network namespaces, iptables") -> str | None:
    """Why a root-tier test cannot run here (not root, or a tool missing), or None when it can."""
    if os.geteuid() != 0:
        return f"needs root ({why})"
    for tool in ("ip", "iptables", *tools):
        if shutil.which(tool) is None:
            package = HINTS.get(tool, "openssh-server" if "sshd" in tool else tool)
            return f"needs the `{tool}` command (apt-get install {package})"
    return None


def needs_root(*tools: str, why: str = "network namespaces, iptables") -> pytest.MarkDecorator:
    """A skip marker carrying `root_reason`'s answer."""
    reason = root_reason(*tools, why=why)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def process_gone(pid: int) -> bool:
    """The process is no more; a zombie waiting for a slow reaper counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def run_dir_of(output: str) -> Path:
    """The run directory a `harness run` printed (its `run directory PATH` line)."""
    for line in output.splitlines():
        if line.startswith("run directory "):
            return Path(line.removeprefix("run directory ").strip())
    raise AssertionError(f"no run directory in output:\n{output}")
