"""Inverted index: for each word, the input files it occurs in (the MIT lab's indexer).

map emits (word, [path]) once per distinct word of its split; combine and
reduce take the sorted union of the paths (a file split into several
chunks emits the same pair more than once). Output lines are
`word n path1,path2,...` with the paths sorted.
"""

from __future__ import annotations

from collections.abc import Iterable


def map(key: str, value: str) -> Iterable[tuple[str, list[str]]]:
    doc = [key]
    return ((word, doc) for word in set(value.split()))


def reduce(key: str, values: list[list[str]]) -> list[str]:
    return sorted({path for paths in values for path in paths})


combine = reduce


def output(key: str, value: list[str]) -> str:
    return f"{key} {len(value)} {','.join(value)}\n"
