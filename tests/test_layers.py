"""The layer rules hold: import-linter checks the contracts in pyproject.toml, and they can fail.

The contracts (pyproject.toml, [tool.importlinter]): base at the bottom and
importing nothing of ours; systems on the runtime, apart from each other and
using it through its API only; checkers never import systems, workloads,
nemesis or the harness; workloads and nemeses reach a system only through its
client module; nothing below the harness imports it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["base", "systems", "workloads", "checkers", "nemesis", "harness"]
LINT = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([*LINT, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_project_keeps_its_layer_contracts() -> None:
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("base/history.py", "import harness.cli", "base at the bottom"),
        ("checkers/kv_set.py", "import systems.kv.ring", "checkers never import"),
        ("workloads/raft.py", "import systems.raft.core", "client module"),
        ("systems/kv/store.py", "import systems.runtime.real_disk", "through its API only"),
    ],
)
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # planted by the test\n")
    out = lint(tmp_path)
    assert out.returncode != 0
    broken = out.stdout.split("Broken contracts")[-1]
    assert contract in " ".join(broken.split()), out.stdout
