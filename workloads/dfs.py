"""Workloads for the GFS-like file system (systems/dfs), through its client library only.

Rules this module keeps:

- `append` (the default): clients record-append self-identifying, checksummed
  records to a few shared files (created on first use) and read whole files
  back. A record is MAGIC, a 4-byte body length, the body
  "<process>:<seq>|<payload>" (the payload a function of the id), and the
  body's CRC32. The history's append carries the id ("<process>:<seq>") as
  its value and the file as its key. A read's value is what the client found
  in the file, in file order: {"records": [ids], "pad_bytes", "garbage":
  [[offset, length], ...] (non-zero bytes that are no whole record),
  "garbage_bytes", "corrupt_records" (a record frame whose checksum or
  payload is wrong), "length"}. Raw bytes never enter the history.
- `files`: clients create whole files of 1.1-2.9 chunks (content a function
  of the path; the create's value is {"size", "digest"}), read closed files
  (those whose create was acknowledged; value {"size", "digest"}), rename
  them to fresh names and delete them. The workload remembers which files
  are closed under which name from the completions it sees; an operation in
  doubt takes its file out of play. Size files with the chunk size: with the
  default 4 MiB chunks a file is 4-12 MiB (`--option chunk_size=262144` for
  a quick run).
- Both sprinkle `status` ops (a node's own report), and end with: a
  `scrub` of every node (it verifies every replica now and reports a bad one
  to the master, as its background scrubber would later), `settle`
  (waits, within a bound, for the master to report every chunk healthy),
  reads of every file from every node (each client reads its own node's
  replica first, so every replica is read; the files workload reads each
  live file from every node only while the total stays under 64 MiB, else
  from one node each), an `ls` (files), and a verified `status` of every node.
- Outcomes: `fail` only when the client library says the operation
  certainly had no effect; reads, ls and status that fail are `fail`.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import random
import re
import struct
import zlib
from typing import Any

from base.history import Op
from base.spec import TestSpec
from systems.dfs.client import DfsClient, DfsError, default_master
from systems.runtime.api import RpcError, Runtime
from workloads.base import Checker, Client

STATUS_SHARE = 0.03
APPEND_FILES = 3
MAGIC = b"\xd5REC"
_HDR = struct.Struct(">4sI")
_CRC = struct.Struct(">I")
MAX_RECORD_BODY = 1 << 20
FINAL_READ_BUDGET = 64 * 1024 * 1024
_NONZERO = re.compile(rb"[^\x00]")
FSCK_PROBLEMS = ("under_replicated", "stale", "corrupt", "lost")
SETTLE_BOUND_S = 120.0
"""The final `settle` waits at most this long (test time) for repairs that are still making progress."""
SETTLE_OP: Op = {"f": "settle", "value": None, "final": True, "bound_s": SETTLE_BOUND_S}


# ---------------------------------------------------------------- records


def payload_of(rid: str, size: int) -> bytes:
    seed = hashlib.sha256(rid.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def encode_record(rid: str, size: int) -> bytes:
    body = rid.encode() + b"|" + payload_of(rid, size)
    return _HDR.pack(MAGIC, len(body)) + body + _CRC.pack(zlib.crc32(body))


def _record_at(data: bytes, pos: int) -> tuple[str | None, int]:
    """(id, end) of a well-formed record at pos; (None, end) for a frame that is wrong inside; (None, -1) if none."""
    if len(data) - pos < _HDR.size or data[pos : pos + 4] != MAGIC:
        return None, -1
    (_, n) = _HDR.unpack_from(data, pos)
    end = pos + _HDR.size + n + _CRC.size
    if n > MAX_RECORD_BODY or end > len(data):
        return None, -1
    body = data[pos + _HDR.size : pos + _HDR.size + n]
    (crc,) = _CRC.unpack_from(data, end - _CRC.size)
    rid, sep, payload = body.partition(b"|")
    try:
        text = rid.decode()
    except UnicodeDecodeError:
        return None, end
    if crc != zlib.crc32(body) or not sep or payload != payload_of(text, len(payload)):
        return None, end
    return text, end


def parse_records(data: bytes) -> dict[str, Any]:
    """What a reader of `data` sees: whole records, zero padding, and anything else (see the module rules)."""
    records: list[str] = []
    garbage: list[list[int]] = []
    pad = corrupt = 0
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == 0:
            m = _NONZERO.search(data, pos)
            nxt = m.start() if m else n
            pad += nxt - pos
            pos = nxt
            continue
        rid, end = _record_at(data, pos)
        if rid is not None:
            records.append(rid)
            pos = end
            continue
        start = pos
        if end != -1:  # a frame whose checksum or payload is wrong: garbage up to the next frame inside it, or its end
            corrupt += 1
            inner = data.find(MAGIC, pos + 1, end)
            pos = inner if inner != -1 else end
        else:
            pos += 1
            while pos < n and data[pos] != 0 and data[pos : pos + 4] != MAGIC:
                nxt_magic = data.find(MAGIC, pos)
                nxt_zero = data.find(b"\x00", pos)
                cands = [x for x in (nxt_magic, nxt_zero) if x != -1]
                pos = min(cands) if cands else n
        if garbage and garbage[-1][0] + garbage[-1][1] == start:
            garbage[-1][1] += pos - start
        else:
            garbage.append([start, pos - start])
    return {"records": records, "pad_bytes": pad, "garbage": garbage[:20],
            "garbage_bytes": sum(g[1] for g in garbage), "corrupt_records": corrupt, "length": n}


def content_of(path: str, size: int) -> bytes:
    seed = hashlib.sha256(path.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# ---------------------------------------------------------------- the client


class DfsWorkloadClient:
    def __init__(self, workload: _Base, rt: Runtime, node: str) -> None:
        self.w = workload
        self.rt = rt
        self.node = node
        self.timeout_s = workload.timeout_s
        self.dfs = DfsClient(rt, workload.nodes, master=workload.master, home=node, timeout_s=self.timeout_s,
                             rpc_timeout_s=min(1.0, self.timeout_s / 2))

    async def invoke(self, op: Op) -> Op:
        try:
            return await self._invoke(op)
        except DfsError as e:
            return {**op, "type": "fail" if e.definite else "info", "error": f"{e.code}: {e.message}"[:200]}

    async def _invoke(self, op: Op) -> Op:
        f, key = op["f"], op.get("key")
        long_s = self.timeout_s * 4
        match f:
            case "status":
                try:
                    st = await self.rt.call(self.node, "status", {"verify": bool(op.get("final"))},
                                            timeout=self.timeout_s * (3 if op.get("final") else 1))
                except RpcError as e:
                    return {**op, "type": "fail", "error": e.code}
                return {**op, "type": "ok", "value": st}
            case "append":
                record = encode_record(op["value"], int(op.get("size", 64)))
                try:
                    await self.dfs.append(key, record)
                except DfsError as e:
                    if e.code != "not-found":
                        raise
                    await self.dfs.create(key)  # the shared file's first writer makes it
                    await self.dfs.append(key, record)
                return {**op, "type": "ok"}
            case "read" if self.w.name == "append":
                data = await self.dfs.read_all(key, timeout_s=long_s)
                return {**op, "type": "ok", "value": parse_records(data)}
            case "read":
                data = await self.dfs.read_all(key, timeout_s=long_s)
                return {**op, "type": "ok", "value": {"size": len(data), "digest": digest_of(data)}}
            case "create":
                size = int(op["value"]["size"])
                data = content_of(key, size)
                try:
                    await self.dfs.put(key, data, timeout_s=long_s)
                except DfsError as e:
                    self.w.forget(key)
                    raise e
                self.w.closed_file(key)
                return {**op, "type": "ok", "value": {"size": size, "digest": digest_of(data)}}
            case "rename":
                try:
                    await self.dfs.rename(key, op["value"])
                except DfsError as e:
                    self.w.forget(key)
                    if e.definite:
                        self.w.closed_file(key)
                    raise e
                self.w.renamed(key, op["value"])
                return {**op, "type": "ok"}
            case "delete":
                self.w.forget(key)
                await self.dfs.delete(key)
                return {**op, "type": "ok"}
            case "ls":
                return {**op, "type": "ok", "value": await self.dfs.ls(key or "/")}
            case "settle":
                return await self._settle(op)
            case "scrub":
                try:
                    st = await self.rt.call(self.node, "status", {"verify": True}, timeout=self.timeout_s * 3)
                except RpcError as e:
                    return {**op, "type": "fail", "error": e.code}
                reps = (st.get("chunkserver") or {}).get("replicas") or {}
                bad = sorted(h for h, r in reps.items() if r.get("ok") is False)
                return {**op, "type": "ok", "value": {"corrupt": bad}}
        return {**op, "type": "fail", "error": f"unknown f {f!r}"}

    async def _settle(self, op: Op) -> Op:
        return await settle(self.dfs, self.rt, op, self.w.settle_stall_s, self.timeout_s * 4)


async def settle(dfs: DfsClient, rt: Runtime, op: Op, stall_s: float, default_bound_s: float) -> Op:
    """Wait, as Jepsen's final reads wait for recovery, until the master reports every chunk healthy.

    Bounded in the test's time by the op's `bound_s`, and sooner by a stall: when the count of
    chunks fsck names (under-replicated, stale, corrupt, lost) has not reached a new low for
    `stall_s`, nothing is repairing and waiting longer shows nothing. The value says which:
    outcome "healthy", "stalled" (no progress for stall_s) or "still-repairing" (the bound ran
    out while the count was still falling), with the counts that tell it."""
    start = rt.now()
    deadline = start + float(op.get("bound_s") or default_bound_s)
    last: dict[str, Any] = {}
    first: int | None = None
    low: int | None = None
    low_at = start
    while True:
        try:
            last = await dfs.fsck(timeout_s=1.0)
        except DfsError as e:
            last = {"healthy": False, "error": str(e)}
        now = rt.now()
        if "error" not in last:
            count = sum(len(last.get(k) or ()) for k in FSCK_PROBLEMS)
            first = count if first is None else first
            if low is None or count < low:
                low, low_at = count, now
        if last.get("healthy"):
            outcome = "healthy"
        elif now - low_at >= stall_s:
            outcome = "stalled"
        elif now >= deadline:
            outcome = "still-repairing"
        else:
            await rt.sleep(0.25)
            continue
        break
    return {**op, "type": "ok", "value": {
        "healthy": outcome == "healthy", "outcome": outcome, "waited_s": round(now - start, 3),
        "stall_s": stall_s, "problems_first": first, "problems_last": low,
        "last_progress_ago_s": round(now - low_at, 3),
        **{k: last.get(k) for k in (*FSCK_PROBLEMS, "error") if last.get(k)}}}


class _Base:
    name = "base"

    def __init__(self, spec: TestSpec) -> None:
        self.spec = spec
        self.nodes = spec.nodes
        self.master = default_master(self.nodes, spec.options)
        self.timeout_s = spec.op_timeout_s
        self.chunk_size = int(spec.options.get("chunk_size", 4 * 1024 * 1024))
        self.settle_stall_s = max(self.timeout_s * 4, 3 * float(spec.options.get("lease_s", 3.0)))
        """No new low in fsck's problem count for this long (past a restarted master's grace and a
        revoked lease running out) and the final settle stops waiting: nothing is repairing."""
        self._seqs: dict[int, itertools.count[int]] = {}

    def client(self, rt: Runtime, node: str) -> Client:
        return DfsWorkloadClient(self, rt, node)

    def _status(self, rng: random.Random) -> Op | None:
        return {"f": "status", "value": None} if rng.random() < STATUS_SHARE else None

    def _scrubs(self, nodes: list[str]) -> list[tuple[str, Op]]:
        """Before the settle, every chunkserver verifies every replica now and reports what it finds, as
        Jepsen's final phase waits for recovery: a corruption the background scrubber has not reached yet
        is repaired before the final reports, not judged a stuck repair."""
        return [(n, {"f": "scrub", "value": None, "final": True}) for n in nodes]

    def _final_statuses(self, nodes: list[str]) -> list[tuple[str, Op]]:
        return [(n, {"f": "status", "value": None, "final": True}) for n in nodes]

    def checkers(self) -> dict[str, Checker]:
        return {"dfs-state": check_state}

    # files-workload bookkeeping (no-ops here)
    def closed_file(self, path: str) -> None: ...
    def renamed(self, src: str, dst: str) -> None: ...
    def forget(self, path: str) -> None: ...


class AppendWorkload(_Base):
    name = "append"

    def __init__(self, spec: TestSpec, *, files: int = APPEND_FILES) -> None:
        super().__init__(spec)
        self.files = [f"/append/f{i}" for i in range(files)]
        self.max_record = max(64, min(2048, self.chunk_size // 16))

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        if (op := self._status(rng)) is not None:
            return op
        key = rng.choice(self.files)
        if rng.random() < 0.25:
            return {"f": "read", "key": key, "value": None}
        seq = next(self._seqs.setdefault(process, itertools.count(1)))
        return {"f": "append", "key": key, "value": f"{process}:{seq}", "size": rng.randint(16, self.max_record)}

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        ops = [*self._scrubs(nodes), (self.master, SETTLE_OP)]
        ops += [(n, {"f": "read", "key": k, "value": None, "final": True}) for n in nodes for k in self.files]
        return ops + self._final_statuses(nodes)

    def checkers(self) -> dict[str, Checker]:
        return {"dfs-append": check_appends, **super().checkers()}


class FilesWorkload(_Base):
    name = "files"

    def __init__(self, spec: TestSpec) -> None:
        super().__init__(spec)
        self._ids = itertools.count(1)
        self.closed: dict[str, int] = {}
        """Path -> size of every file whose create was acknowledged, under its current name."""
        self.sizes: dict[str, int] = {}

    def closed_file(self, path: str) -> None:
        self.closed[path] = self.sizes.get(path.split(".r")[0], 0)

    def renamed(self, src: str, dst: str) -> None:
        self.closed[dst] = self.closed.pop(src, self.sizes.get(src.split(".r")[0], 0))

    def forget(self, path: str) -> None:
        self.closed.pop(path, None)

    def next_op(self, process: int, rng: random.Random) -> Op | None:
        if (op := self._status(rng)) is not None:
            return op
        x = rng.random()
        closed = sorted(self.closed)
        if x < 0.35 or not closed:
            path = f"/files/f{next(self._ids)}"
            size = int(self.chunk_size * rng.uniform(1.1, 2.9))
            self.sizes[path] = size
            return {"f": "create", "key": path, "value": {"size": size}}
        path = rng.choice(closed)
        if x < 0.85:
            return {"f": "read", "key": path, "value": None}
        if x < 0.93:
            self.forget(path)  # out of play while the rename is in flight
            return {"f": "rename", "key": path, "value": f"{path.split('.r')[0]}.r{next(self._ids)}"}
        self.forget(path)
        return {"f": "delete", "key": path, "value": None}

    def final_ops(self, nodes: list[str]) -> list[tuple[str, Op]]:
        ops = [*self._scrubs(nodes), (self.master, SETTLE_OP),
               (self.master, {"f": "ls", "key": "/files", "value": None, "final": True})]
        live = sorted(self.closed)
        everywhere = sum(self.closed.values()) * len(nodes) <= FINAL_READ_BUDGET
        for i, path in enumerate(live):
            readers = nodes if everywhere else [nodes[i % len(nodes)]]
            ops += [(n, {"f": "read", "key": path, "value": None, "final": True}) for n in readers]
        return ops + self._final_statuses(nodes)

    def checkers(self) -> dict[str, Checker]:
        return {"dfs-files": check_files, **super().checkers()}


# ---------------------------------------------------------------- checkers


def check_appends(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    from checkers import dfs_append

    return dfs_append.check(history, test)


def check_files(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    from checkers import dfs_files

    return dfs_files.check(history, test)


def check_state(history: list[Op], test: dict[str, Any]) -> dict[str, Any]:
    from checkers import dfs_state
    from nemesis.catalog import VOCABULARY

    return dfs_state.check(history, test, VOCABULARY)  # clock faults: a moved clock's lease views prove nothing


# ---------------------------------------------------------------- harness hooks


def report_sections(history: list[Op], results: dict[str, Any]) -> list[tuple[str, str]]:
    """Files and where each replica lives, leases and versions over time, and the master's events."""
    state = (results.get("checkers") or results).get("dfs-state") or {}
    return [
        ("DFS chunks and replicas at the end", _placement_html(state.get("final"))),
        ("DFS leases over time", _leases_svg(state.get("leases") or [], state.get("overlapping_leases") or [])),
        ("DFS chunk versions over time", _versions_html(state.get("versions") or {})),
        ("DFS master events (re-replication, failures, corruption, garbage)", _events_html(state.get("events") or [])),
    ]


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _placement_html(final: dict[str, Any] | None) -> str:
    if not final:
        return "<p>no final report from the master</p>"
    rows = [[h, p["file"], p["version"], ", ".join(p["good"]) or "-", ", ".join(p["corrupt"]) or "-",
             ", ".join(p["other"]) or "-"] for h, p in sorted(final["placement"].items(), key=lambda kv: int(kv[0]))]
    return (f"<p>goal: {final['goal']} replicas per chunk</p>"
            + _table(["chunk", "file", "version", "verified replicas", "corrupt", "other versions"], rows))


_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]


def _leases_svg(leases: list[dict[str, Any]], overlaps: list[dict[str, Any]], max_rows: int = 40) -> str:
    if not leases:
        return "<p>no leases reported</p>"
    handles = sorted({x["handle"] for x in leases})[:max_rows]
    primaries = sorted({str(x["primary"]) for x in leases})
    colour = {p: _PALETTE[i % len(_PALETTE)] for i, p in enumerate(primaries)}
    t0 = min(x["start_s"] for x in leases)
    t1 = max(x["end_s"] for x in leases)
    span = max(t1 - t0, 1e-6)
    width, row, left = 900, 24, 70
    height = row * len(handles) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + left}" height="{height}">']
    for i, h in enumerate(handles):
        y = i * row + 4
        for o in overlaps:
            if o.get("handle") == h and isinstance(o.get("at_s"), int | float):
                a = left + (o["at_s"] - t0) / span * width
                w = max(float(o.get("overlap_s") or 0) / span * width, 3)
                who = " and ".join(str(x.get("primary")) for x in o.get("leases") or [])
                parts.append(f'<rect x="{a - 2:.1f}" y="{y - 2}" width="{w + 4:.1f}" height="{row - 2}" fill="none" '
                             f'stroke="#cf222e" stroke-width="2"><title>{html.escape(f"two leases at once: {who}")}'
                             '</title></rect>')
        parts.append(f'<text x="2" y="{y + 11}" font-size="11">chunk {h}</text>')
        for x in leases:
            if x["handle"] != h:
                continue
            a = left + (x["start_s"] - t0) / span * width
            b = left + (x["end_s"] - t0) / span * width
            held = x["source"] != "master"
            tip = html.escape(f"chunk {h}: {x['primary']} v{x['version']} {x['start_s']}-{x['end_s']}s "
                              f"({'as the primary saw it' if held else 'as the master saw it'})")
            parts.append(f'<rect x="{a:.1f}" y="{y + (10 if held else 0)}" width="{max(b - a, 1):.1f}" '
                         f'height="{7 if held else 9}" fill="{colour[str(x["primary"])]}"><title>{tip}</title></rect>')
    legend = " ".join(f'<span style="color:{c}">&#9632; {html.escape(p)}</span>' for p, c in colour.items())
    parts.append(f'<text x="{left}" y="{height - 6}" font-size="11">{t0:.1f}s</text>'
                 f'<text x="{left + width - 40}" y="{height - 6}" font-size="11">{t1:.1f}s</text></svg>')
    warn = (f"<p><b>{len(overlaps)} chunk(s) had two leases at once</b> (outlined in red).</p>" if overlaps else "")
    return (f"<p>each bar is one lease, coloured by its primary (upper: the master's table; lower: the primary's "
            f"own view); {legend}</p>" + warn + "".join(parts))


def _versions_html(versions: dict[str, list[list[Any]]]) -> str:
    if not versions:
        return "<p>no master reports</p>"
    rows = [[h, " → ".join(f"v{v} ({t}s)" for t, v in series)]
            for h, series in sorted(versions.items(), key=lambda kv: int(kv[0]))[:60]]
    return _table(["chunk", "version (from the master's leases, clones and reports; test time)"], rows)


def _events_html(events: list[dict[str, Any]]) -> str:
    shown = [e for e in events if e.get("kind") != "lease"]
    if not shown:
        return "<p>none reported</p>"
    rows = [[e.get("at_s"), e.get("kind"), ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("at_s", "kind"))]
            for e in shown[-150:]]
    return _table(["at (s)", "event", "details"], rows)


WORKLOADS = {"append": AppendWorkload, "files": FilesWorkload}
DEFAULT_WORKLOAD = "append"

