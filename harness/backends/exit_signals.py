"""Signal discipline around a cluster's lifetime (every process backend, through lifecycle.py).

Rules this module keeps:

- `sigterm_exits()`: while a cluster exists, SIGTERM raises
  `SystemExit(143)` (128 + SIGTERM) wherever the main thread is, so
  `finally` blocks and the teardown stack run; the previous handler comes
  back afterwards. Inside the event loop the lifecycle turns SIGTERM into a
  cancelled body instead, with the same exit status in the end.
- `signals_ignored()`: SIGINT and SIGTERM are ignored while teardown runs,
  so a second Ctrl-C cannot leave half a cluster behind; the previous
  handlers come back afterwards.
- Both do nothing outside the main thread (Python only delivers signals
  there).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

EXIT_SIGTERM = 128 + signal.SIGTERM


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    if not _main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    if not _main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
