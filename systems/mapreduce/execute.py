"""Running one map or reduce task's user code over bytes in memory: no I/O here.

Rules this module keeps:

- A map task turns its split's text into R runs, one per reduce partition.
  A run is the msgpack encoding of `[[key, [values...]], ...]` sorted by
  key; values keep the order `map` emitted them in. `combine` (when the job
  has one) runs per key with more than one value; like Hadoop's combiner it
  may run zero or more times, which the job contract allows.
- A reduce task merges the runs of every map task in map-task order (so
  each key's values arrive in an order fixed by the input alone), calls
  `reduce` once per key in key order, and joins `output(key, value)`: the
  partition's output text, UTF-8.
- A key that is not a str, or a value msgpack cannot carry, is the job's
  fault: `JobFailure`, never a crash of the worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from systems.mapreduce.jobs import Job
from systems.mapreduce.partition import Partitioner


class JobFailure(Exception):
    """The job's own code raised or produced something unusable; the message says what."""


@dataclass(frozen=True, slots=True)
class MapResult:
    runs: list[bytes]
    records: list[int]
    """Distinct keys per partition."""


def run_map(job: Job, key: str, text: str, partition: Partitioner, r: int) -> MapResult:
    buckets: list[dict[str, list[Any]]] = [{} for _ in range(r)]
    try:
        for k, v in job.map(key, text):
            if not isinstance(k, str):
                raise JobFailure(f"map emitted a key of type {type(k).__name__}; keys are str")
            bucket = buckets[partition(k)]
            values = bucket.get(k)
            if values is None:
                bucket[k] = [v]
            else:
                values.append(v)
    except JobFailure:
        raise
    except Exception as e:
        raise JobFailure(f"map raised {type(e).__name__}: {e}") from e
    runs, records = [], []
    for bucket in buckets:
        items = sorted(bucket.items())
        if job.combine is not None:
            items = [(k, vs if len(vs) == 1 else [_combine(job, k, vs)]) for k, vs in items]
        runs.append(_pack(items))
        records.append(len(items))
    return MapResult(runs, records)


def _combine(job: Job, key: str, values: list[Any]) -> Any:
    assert job.combine is not None
    try:
        return job.combine(key, values)
    except Exception as e:
        raise JobFailure(f"combine raised {type(e).__name__}: {e}") from e


def _pack(items: list[tuple[str, list[Any]]]) -> bytes:
    try:
        return msgpack.packb(items)
    except (TypeError, ValueError, OverflowError) as e:
        raise JobFailure(f"map emitted a value msgpack cannot carry: {e}") from e


def merge_runs(runs: Iterable[bytes]) -> dict[str, list[Any]]:
    """Every key's values across runs, runs taken in the order given."""
    groups: dict[str, list[Any]] = {}
    for run in runs:
        for k, values in msgpack.unpackb(run):
            got = groups.get(k)
            if got is None:
                groups[k] = values
            else:
                got.extend(values)
    return groups


def run_reduce(job: Job, runs: Iterable[bytes]) -> bytes:
    groups = merge_runs(runs)
    out = []
    try:
        for k in sorted(groups):
            out.append(job.output(k, job.reduce(k, groups[k])))
    except Exception as e:
        raise JobFailure(f"reduce raised {type(e).__name__}: {e}") from e
    return "".join(out).encode("utf-8")


def sequential(job: Job, inputs: list[tuple[str, str]], partition: Partitioner, r: int) -> list[bytes]:
    """The whole job in one process, one map per (key, text): the R output partitions (for tests)."""
    per_map = [run_map(job, key, text, partition, r).runs for key, text in inputs]
    return [run_reduce(job, [runs[p] for runs in per_map]) for p in range(r)]
