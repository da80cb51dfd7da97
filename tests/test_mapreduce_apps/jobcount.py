"""Job count (the lab's jobcount.go): every map invocation leaves a file; the reduce counts them."""

from __future__ import annotations

import itertools
import os
import random
import time

from tests.test_mapreduce_apps._scratch import scratch

_count = itertools.count()


def map(key: str, value: str) -> list[tuple[str, str]]:
    (scratch() / f"mr-worker-jobcount-{os.getpid()}-{next(_count)}").write_text("x")
    time.sleep(random.uniform(2.0, 5.0))
    return [("a", "x")]


def reduce(key: str, values: list[str]) -> str:
    return str(len(list(scratch().glob("mr-worker-jobcount-*"))))
