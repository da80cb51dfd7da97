"""Systems code never touches sockets, clocks, randomness, threads or files directly.

Everything under systems/ except the real runtime (systems/runtime/real*.py
and node_main.py, which *are* the world) may import only the runtime API and
pure stdlib. This reads every import statement and also bans the calls that
let nondeterminism in without an import (open(), hash() of strings). The
`random` module may be imported only for the `random.Random` type (a seeded
instance comes from the runtime); its global functions are banned.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SYSTEMS = Path(__file__).resolve().parents[1] / "systems"
EXEMPT = {"node_main.py"}
BANNED_MODULES = {
    "socket", "time", "threading", "multiprocessing", "subprocess", "os", "io", "pathlib",
    "shutil", "tempfile", "select", "selectors", "signal", "datetime", "uuid", "secrets", "ssl", "http",
    "urllib", "concurrent", "sched", "queue", "asyncio.subprocess",
}
BANNED_CALLS = {"open", "hash", "input", "print", "id"}


def system_files() -> list[Path]:
    out = []
    for path in sorted(SYSTEMS.rglob("*.py")):
        rel = path.relative_to(SYSTEMS)
        if rel.parts[0] == "runtime" and (path.name.startswith("real") or path.name in EXEMPT):
            continue
        out.append(path)
    return out


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "random":
                names = [f"random.{a.name}" for a in node.names if a.name != "Random"]
        for name in names:
            if name in BANNED_MODULES or name.split(".")[0] in BANNED_MODULES:
                found.append(f"{path.name}:{node.lineno} imports {name}")
        is_random_global = (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr != "Random"
        )
        if is_random_global:
            found.append(f"{path.name}:{node.lineno} uses the global random.{node.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BANNED_CALLS:
            found.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
    return found


@pytest.mark.parametrize("path", system_files(), ids=lambda p: str(p.relative_to(SYSTEMS)))
def test_system_module_is_pure(path):
    assert violations(path) == []


def test_the_purity_check_catches_a_bad_module(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom socket import socket\nimport random\nx = hash('a') + random.random()\n")
    found = violations(bad)
    assert len(found) == 4, found
    good = tmp_path / "good.py"
    good.write_text("import random\ndef f(rng: random.Random) -> float:\n    return rng.random()\n")
    assert violations(good) == []
