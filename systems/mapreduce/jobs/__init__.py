"""MapReduce jobs: importable modules with `map`, `reduce` and optional `combine`.

A job module defines, at module level (the MIT 6.5840 plug-in shape):

    def map(key: str, value: str) -> Iterable[tuple[str, Any]]
    def reduce(key: str, values: list[Any]) -> Any
    def combine(key: str, values: list[Any]) -> Any       # optional
    def output(key: str, value: Any) -> str               # optional
    PARTITIONER = "hash"                                  # optional: "hash" or "range"

or a `make(params: dict) -> Job` that builds one (for jobs with parameters,
like grep's pattern). Built-in jobs are named by their short name
(`wordcount`, `indexer`, `grep`, `sort`); any other name is a dotted module
path the nodes can import.

Rules every job keeps (they are what makes re-execution safe, paper §3.3):

- `map` is called once per input split with the split's input path as `key`
  and the text of the whole lines the split owns as `value` (see
  splits.py); it is a deterministic function of its arguments.
- Keys are `str`; values are msgpack-able. `reduce(key, values)` gets every
  value emitted for `key`, in an order that depends only on the input (map
  task order, then emission order), and returns one value.
- `combine` has reduce's contract and must not change the result: reduce
  over combined values equals reduce over the raw ones. It runs on the map
  side, per partition, before the intermediate data is written.
- `output(key, value)` is the text written for one reduced key (default
  `"key value\\n"`, the MIT lab's format); a partition's output is these
  texts in key order.
- `PARTITIONER = "range"` asks for range partitioning by sampled key
  boundaries (the sort job), so the output partitions concatenate in key
  order; the default is a stable hash of the key mod R.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

MapFn = Callable[[str, str], Iterable[tuple[str, Any]]]
ReduceFn = Callable[[str, list[Any]], Any]
OutputFn = Callable[[str, Any], str]

BUILTIN = {
    "wordcount": "systems.mapreduce.jobs.wordcount",
    "indexer": "systems.mapreduce.jobs.indexer",
    "grep": "systems.mapreduce.jobs.grep",
    "sort": "systems.mapreduce.jobs.sort",
}
PARTITIONERS = ("hash", "range")


class JobError(ValueError):
    """A job cannot be loaded: unknown name, a module without map/reduce, bad parameters."""


def default_output(key: str, value: Any) -> str:
    return f"{key} {value}\n"


def lines(text: str) -> list[str]:
    """The lines of a split's text, split on "\\n" only (a final line may lack its newline)."""
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return out


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    map: MapFn
    reduce: ReduceFn
    combine: ReduceFn | None = None
    output: OutputFn = default_output
    partitioner: str = "hash"

    def __post_init__(self) -> None:
        if self.partitioner not in PARTITIONERS:
            raise JobError(f"job {self.name}: partitioner must be one of {', '.join(PARTITIONERS)}")


def module_name(name: str) -> str:
    """The module a job name refers to: a built-in short name, or a dotted module path."""
    return BUILTIN.get(name, name)


def _import(name: str) -> ModuleType:
    if not name or any(not part.isidentifier() for part in name.split(".")):
        raise JobError(f"job {name!r} is not a built-in job ({', '.join(BUILTIN)}) or a module path")
    try:
        return importlib.import_module(module_name(name))
    except ImportError as e:
        raise JobError(f"job {name!r}: cannot import {module_name(name)}: {e}") from None


def load_job(name: str, params: dict[str, Any] | None = None) -> Job:
    """Import the job module `name` and build its Job with `params`. Raises JobError."""
    module = _import(name)
    params = dict(params or {})
    make = getattr(module, "make", None)
    if callable(make):
        try:
            job = make(params)
        except (KeyError, TypeError, ValueError) as e:
            raise JobError(f"job {name}: bad parameters {params!r}: {e}") from None
        if not isinstance(job, Job):
            raise JobError(f"job {name}: make() returned {type(job).__name__}, not a Job")
        return job
    if params:
        raise JobError(f"job {name} takes no parameters, got {sorted(params)}")
    map_fn, reduce_fn = getattr(module, "map", None), getattr(module, "reduce", None)
    if not callable(map_fn) or not callable(reduce_fn):
        raise JobError(f"job {name}: module {module.__name__} must define map(key, value) and reduce(key, values)")
    return Job(
        name=name,
        map=map_fn,
        reduce=reduce_fn,
        combine=getattr(module, "combine", None),
        output=getattr(module, "output", default_output),
        partitioner=str(getattr(module, "PARTITIONER", "hash")),
    )


__all__ = ["BUILTIN", "Job", "JobError", "default_output", "lines", "load_job", "module_name"]
