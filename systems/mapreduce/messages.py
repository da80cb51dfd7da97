"""MapReduce's RPC messages as frozen dataclasses, and their msgpack-able wire form.

Methods (client -> coordinator): `mr.submit` SubmitRequest -> job status;
`mr.status` {job} -> job status; `mr.jobs` {} -> [job status];
`mr.report` {job?} -> {now_s, attempts, workers}.
Worker -> coordinator: `mr.task` TaskRequest -> Assignment wire or None;
`mr.done` DoneReport -> {verdict}.
Coordinator -> worker: `mr.ping` Ping -> PingReply.
Worker -> worker: `mr.fetch` FetchRequest -> {data, size}.

Rules:

- `from_wire` raises `BadMessage` on anything malformed; handlers answer it
  with a definite `bad-request` error and the node keeps serving.
- Job ids and paths are non-empty strings; a DFS path is absolute ("/...").
- A DoneReport is one of: ok (the task's output is in place), a job error
  (the job's own code raised: counts toward failing the job), an I/O error,
  or a fetch failure naming the map task and the attempt that held its output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from systems.mapreduce.splits import Split

MAX_REDUCES = 1000
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class BadMessage(ValueError):
    """A request that is not a valid MapReduce message."""


def _str(d: Any, key: str) -> str:
    v = d.get(key) if isinstance(d, dict) else None
    if not isinstance(v, str) or not v:
        raise BadMessage(f"{key!r} must be a non-empty string")
    return v


def _int(d: Any, key: str, lo: int = 0, hi: int = 2**62) -> int:
    v = d.get(key) if isinstance(d, dict) else None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise BadMessage(f"{key!r} must be an integer in {lo}..{hi}")
    return v


def _path(d: Any, key: str) -> str:
    v = _str(d, key)
    if not v.startswith("/") or "\x00" in v:
        raise BadMessage(f"{key!r} must be an absolute DFS path, got {v!r}")
    return v


def job_id(d: Any) -> str:
    v = _str(d, "job")
    if not JOB_ID.match(v):
        raise BadMessage(f"job id {v!r}: letters, digits, '.', '_' or '-', at most 64, starting alphanumeric")
    return v


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    job: str
    name: str
    inputs: tuple[str, ...]
    """Absolute paths or patterns (`*`, `?`, `[...]` in the last component)."""
    output: str
    reduces: int
    params: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "job": self.job, "name": self.name, "inputs": list(self.inputs), "output": self.output,
            "reduces": self.reduces, "params": dict(self.params),
        }

    @classmethod
    def from_wire(cls, d: Any) -> SubmitRequest:
        inputs = d.get("inputs") if isinstance(d, dict) else None
        if not isinstance(inputs, list) or not inputs:
            raise BadMessage("'inputs' must be a non-empty list of DFS paths or patterns")
        paths = tuple(_path({"input": p}, "input") for p in inputs)
        params = d.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise BadMessage("'params' must be an object with string keys")
        output = _path(d, "output").rstrip("/") or "/"
        if output == "/":
            raise BadMessage("'output' must be a directory below /")
        return cls(job_id(d), _str(d, "name"), paths, output, _int(d, "reduces", 1, MAX_REDUCES), params)


@dataclass(frozen=True, slots=True)
class TaskRequest:
    worker: str
    incarnation: int
    seq: int = 0
    """The worker's request counter: a request delivered twice gets the same answer twice."""

    def to_wire(self) -> dict[str, Any]:
        return {"worker": self.worker, "incarnation": self.incarnation, "seq": self.seq}

    @classmethod
    def from_wire(cls, d: Any) -> TaskRequest:
        return cls(_str(d, "worker"), _int(d, "incarnation"), _int({"seq": d.get("seq", 0)}, "seq"))


@dataclass(frozen=True, slots=True)
class TaskOrder:
    """One execution a worker is told to run (the wire form of tasks.Assignment)."""

    attempt: int
    job: str
    kind: str
    task: int
    name: str
    params: dict[str, Any]
    reduces: int
    partitioner: str
    boundaries: tuple[str, ...]
    output: str
    split: Split | None = None
    sources: tuple[tuple[int, str, int, int], ...] = ()
    """Reduce: (map index, worker, incarnation, attempt) per map output, in map order."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt, "job": self.job, "kind": self.kind, "task": self.task, "name": self.name,
            "params": self.params, "reduces": self.reduces, "partitioner": self.partitioner,
            "boundaries": list(self.boundaries), "output": self.output,
            "split": self.split.to_wire() if self.split else None, "sources": [list(s) for s in self.sources],
        }

    @classmethod
    def from_wire(cls, d: Any) -> TaskOrder:
        try:
            kind = _str(d, "kind")
            if kind not in ("map", "reduce"):
                raise BadMessage(f"kind must be map or reduce, got {kind!r}")
            split = Split.from_wire(d["split"]) if d.get("split") else None
            if kind == "map" and split is None:
                raise BadMessage("a map order needs a split")
            sources = tuple((int(m), str(w), int(i), int(a)) for m, w, i, a in d.get("sources") or ())
            return cls(
                _int(d, "attempt", 1), job_id(d), kind, _int(d, "task"), _str(d, "name"), dict(d.get("params") or {}),
                _int(d, "reduces", 1, MAX_REDUCES), _str(d, "partitioner"), tuple(d.get("boundaries") or ()),
                _path(d, "output"), split, sources,
            )
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, BadMessage):
                raise
            raise BadMessage(f"bad task order: {e}") from None


@dataclass(frozen=True, slots=True)
class DoneReport:
    worker: str
    incarnation: int
    attempt: int
    ok: bool
    error: str = ""
    job_error: bool = False
    fetch_map: int = -1
    """A fetch failure: the map task whose output could not be fetched (-1: not a fetch failure)."""
    fetch_holder: int = 0
    """... and the attempt that held it."""
    stats: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "worker": self.worker, "incarnation": self.incarnation, "attempt": self.attempt, "ok": self.ok,
            "error": self.error, "job_error": self.job_error, "fetch_map": self.fetch_map,
            "fetch_holder": self.fetch_holder, "stats": self.stats,
        }

    @classmethod
    def from_wire(cls, d: Any) -> DoneReport:
        ok = d.get("ok") if isinstance(d, dict) else None
        if not isinstance(ok, bool):
            raise BadMessage("'ok' must be a boolean")
        stats = d.get("stats") or {}
        if not isinstance(stats, dict):
            raise BadMessage("'stats' must be an object")
        return cls(
            _str(d, "worker"), _int(d, "incarnation"), _int(d, "attempt", 1), ok, str(d.get("error") or ""),
            bool(d.get("job_error")), int(d.get("fetch_map", -1)), int(d.get("fetch_holder", 0)), stats,
        )


@dataclass(frozen=True, slots=True)
class Ping:
    finished_jobs: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"finished_jobs": list(self.finished_jobs)}

    @classmethod
    def from_wire(cls, d: Any) -> Ping:
        jobs = d.get("finished_jobs") if isinstance(d, dict) else None
        if not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs):
            raise BadMessage("'finished_jobs' must be a list of job ids")
        return cls(tuple(jobs))


@dataclass(frozen=True, slots=True)
class PingReply:
    worker: str
    incarnation: int
    running: tuple[int, ...]
    reports: tuple[DoneReport, ...] = ()
    """Completion reports the coordinator has not acknowledged yet."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "worker": self.worker, "incarnation": self.incarnation, "running": list(self.running),
            "reports": [r.to_wire() for r in self.reports],
        }

    @classmethod
    def from_wire(cls, d: Any) -> PingReply:
        running = d.get("running") if isinstance(d, dict) else None
        if not isinstance(running, list) or not all(isinstance(a, int) for a in running):
            raise BadMessage("'running' must be a list of attempt ids")
        reports = d.get("reports") or []
        if not isinstance(reports, list):
            raise BadMessage("'reports' must be a list")
        return cls(_str(d, "worker"), _int(d, "incarnation"), tuple(running),
                   tuple(DoneReport.from_wire(r) for r in reports))


@dataclass(frozen=True, slots=True)
class FetchRequest:
    job: str
    attempt: int
    partition: int
    offset: int = 0
    length: int = 8 * 1024 * 1024

    def to_wire(self) -> dict[str, Any]:
        return {
            "job": self.job, "attempt": self.attempt, "partition": self.partition, "offset": self.offset,
            "length": self.length,
        }

    @classmethod
    def from_wire(cls, d: Any) -> FetchRequest:
        return cls(job_id(d), _int(d, "attempt", 1), _int(d, "partition", 0, MAX_REDUCES), _int(d, "offset"),
                   _int(d, "length", 1, 12 * 1024 * 1024))
