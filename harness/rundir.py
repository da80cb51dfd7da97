"""The run directory: results/<system>/<YYYYmmddTHHMMSS>-<nemesis>/ and results/latest.

Rules: a run directory is created fresh (a suffix is added rather than reuse
one); test.json is written before the cluster starts, so even a crashed run
can be checked; results/latest is a relative symlink to the newest run whose
cluster started (`point_latest`), so a run the backend could not set up
moves nothing, and its directory is removed (`discard_run_dir`) unless it
records something still to clean up. Everything `harness check` needs is
inside the directory.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from base.spec import TestSpec

VERSION = "0.1.0"


def create_run_dir(results_root: Path, spec: TestSpec) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    nemesis = "+".join(spec.nemesis) or "none"
    base = results_root / spec.system / f"{stamp}-{nemesis}"
    base.parent.mkdir(parents=True, exist_ok=True)
    run_dir = base
    n = 1
    while True:
        try:
            run_dir.mkdir()  # atomic: two runs started in the same second get different directories
            break
        except FileExistsError:
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")
    (run_dir / "nodes").mkdir()
    return run_dir


def results_root_of(run_dir: Path) -> Path:
    """results/ for results/<system>/<run>."""
    return run_dir.parent.parent


def point_latest(run_dir: Path) -> None:
    """Point results/latest at run_dir (atomically, a relative link)."""
    root = results_root_of(run_dir)
    tmp = root / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.relative_to(root))
    os.replace(tmp, root / "latest")


def discard_run_dir(run_dir: Path) -> bool:
    """Remove the directory of a run that never started; False (and kept) if its record still names
    something to clean up (then `harness cleanup RUN_DIR` needs it)."""
    from harness.hosts_state import load_run_dir

    state = load_run_dir(run_dir)
    if state is not None and not state.is_empty():
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_test_json(run_dir: Path, spec: TestSpec) -> None:
    data = {
        **spec.to_json(),
        "versions": {
            "picluster": VERSION,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "argv": sys.argv,
    }
    write_json(run_dir / "test.json", data)


def read_spec(run_dir: Path) -> TestSpec:
    path = run_dir / "test.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory: no test.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    spec = TestSpec.from_json(data)
    return TestSpec.from_json({**spec.to_json(), "run_dir": str(run_dir)})
