"""Frames on the wire of the real runtime: length-prefixed msgpack arrays.

Rules this module keeps:

- A frame is a 4-byte big-endian unsigned length N followed by N bytes of
  msgpack encoding one array `[kind, id, src, method, body]`:
  `kind` an int from `Kind`, `id` a non-negative int (the request id; 0 for
  one-way messages), `src` the sender's node id (str), `method` a str ("" in
  responses), `body` any msgpack value (for `ERROR` frames a dict
  `{"code", "definite", "message"}`).
- N must be 1..`MAX_FRAME_BYTES`; anything larger is refused at the header,
  before a byte of the body is buffered.
- On an authenticated connection the body is followed by its tag (N counts
  it) and the decoder's `session` checks and strips it before decoding
  (real_auth); a frame whose tag does not verify is a `ProtocolError`.
- Bounds: `id` 0..INT_MAX, `src` at most MAX_NAME_CHARS characters,
  `method` at most MAX_METHOD_CHARS.
- Decoding is pure and strict: garbage bytes, truncated msgpack, trailing
  bytes after the array, a wrong shape or a wrong field type all raise
  `ProtocolError` (from api.py). The caller logs it and closes the
  connection; nothing here touches sockets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import msgpack

from systems.runtime.api import INT_MAX, ProtocolError

MAX_FRAME_BYTES = 16 * 1024 * 1024
"""Largest accepted frame body; a bigger length prefix closes the connection."""
TAG_ALLOWANCE = 16
"""Room for an authenticated frame's tag (real_auth.TAG_BYTES) beyond MAX_FRAME_BYTES."""
MAX_NAME_CHARS = 64
MAX_METHOD_CHARS = 128


class Opener(Protocol):
    """Checks and strips an authenticated frame's tag (real_auth.Session)."""

    def open(self, payload: bytes) -> bytes | memoryview: ...

_HEADER = struct.Struct(">I")
HEADER_BYTES = _HEADER.size


class Kind(IntEnum):
    REQUEST = 0
    RESPONSE = 1
    ERROR = 2
    ONEWAY = 3
    CONTROL = 4


_KINDS = frozenset(int(k) for k in Kind)
_KIND_OF = {int(k): k for k in Kind}


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    id: int
    src: str
    method: str
    body: Any


def encode(frame: Frame) -> bytes:
    """Header + msgpack body. Raises TypeError for a body msgpack cannot carry,
    ValueError when the frame would exceed MAX_FRAME_BYTES."""
    payload = msgpack.packb(
        [int(frame.kind), frame.id, frame.src, frame.method, frame.body], use_bin_type=True
    )
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    return _HEADER.pack(len(payload)) + payload


def encode_raw(kind: Kind, req_id: int, src: str, method: str, body: Any) -> bytes:
    """Same as `encode(Frame(...))` without building the dataclass (hot path)."""
    payload = msgpack.packb([int(kind), req_id, src, method, body], use_bin_type=True)
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    return _HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes | memoryview) -> Frame:
    """One frame body (without its header) -> Frame, or ProtocolError."""
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
    except Exception as e:  # msgpack raises several unrelated types (ExtraData, ValueError, ...)
        raise ProtocolError(f"undecodable msgpack: {type(e).__name__}: {e}") from None
    if not isinstance(obj, list) or len(obj) != 5:
        raise ProtocolError(f"frame is not a 5-element array: {type(obj).__name__}")
    kind, req_id, src, method, body = obj
    if type(kind) is not int or kind not in _KINDS:
        raise ProtocolError(f"bad frame kind {kind!r}")
    if type(req_id) is not int or not 0 <= req_id <= INT_MAX:
        raise ProtocolError(f"bad request id {req_id!r}")
    if not isinstance(src, str) or not isinstance(method, str):
        raise ProtocolError("frame src and method must be strings")
    if len(src) > MAX_NAME_CHARS or len(method) > MAX_METHOD_CHARS:
        raise ProtocolError(f"frame src or method too long ({len(src)}, {len(method)} characters)")
    if kind == Kind.ERROR and not (
        isinstance(body, dict) and isinstance(body.get("code"), str) and isinstance(body.get("definite"), bool)
    ):
        raise ProtocolError("error frame body must be {code: str, definite: bool, message: str}")
    return Frame(_KIND_OF[kind], req_id, src, method, body)


class FrameDecoder:
    """Incremental decoder: feed bytes as they come, collect whole frames.

    After a ProtocolError the decoder is poisoned: the connection must be closed.
    `session`, once set, checks and strips each frame's tag.
    """

    __slots__ = ("_buf", "_need", "session")

    def __init__(self, session: Opener | None = None) -> None:
        self._buf = bytearray()
        self._need = -1  # body length of the frame being read, -1 while reading a header
        self.session = session

    @property
    def buffered(self) -> int:
        """Bytes held that do not make a whole frame yet (non-zero at EOF = a truncated frame)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        if not self._buf and self._need < 0 and len(data) >= HEADER_BYTES:
            # fast path: exactly one whole frame, nothing buffered (the usual case for small RPCs)
            (n,) = _HEADER.unpack_from(data)
            if 0 < n <= MAX_FRAME_BYTES and len(data) == HEADER_BYTES + n:  # within every limit
                body = data[HEADER_BYTES:]
                return [decode_payload(body if self.session is None else self.session.open(body))]
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        pos = 0
        while True:
            if self._need < 0:
                if len(buf) - pos < HEADER_BYTES:
                    break
                (n,) = _HEADER.unpack_from(buf, pos)
                limit = MAX_FRAME_BYTES if self.session is None else MAX_FRAME_BYTES + TAG_ALLOWANCE
                if n == 0 or n > limit:
                    self._buf = bytearray()
                    raise ProtocolError(f"frame length {n} outside 1..{limit}")
                pos += HEADER_BYTES
                self._need = n
            if len(buf) - pos < self._need:
                break
            payload = bytes(buf[pos : pos + self._need])
            pos += self._need
            self._need = -1
            try:
                frames.append(decode_payload(payload if self.session is None else self.session.open(payload)))
            except ProtocolError:
                self._buf = bytearray()
                raise
        if pos:
            del buf[:pos]
        return frames
