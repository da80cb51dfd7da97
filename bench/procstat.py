"""CPU time of processes read from /proc, and the machine's load average.

Rules this module keeps:

- A process's CPU time is utime + stime of /proc/<pid>/stat (every thread of
  the process, in clock ticks turned into seconds); a pid that is gone counts
  0, so a member killed mid-measurement never breaks a benchmark.
- This process's own CPU time comes from `os.times()` (all its threads, so a
  client library's I/O threads count against the client).
- Nothing here judges a figure: callers print them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid`; 0.0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def total_cpu_seconds(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return float(one), float(five), float(fifteen)
