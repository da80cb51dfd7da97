"""Reduce parallelism (the lab's rtiming.go): each reduce says how many reduces ran beside it."""

from __future__ import annotations

from tests.test_mapreduce_apps._scratch import nparallel


def map(key: str, value: str) -> list[tuple[str, str]]:
    return [(k, "1") for k in "abcdefghij"]


def reduce(key: str, values: list[str]) -> str:
    return str(nparallel("reduce"))
