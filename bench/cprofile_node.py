#!/usr/bin/env python3
"""Run a node (`cprofile_node.py -m systems.raft ARGS...`) under cProfile, counting CPU time.

A stand-in for the Python interpreter in bench/profile_raft.py `--cprofile`:
the profiler's clock is `time.thread_time`, so what it reports is CPU time of
the node's event-loop thread (waiting in epoll costs nothing), with exact call
counts. The profile is written to $PICLUSTER_CPROFILE_DIR/<node id>.prof
when the node stops (SIGTERM). cProfile's own overhead inflates Python-heavy
functions against C ones: read the call counts and the ranking, not the
absolute times.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import sys
import time


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "-m":
        raise SystemExit("usage: cprofile_node.py -m MODULE ARGS...")
    module, args = sys.argv[2], sys.argv[3:]
    node = args[args.index("--id") + 1] if "--id" in args else str(os.getpid())
    out_dir = os.environ.get("PICLUSTER_CPROFILE_DIR", ".")
    sys.argv = [module, *args]
    prof = cProfile.Profile(time.thread_time)
    prof.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        prof.disable()
        prof.dump_stats(os.path.join(out_dir, f"{node}.prof"))


if __name__ == "__main__":
    main()
