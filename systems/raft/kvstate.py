"""The replicated key-value state machine that Raft's committed entries drive.

Rules:

- Deterministic: the same commands in the same order give the same state,
  the same results and the same digest on every node.
- At most once: a command carrying (client, seq) is applied only if seq is
  newer than the client's last applied seq; a retry of the last one gets the
  cached result back, an older one gets {"status": "stale"}. The session
  table is part of the snapshot, so dedup survives compaction and restarts.
- Commands: get(key), put(key, value), cas(key, [expected, new]),
  append(key, element) (the value is a list), txn([[f, key, value], ...]) with
  micro-ops "r" (read, filled in), "w" (write), "append" applied atomically.
- Results: {"status": "ok", "value": v} or {"status": "fail", "error": ...}
  (a cas whose expected value did not match: it certainly changed nothing).
- `applied_digest` chains every applied entry (no-ops too):
  d_i = sha256(d_{i-1} | index | term | data). Equal digests at an equal
  index mean equal applied prefixes. Every `checkpoint_every` indexes the
  digest is remembered so nodes at different indexes can still be compared.
- `term_runs` lists [first index, term] for each run of applied entries of
  one term (the last `keep_runs`), so the term of every applied index since
  the first run is known. By Log Matching, equal (index, term) means equal
  command, so two nodes that applied different terms at one index applied
  different commands there (the checker compares these at every index).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

Command = dict[str, Any]
Result = dict[str, Any]


class KVState:
    def __init__(self, checkpoint_every: int = 64, keep_checkpoints: int = 32, keep_runs: int = 64) -> None:
        self.data: dict[str, Any] = {}
        self.sessions: dict[str, list[Any]] = {}
        """client id -> [last applied seq, its result]"""
        self.applied_index = 0
        self.applied_digest = ""
        self.checkpoints: dict[int, str] = {}
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.term_runs: list[list[int]] = []
        self.keep_runs = keep_runs

    # ------------------------------------------------------------ applying
    def apply_entry(self, index: int, term: int, data: bytes | None, cmd: Command | None = None) -> Result | None:
        """Apply one committed log entry (None data = a leader's no-op). `cmd`, when given, is
        `decode_command(data)` already done (the leader keeps its own proposals decoded)."""
        self.applied_digest = hashlib.sha256(
            b"%s|%d|%d|%s" % (self.applied_digest.encode(), index, term, data or b"")
        ).hexdigest()[:16]
        self.applied_index = index
        if not self.term_runs or self.term_runs[-1][1] != term:
            self.term_runs.append([index, term])
            if len(self.term_runs) > self.keep_runs:
                del self.term_runs[0]
        if index % self.checkpoint_every == 0:
            self.checkpoints[index] = self.applied_digest
            if len(self.checkpoints) > self.keep_checkpoints:
                del self.checkpoints[min(self.checkpoints)]
        if data is None:
            return None
        if cmd is None:
            try:
                cmd = decode_command(data)
            except ValueError as e:
                return {"status": "fail", "error": f"bad command: {e}"}
        return self.apply(cmd)

    def apply(self, cmd: Command) -> Result:
        client, seq = cmd.get("client"), cmd.get("seq")
        if isinstance(client, str) and isinstance(seq, int):
            last = self.sessions.get(client)
            if last is not None:
                if seq == last[0]:
                    return last[1]
                if seq < last[0]:
                    return {"status": "stale", "error": f"seq {seq} older than {last[0]}"}
            result = self._execute(cmd)
            self.sessions[client] = [seq, result]
            return result
        return self._execute(cmd)

    def _execute(self, cmd: Command) -> Result:
        f, key, value = cmd.get("f"), cmd.get("key"), cmd.get("value")
        problem = _malformed(f, value)
        if problem:
            return {"status": "fail", "error": problem}
        if f == "get":
            return {"status": "ok", "value": self.data.get(key)}
        if f == "put":
            self.data[key] = value
            return {"status": "ok", "value": value}
        if f == "cas":
            expected, new = value
            current = self.data.get(key)
            if current != expected:
                return {"status": "fail", "error": "cas-mismatch", "value": current}
            self.data[key] = new
            return {"status": "ok", "value": value}
        if f == "append":
            self.data[key] = [*self._as_list(key), value]
            return {"status": "ok", "value": value}
        if f == "txn":
            out = []
            for mf, mk, mv in value:
                if mf == "r":
                    v = self.data.get(mk)
                    out.append([mf, mk, list(v) if isinstance(v, list) else v])
                elif mf == "w":
                    self.data[mk] = mv
                    out.append([mf, mk, mv])
                elif mf == "append":
                    self.data[mk] = [*self._as_list(mk), mv]
                    out.append([mf, mk, mv])
            return {"status": "ok", "value": out}
        return {"status": "fail", "error": f"unknown op {f!r}"}

    def _as_list(self, key: str) -> list[Any]:
        v = self.data.get(key)
        if v is None:
            return []
        return list(v) if isinstance(v, list) else [v]

    def read(self, key: str) -> Any:
        return self.data.get(key)

    def query(self, cmd: Command) -> Result:
        """Answer a read-only command (see `is_read_only`) from the current state, changing nothing."""
        assert is_read_only(cmd), f"not a read-only command: {cmd.get('f')!r}"
        return self._execute(cmd)

    # ------------------------------------------------------------ snapshots
    def snapshot(self) -> bytes:
        return msgpack.packb(
            {
                "data": self.data,
                "sessions": self.sessions,
                "applied_index": self.applied_index,
                "applied_digest": self.applied_digest,
                "checkpoints": self.checkpoints,
                "term_runs": self.term_runs,
            },
            use_bin_type=True,
        )

    def restore(self, blob: bytes) -> None:
        d = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        self.data = dict(d["data"])
        self.sessions = {k: list(v) for k, v in d["sessions"].items()}
        self.applied_index = d["applied_index"]
        self.applied_digest = d["applied_digest"]
        self.checkpoints = {int(k): v for k, v in d["checkpoints"].items()}
        self.term_runs = [list(r) for r in d.get("term_runs", [])]


def _malformed(f: Any, value: Any) -> str | None:
    """Why a command cannot be applied (checked before anything changes), or None."""
    if f == "cas" and not (isinstance(value, list | tuple) and len(value) == 2):
        return "cas needs [expected, new]"
    if f == "txn":
        if not isinstance(value, list | tuple):
            return "txn needs a list of micro-ops"
        for mop in value:
            if not (isinstance(mop, list | tuple) and len(mop) == 3 and mop[0] in ("r", "w", "append")):
                return f"bad micro-op {mop!r}"
    return None


def is_read_only(cmd: Any) -> bool:
    """A get, or a txn made only of reads: it can be answered without going through the log."""
    if not isinstance(cmd, dict):
        return False
    if cmd.get("f") == "get":
        return True
    mops = cmd.get("value")
    return (
        cmd.get("f") == "txn"
        and isinstance(mops, list)
        and bool(mops)
        and all(isinstance(m, list | tuple) and len(m) == 3 and m[0] == "r" for m in mops)
    )


def encode_command(cmd: Command) -> bytes:
    return msgpack.packb(cmd, use_bin_type=True)


def decode_command(data: bytes) -> Command:
    try:
        cmd = msgpack.unpackb(data, raw=False)
    except Exception as e:  # msgpack raises several unrelated types
        raise ValueError(str(e)) from None
    if not isinstance(cmd, dict):
        raise ValueError("command is not a map")
    return cmd
