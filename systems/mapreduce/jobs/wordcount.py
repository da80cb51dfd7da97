"""Word count: how often each whitespace-separated word occurs in the input.

map counts the words of its split at once (in-mapper combining: one
(word, count) pair per distinct word rather than one (word, 1) per word);
combine and reduce add counts. Output lines are `word count`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def map(key: str, value: str) -> Iterable[tuple[str, int]]:
    return Counter(value.split()).items()


def reduce(key: str, values: list[int]) -> int:
    return sum(values)


combine = reduce
