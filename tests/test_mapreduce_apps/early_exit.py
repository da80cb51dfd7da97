"""Early exit (the lab's early_exit.go): reduces of some keys take 3 s; the output must be final once done."""

from __future__ import annotations

import time


def map(key: str, value: str) -> list[tuple[str, str]]:
    return [(key, "1")]


def reduce(key: str, values: list[str]) -> str:
    if "sherlock" in key or "tom" in key:
        time.sleep(3.0)
    return str(len(values))
