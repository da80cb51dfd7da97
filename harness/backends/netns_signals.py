"""Signal discipline around a real network's lifetime (used by the netns and ssh backends).

Rules this module keeps:

- `terminate_as_exit()`: while the network exists, a SIGTERM that nobody
  handles (default disposition) becomes `SystemExit(143)`, so `finally`
  blocks run and tear the network down. A caller's own handler (the CLI
  turns SIGTERM into KeyboardInterrupt) is left in place.
- `signals_ignored()`: SIGINT and SIGTERM are ignored while teardown runs,
  so a second Ctrl-C cannot leave half a network behind; the previous
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


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    if not _main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
