"""Distributed sort of text lines (TeraSort's shape): range partitioning by sampled keys.

The coordinator samples lines of the input and picks R-1 boundaries, so
partition r holds the keys between boundary r-1 and boundary r, and the
output partitions, concatenated in order, are the input's lines sorted (by
code point, as `LC_ALL=C sort` orders ASCII). map emits (line, 1) per line;
combine and reduce count duplicates; output writes each line as often as
it occurred.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from systems.mapreduce.jobs import lines

PARTITIONER = "range"


def map(key: str, value: str) -> Iterable[tuple[str, int]]:
    return Counter(lines(value)).items()


def reduce(key: str, values: list[int]) -> int:
    return sum(values)


combine = reduce


def output(key: str, value: int) -> str:
    return f"{key}\n" * value
