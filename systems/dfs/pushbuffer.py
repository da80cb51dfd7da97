"""Data pushed to a chunkserver ahead of the mutation that uses it (GFS §3.2: data flow).

Rules this module keeps:

- Data waits in memory under its data id until a mutation consumes it, it
  is older than `ttl_s`, or room is needed: the total is capped at
  `cap_bytes`, the oldest entries going first.
- A push of an id already held replaces it (a client retrying re-pushes).
- `take` removes the entry; a duplicate of an already applied mutation never
  needs its data again (secondaries skip serials they have applied).
- Pure: times are arguments.
"""

from __future__ import annotations

from collections import OrderedDict


class PushBuffer:
    def __init__(self, cap_bytes: int, ttl_s: float) -> None:
        self.cap_bytes = cap_bytes
        self.ttl_s = ttl_s
        self.entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.size = 0

    def put(self, data_id: str, data: bytes, now: float) -> bool:
        """Keep the data; False when it alone is larger than the whole buffer."""
        if len(data) > self.cap_bytes:
            return False
        self._pop(data_id)
        self.expire(now)
        while self.entries and self.size + len(data) > self.cap_bytes:
            self._pop(next(iter(self.entries)))
        self.entries[data_id] = (data, now)
        self.size += len(data)
        return True

    def get(self, data_id: str) -> bytes | None:
        entry = self.entries.get(data_id)
        return entry[0] if entry is not None else None

    def take(self, data_id: str) -> bytes | None:
        entry = self._pop(data_id)
        return entry[0] if entry is not None else None

    def expire(self, now: float) -> None:
        while self.entries:
            oldest = next(iter(self.entries))
            if now - self.entries[oldest][1] <= self.ttl_s:
                return
            self._pop(oldest)

    def _pop(self, data_id: str) -> tuple[bytes, float] | None:
        entry = self.entries.pop(data_id, None)
        if entry is not None:
            self.size -= len(entry[0])
        return entry
