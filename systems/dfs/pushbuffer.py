"""Data pushed to a chunkserver ahead of the mutation that uses it (GFS §3.2: data flow).

Rules this module keeps:

- Data waits in memory under its data id until a mutation consumes it, it
  is older than `ttl_s`, or room is needed: the total is capped at
  `cap_bytes`, the oldest entries going first.
- A push of an id already held replaces it (a client retrying re-pushes).
- Data may arrive in parts (`put_part`, pushed concurrently so the chain's
  hops overlap): it is held aside, counted against the cap and the ttl like
  whole data, and becomes visible under its id only once every part is
  there, joined in part order. A mutation never sees part of its data.
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
        self.partial: OrderedDict[str, tuple[list[bytes | None], float]] = OrderedDict()
        self.size = 0
        """Bytes held, whole and in parts."""

    def put(self, data_id: str, data: bytes, now: float) -> bool:
        """Keep the data; False when it alone is larger than the whole buffer."""
        if len(data) > self.cap_bytes:
            return False
        self._pop(data_id)
        self.expire(now)
        while self.size + len(data) > self.cap_bytes and self._evict_oldest(keep=data_id):
            pass
        self.entries[data_id] = (data, now)
        self.size += len(data)
        return True

    def put_part(self, data_id: str, part: int, parts: int, data: bytes, now: float) -> bool:
        """Keep part `part` of `parts`; the whole appears under `data_id` with its last part. False when
        it cannot fit."""
        if parts == 1:
            return self.put(data_id, data, now)
        if len(data) > self.cap_bytes:
            return False
        held = self.partial.get(data_id)
        if held is None or len(held[0]) != parts:
            self._pop_partial(data_id)
            held = self.partial[data_id] = ([None] * parts, now)
        pieces = held[0]
        old = pieces[part]
        if old is not None:
            self.size -= len(old)
        pieces[part] = data
        self.size += len(data)
        if any(p is None for p in pieces):
            self.expire(now)
            while self.size > self.cap_bytes and self._evict_oldest(keep=data_id):
                pass
            return data_id in self.partial
        self._pop_partial(data_id)
        return self.put(data_id, b"".join(p for p in pieces if p is not None), now)

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
                break
            self._pop(oldest)
        while self.partial:
            oldest = next(iter(self.partial))
            if now - self.partial[oldest][1] <= self.ttl_s:
                break
            self._pop_partial(oldest)

    def _evict_oldest(self, keep: str) -> bool:
        """Drop the oldest whole entry, else the oldest other partial one; False when nothing is left."""
        if self.entries:
            self._pop(next(iter(self.entries)))
            return True
        other = next((k for k in self.partial if k != keep), None)
        if other is None:
            self._pop_partial(keep)
            return False
        self._pop_partial(other)
        return True

    def _pop_partial(self, data_id: str) -> None:
        held = self.partial.pop(data_id, None)
        if held is not None:
            self.size -= sum(len(p) for p in held[0] if p is not None)

    def _pop(self, data_id: str) -> tuple[bytes, float] | None:
        entry = self.entries.pop(data_id, None)
        if entry is not None:
            self.size -= len(entry[0])
        return entry
