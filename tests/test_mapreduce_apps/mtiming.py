"""Map parallelism (the lab's mtiming.go): each map says when it ran and how many maps ran beside it."""

from __future__ import annotations

import os
import time

from tests.test_mapreduce_apps._scratch import nparallel


def map(key: str, value: str) -> list[tuple[str, str]]:
    started = f"{time.time():.1f}"
    n = nparallel("map")
    return [(f"times-{os.getpid()}", started), (f"parallel-{os.getpid()}", str(n))]


def reduce(key: str, values: list[str]) -> str:
    return " ".join(sorted(values))
