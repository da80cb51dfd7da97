"""Distributed grep: the lines that match a regular expression (paper §2.3).

Parameters: `pattern` (a Python regular expression, searched in each line).
map emits (line, [path]) for every matching line; reduce is the identity
(the sorted list of paths the line came from, once per occurrence). Output:
one `path:line` per occurrence, lines in order, paths sorted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from systems.mapreduce.jobs import Job, lines


def make(params: dict[str, Any]) -> Job:
    pattern = params["pattern"]
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("pattern must be a non-empty string")
    try:
        search = re.compile(pattern).search
    except re.error as e:
        raise ValueError(f"pattern {pattern!r} is not a regular expression: {e}") from None

    def map_fn(key: str, value: str) -> Iterable[tuple[str, list[str]]]:
        doc = [key]
        return ((line, doc) for line in lines(value) if search(line))

    return Job(name="grep", map=map_fn, reduce=reduce, combine=reduce, output=output)


def reduce(key: str, values: list[list[str]]) -> list[str]:
    return sorted(path for paths in values for path in paths)


def output(key: str, value: list[str]) -> str:
    return "".join(f"{path}:{key}\n" for path in value)
