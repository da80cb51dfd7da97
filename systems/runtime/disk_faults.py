"""Disk faults a node's runtime can be told to inflict on its own disk: EIO, a full disk, a slow fsync.

The same rules on every backend (sim_disk and real_disk both consult a
`DiskFaults`), so a system meets the same errors in the simulator and on
real processes.

Rules this module keeps:

- A fault is set with `set({"fault": KIND, ...})` and removed with
  `clear()`; one fault at a time (a new one replaces the old).
  - `eio` {"ops": "write" | "sync" | "both"}: every write (`write`, `append`,
    `truncate`, `delete`) and/or every `sync` raises `OSError(EIO)` before
    touching anything: a disk whose writes or flushes fail.
  - `enospc`: every `write`, `append` and `truncate` raises
    `OSError(ENOSPC)` before touching anything; `delete` and `sync` still
    work (freeing space and flushing what was written are allowed).
  - `slow-fsync` {"delay_s": d}: every `sync` takes `d` seconds longer
    (on the node's loop: other work goes on meanwhile).
  Anything else is a `ValueError` naming it.
- Reads always work: the medium still holds what it held.
- `injected` counts the errors raised and `delayed` the syncs slowed, so a
  test (and the node's stats) can see that a fault took effect.
"""

from __future__ import annotations

import errno
import math
from typing import Any

KINDS = ("eio", "enospc", "slow-fsync")
EIO_OPS = ("write", "sync", "both")
MAX_DELAY_S = 60.0
_WORDS = {errno.EIO: "Input/output error", errno.ENOSPC: "No space left on device"}


class DiskFaults:
    """The disk fault in place on one node (or none)."""

    __slots__ = ("delay_s", "delayed", "injected", "kind", "ops")

    def __init__(self) -> None:
        self.kind: str | None = None
        self.ops = "both"
        self.delay_s = 0.0
        self.injected = 0
        self.delayed = 0

    def set(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValueError(f"a disk fault is an object with 'fault' ({', '.join(KINDS)}); got {body!r:.80}")
        kind = body.get("fault")
        if kind not in KINDS:
            raise ValueError(f"unknown disk fault {kind!r} (known: {', '.join(KINDS)})")
        ops, delay = body.get("ops", "both"), body.get("delay_s", 0.0)
        if kind == "eio" and ops not in EIO_OPS:
            raise ValueError(f"eio ops must be one of {', '.join(EIO_OPS)}, got {ops!r}")
        if kind == "slow-fsync" and (isinstance(delay, bool) or not isinstance(delay, int | float)
                                     or not math.isfinite(delay) or not 0 < delay <= MAX_DELAY_S):
            raise ValueError(f"slow-fsync delay_s must be in (0, {MAX_DELAY_S}], got {delay!r}")
        self.kind = kind
        self.ops = ops if kind == "eio" else "write" if kind == "enospc" else "sync"
        self.delay_s = float(delay) if kind == "slow-fsync" else 0.0
        return self.describe()

    def clear(self) -> dict[str, Any]:
        self.kind, self.ops, self.delay_s = None, "both", 0.0
        return self.describe()

    def describe(self) -> dict[str, Any]:
        return {"fault": self.kind, "ops": self.ops if self.kind else None, "delay_s": self.delay_s,
                "injected": self.injected, "delayed": self.delayed}

    # -- checks the disks call ---------------------------------------------------------------------
    def check_write(self, name: str, *, frees: bool = False) -> None:
        """Raise the fault's error for a write of `name` (`frees`: a delete, which a full disk allows)."""
        kind = self.kind
        if kind is None or kind == "slow-fsync":
            return
        if kind == "enospc" and not frees:
            self._raise(errno.ENOSPC, name)
        if kind == "eio" and self.ops in ("write", "both"):
            self._raise(errno.EIO, name)

    def check_sync(self, name: str) -> float:
        """Raise EIO for a failing sync; else the extra delay (seconds) this sync takes."""
        if self.kind == "eio" and self.ops in ("sync", "both"):
            self._raise(errno.EIO, name)
        if self.kind == "slow-fsync":
            self.delayed += 1
            return self.delay_s
        return 0.0

    def _raise(self, code: int, name: str) -> None:
        self.injected += 1
        raise OSError(code, f"{_WORDS[code]} (injected disk fault)", name)
