"""Crash (the lab's crash.go): map and reduce kill their process or stall at random.

A third of the calls exit the whole node process at once (`os._exit`, as the lab's `os.Exit(1)`), a third
stall for up to `PICLUSTER_MR_STALL_S` seconds (10 in the lab) holding the worker, the rest run normally.
Like the lab's app it emits four keys per map; unlike it, the values do not depend on how the input was
split into map tasks (a file has several chunks here), so the whole files run sequentially give the answer.
"""

from __future__ import annotations

import os
import random
import time

from tests.test_mapreduce_apps import nocrash


def maybe_crash() -> None:
    roll = random.randrange(1000)
    if roll < 330:
        os._exit(1)
    if roll < 660:
        time.sleep(random.uniform(0.0, float(os.environ.get("PICLUSTER_MR_STALL_S", "10"))))


def map(key: str, value: str) -> list[tuple[str, str]]:
    maybe_crash()
    return nocrash.map(key, value)


def reduce(key: str, values: list[str]) -> str:
    maybe_crash()
    return nocrash.reduce(key, values)
