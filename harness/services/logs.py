"""`harness cluster logs NODE [-f]`: a node's log, its last lines, then what it writes next.

Rules this module keeps:

- The log is the node's own JSON-lines log (systems/runtime/real_log.py):
  in the cluster directory on local and netns, on the node's host on ssh
  (read there with `tail` over SSH, see ssh_service.py).
- Each record is shown as one line, `HH:MM:SS.mmm level event key=value ...`
  (`--raw`: the JSON as written); an external program's JSON log (etcd's:
  `ts`, `level`, `msg`) is shown the same way, its time as it wrote it (UTC);
  a line that is not a record (a traceback the node printed) is shown as it is.
- Following polls the file for growth (and starts over if it was
  truncated) until Ctrl-C; it never holds the file open between polls.
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any, TextIO

from harness.services.clusterdir import ClusterDir

POLL_S = 0.2


def pretty(line: str) -> str:
    try:
        rec = json.loads(line)
    except ValueError:
        return line
    if isinstance(rec, dict) and "event" not in rec and isinstance(rec.get("msg"), str) and isinstance(
            rec.get("ts"), str):  # an external program's JSON log (etcd's zap logger): level, ts, caller, msg
        when = rec["ts"][11:23] if len(rec["ts"]) >= 23 else rec["ts"]
        rest = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in rec.items()
                        if k not in ("ts", "level", "msg", "caller"))
        return f"{when} {rec.get('level', '?'):7} {rec['msg']} {rest}".rstrip()
    if not isinstance(rec, dict) or "event" not in rec:
        return line
    t = rec.get("time")
    when = time.strftime("%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}" if isinstance(
        t, int | float) else "?"
    rest = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in rec.items()
                    if k not in ("time", "node", "level", "event"))
    return f"{when} {rec.get('level', '?'):7} {rec['event']} {rest}".rstrip()


def show(cdir: ClusterDir, doc: dict[str, Any], node: str, *, lines: int, follow: bool, raw: bool,
         out: TextIO) -> None:
    if doc.get("backend") == "ssh":
        from harness.services.ssh_service import remote_log

        for line in remote_log(doc, node, lines=lines, follow=follow):
            out.write((line if raw else pretty(line)) + "\n")
            out.flush()
        return
    path = cdir.node_log(node)
    tail_file(path, lines=lines, follow=follow, emit=lambda line: out.write((line if raw else pretty(line)) + "\n"),
              flush=out.flush)


def tail_file(path: Path, *, lines: int, follow: bool, emit: Any, flush: Any) -> None:
    pos = 0
    if path.exists():
        with path.open("rb") as f:
            last = deque(f, maxlen=lines) if lines else deque()
            pos = f.tell()
        for raw in last:
            emit(raw.decode(errors="replace").rstrip("\n"))
    flush()
    pending = b""
    while follow:
        time.sleep(POLL_S)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if size < pos:
            pos, pending = 0, b""
        if size == pos:
            continue
        with path.open("rb") as f:
            f.seek(pos)
            chunk = f.read()
            pos = f.tell()
        pending += chunk
        *done, pending = pending.split(b"\n")
        for raw in done:
            emit(raw.decode(errors="replace"))
        flush()
