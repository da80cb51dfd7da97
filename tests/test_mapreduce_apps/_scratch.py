"""What the scenario apps share: the scratch directory and the lab's `nparallel` trick."""

from __future__ import annotations

import os
import time
from pathlib import Path


def scratch() -> Path:
    return Path(os.environ["PICLUSTER_MR_SCRATCH"])


def nparallel(phase: str) -> int:
    """How many worker processes run this phase right now (the lab's trick: a file per pid, probe the pids)."""
    me = scratch() / f"mr-worker-{phase}-{os.getpid()}"
    me.write_text("x")
    alive = 0
    for path in scratch().glob(f"mr-worker-{phase}-*"):
        try:
            os.kill(int(path.name.rsplit("-", 1)[1]), 0)
        except (ProcessLookupError, ValueError):
            continue
        alive += 1
    time.sleep(1.0)
    me.unlink()
    return alive
