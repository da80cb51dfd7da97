"""Messages from a netns run's bridge capture: TCP streams reassembled, our frames decoded.

Rules this module keeps:

- The capture is read with scapy (harness/backends/netns_capture.py writes
  it). Only IPv4 TCP segments between the run's addresses count: each node's
  address from netns-plan.json, and the bridge's own address, which is the
  harness (its clients, probes and control channel: the lane "harness").
- Each direction of each connection is reassembled by sequence number:
  retransmitted bytes are taken once (the first copy's time stands),
  segments that arrive early wait for the gap to fill, and a stream whose
  handshake was not captured starts at the lowest sequence number seen.
- The reassembled bytes are cut into frames by systems/runtime/real_wire.py
  (4-byte length, then msgpack `[kind, id, src, method, body]`); a frame is
  sent when its first byte crossed the bridge and delivered when the
  receiver's TCP acknowledged its last byte. Its type is its method and, for
  requests and one-way messages, the body's own type name when it has one
  (`message_type`: Raft's `t`, a client request's `op`). A frame never acknowledged is
  `dropped` (an iptables DROP in the receiver's namespace still lets it
  cross the bridge). A response carries the method of the request it
  answers (same connection, same id).
- On an authenticated connection (systems/runtime/real_auth.py) the
  handshake's frames (msgpack maps) are stepped over, and every frame after
  it carries a 16-byte tag after its body: the tag is cut off unchecked
  (the harness holds no pair key; the nodes checked it).
- Bytes that do not decode end that direction of the stream (as the node
  itself would close the connection); they are counted, never an error.
  Bytes the capture missed (a gap no later segment fills) cost the frame
  they cut; decoding resumes at the next segment and the gaps are counted.
"""

from __future__ import annotations

import bisect
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from base.history import Op
from harness.lamport import Flow, Message, first_client_offset, read_clock
from systems.runtime.api import ProtocolError
from systems.runtime.real_auth import TAG_BYTES
from systems.runtime.real_wire import HEADER_BYTES, MAX_FRAME_BYTES, Kind, decode_payload

HARNESS = "harness"
SEQ_MOD = 2**32
KIND_WORD = {Kind.REQUEST: "request", Kind.RESPONSE: "response", Kind.ERROR: "error", Kind.ONEWAY: "oneway",
             Kind.CONTROL: "control"}

Endpoint = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Segment:
    time: float
    src: Endpoint
    dst: Endpoint
    seq: int
    ack: int | None
    syn: bool
    payload: bytes


@dataclass
class Direction:
    """One direction of one connection: its bytes in order, and the frames cut from them."""

    isn: int | None = None
    next_rel: int = 0
    early: dict[int, tuple[bytes, float]] = field(default_factory=dict)
    buf: bytearray = field(default_factory=bytearray)
    buf_start_rel: int = 0
    """Stream offset of buf[0]."""
    times: list[tuple[int, float]] = field(default_factory=list)
    """(stream offset, time the byte at that offset first crossed the bridge), increasing."""
    acks: list[tuple[int, float]] = field(default_factory=list)
    """(offset acknowledged by the other side, when), in capture order."""
    frames: list[tuple[int, int, Any]] = field(default_factory=list)
    """(first byte offset, end offset, decoded frame)."""
    broken: str = ""
    gaps: int = 0
    sealed: bool = False
    """The frames carry an authentication tag (seen once, for the rest of the stream)."""
    _ack_max: list[int] = field(default_factory=list)

    def rel(self, seq: int) -> int:
        assert self.isn is not None
        return (seq - self.isn) % SEQ_MOD

    def time_of(self, offset: int) -> float:
        i = bisect.bisect_right(self.times, (offset, float("inf"))) - 1
        return self.times[max(0, i)][1]

    def take(self, data: bytes, rel: int, t: float) -> None:
        """Bytes at stream offset `rel`, seen at `t`: in order, early or already had."""
        if rel + len(data) <= self.next_rel:
            return  # a retransmission of bytes we have
        if rel < self.next_rel:
            data, rel = data[self.next_rel - rel:], self.next_rel
        if rel > self.next_rel:
            self.early.setdefault(rel, (data, t))
            return
        self._append(data, t)
        self._drain()

    def _drain(self) -> None:
        while self.next_rel in self.early:
            more, t2 = self.early.pop(self.next_rel)
            self._append(more, t2)
        for r in [r for r in self.early if r < self.next_rel]:  # overlapped by what just came
            more, t2 = self.early.pop(r)
            self.take(more, r, t2)

    def close_gaps(self) -> None:
        """Bytes the capture never saw (the kernel drops frames a busy capture does not read in time): the
        frame they cut is lost; decoding goes on from the next segment, which usually starts a frame (our
        transport writes whole frames), else from the one after."""
        while self.early:
            rel = min(self.early)
            self.gaps += 1
            self.buf.clear()
            self.broken = ""
            self.next_rel = self.buf_start_rel = rel
            data, t = self.early.pop(rel)
            self._append(data, t)
            self._drain()
            if self.broken:
                self.buf.clear()

    def _append(self, data: bytes, t: float) -> None:
        self.times.append((self.next_rel, t))
        self.buf += data
        self.next_rel += len(data)
        self._cut()

    def _cut(self) -> None:
        if self.broken:
            self.buf_start_rel = self.next_rel  # what follows bad bytes is not read
            self.buf.clear()
            return
        while not self.broken and len(self.buf) >= HEADER_BYTES:
            n = int.from_bytes(self.buf[:HEADER_BYTES], "big")
            if n == 0 or n > MAX_FRAME_BYTES:
                self.broken = f"frame length {n}"
                return
            if len(self.buf) < HEADER_BYTES + n:
                return
            try:
                frame = self._decode(bytes(self.buf[HEADER_BYTES:HEADER_BYTES + n]))
            except ProtocolError as e:
                self.broken = str(e)
                return
            start = self.buf_start_rel
            end = start + HEADER_BYTES + n
            if frame is not None:
                self.frames.append((start, end, frame))
            del self.buf[:HEADER_BYTES + n]
            self.buf_start_rel = end

    def _decode(self, payload: bytes) -> Any:
        """A frame; None for a handshake frame. Raises ProtocolError for bytes that are neither."""
        if not self.sealed:
            with contextlib.suppress(ProtocolError):
                return decode_payload(payload)
            if _handshake(payload):
                return None
        if len(payload) <= TAG_BYTES:
            raise ProtocolError("frame too short for an authentication tag")
        frame = decode_payload(payload[:-TAG_BYTES])
        self.sealed = True
        return frame

    def acked_at(self, end: int) -> float | None:
        """When the other side first acknowledged every byte before `end` (None: never)."""
        if len(self._ack_max) != len(self.acks):
            top, self._ack_max = -1, []
            for offset, _ in self.acks:
                top = max(top, offset)
                self._ack_max.append(top)
        i = bisect.bisect_left(self._ack_max, end)
        return self.acks[i][1] if i < len(self.acks) else None


def _handshake(payload: bytes) -> bool:
    try:
        return isinstance(msgpack.unpackb(payload, raw=False), dict)
    except Exception:  # msgpack raises several types for bytes that are not one object
        return False


def segments(path: Path) -> Iterator[Segment]:
    """The TCP segments of a pcap file, in capture order."""
    from scapy.layers.inet import IP, TCP
    from scapy.packet import Raw
    from scapy.utils import PcapReader

    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if IP not in pkt or TCP not in pkt:
                continue
            ip, tcp = pkt[IP], pkt[TCP]
            flags = int(tcp.flags)
            payload = bytes(pkt[Raw].load) if Raw in pkt else b""
            yield Segment(float(pkt.time), (ip.src, int(tcp.sport)), (ip.dst, int(tcp.dport)), int(tcp.seq),
                          int(tcp.ack) if flags & 0x10 else None, bool(flags & 0x02), payload)


def _signed(delta: int) -> int:
    """A sequence-number difference as a signed number (sequence space wraps at 2**32)."""
    delta %= SEQ_MOD
    return delta - SEQ_MOD if delta >= SEQ_MOD // 2 else delta


def reassemble(segs: Iterator[Segment], known: set[str]) -> dict[tuple[Endpoint, Endpoint], Direction]:
    """Every direction of every connection between `known` addresses, reassembled.

    Two passes: the first finds where each direction's bytes start (the SYN's sequence number + 1, or,
    for a stream whose handshake was not captured, the lowest sequence number seen, so a segment that
    arrived early is not mistaken for a retransmission); the second feeds the bytes in capture order."""
    per_dir: dict[tuple[Endpoint, Endpoint], list[Segment]] = {}
    for s in segs:
        if s.src[0] in known and s.dst[0] in known:
            per_dir.setdefault((s.src, s.dst), []).append(s)
    dirs: dict[tuple[Endpoint, Endpoint], Direction] = {}
    for key, ss in per_dir.items():
        d = dirs[key] = Direction()
        syn = next((s for s in ss if s.syn), None)
        data = [s for s in ss if s.payload]
        if syn is not None:
            d.isn = (syn.seq + 1) % SEQ_MOD
        elif data:
            d.isn = (data[0].seq + min(_signed(s.seq - data[0].seq) for s in data)) % SEQ_MOD
        for s in data:
            if d.broken:
                break
            rel = d.rel(s.seq)
            if rel < SEQ_MOD // 2:  # bytes before the stream's start (an old connection's) are ignored
                d.take(s.payload, rel, s.time)
        if not d.broken:
            d.close_gaps()
    for (src, dst), ss in per_dir.items():  # this direction's ACKs acknowledge the other direction's bytes
        other = dirs.get((dst, src))
        if other is not None and other.isn is not None:
            other.acks = [(other.rel(s.ack), s.time) for s in ss
                          if s.ack is not None and other.rel(s.ack) <= other.next_rel + 1]
    return dirs


TYPE_KEYS = ("t", "type", "op", "f")
"""Body fields that name a message's type (Raft's peer messages carry `t`; client requests `op` or `f`)."""


def message_type(method: str, body: Any) -> str:
    """The method, and the body's own type name when it has one: "raft AppendEntries", "client put"."""
    if isinstance(body, dict):
        named = next((body[k] for k in TYPE_KEYS if isinstance(body.get(k), str)), None)
        if named:
            return f"{method} {named}" if method else named
    return method


def _body_note(body: Any, limit: int = 120) -> str:
    try:
        text = json.dumps(body, default=str, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(body)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def capture_messages(path: Path, names: dict[str, str]) -> tuple[list[Message], int, int]:
    """Messages (wall-clock times) from a capture, addresses named by `names`; how many stream directions held
    bytes that are not our frames; how many gaps (bytes the capture missed) were stepped over."""
    dirs = reassemble(segments(path), set(names))
    methods: dict[tuple[frozenset[Endpoint], int], str] = {}
    out: list[Message] = []
    for (src, dst), d in dirs.items():
        for _, _, frame in d.frames:
            if frame.kind == Kind.REQUEST:
                methods[(frozenset((src, dst)), frame.id)] = frame.method
    for (src, dst), d in dirs.items():
        conn = frozenset((src, dst))
        for start, end, frame in d.frames:
            method = frame.method or methods.get((conn, frame.id), "")
            if frame.kind in (Kind.REQUEST, Kind.ONEWAY):
                method = message_type(method, frame.body)
            acked = d.acked_at(end)
            note = _body_note(frame.body) if frame.kind != Kind.CONTROL else "control"
            out.append(Message(names[src[0]], names[dst[0]], d.time_of(start), acked, KIND_WORD[frame.kind], method,
                               "delivered" if acked is not None else "dropped",
                               note if acked is not None else f"never acknowledged; {note}"))
    out.sort(key=lambda m: (m.sent_s, m.end_s()))
    return out, sum(1 for d in dirs.values() if d.broken), sum(d.gaps for d in dirs.values())


def address_names(run_dir: Path) -> dict[str, str]:
    """IPv4 address -> lane name, from the run's netns-plan.json (the bridge's address is the harness)."""
    try:
        plan = json.loads((run_dir / "netns-plan.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    names = {str(n["ip"]): node for node, n in (plan.get("nodes") or {}).items() if isinstance(n, dict) and "ip" in n}
    if plan.get("bridge_ip"):
        names[str(plan["bridge_ip"]).split("/")[0]] = HARNESS
    return names


def _shift(messages: list[Message], offset: float) -> list[Message]:
    return [Message(m.src, m.dst, m.sent_s - offset, None if m.recv_s is None else m.recv_s - offset, m.kind,
                    m.method, m.fate, m.note) for m in messages]


def capture_flow(run_dir: Path, history: list[Op], nodes: list[str]) -> Flow:
    names = address_names(run_dir)
    messages, broken, gaps = capture_messages(run_dir / "capture.pcap", names)
    clock = read_clock(run_dir)
    if "wall_s" in clock:
        messages = _shift(messages, clock["wall_s"])
        alignment = "bridge capture, wall-clock time; history time 0 from clock.json"
    else:
        offset = first_client_offset(history, messages, nodes) or 0.0
        messages = _shift(messages, offset)
        alignment = "bridge capture, wall-clock time; aligned on the first client op (no clock.json)"
    alignment += "; sent = first byte on the bridge, received = acknowledged by the receiver"
    if broken:
        alignment += f"; {broken} stream direction(s) held bytes that are not our frames"
    if gaps:
        alignment += f"; the capture missed bytes {gaps} time(s): a message there may be missing"
    lanes = [HARNESS, *nodes]
    return Flow("capture", messages, lanes, alignment)
