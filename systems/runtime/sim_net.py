"""The simulated network's rules: latency, loss, duplication, reordering, partitions.

Rules this module keeps (the same semantics as the real runtime's packet filter):

- Every frame (request, reply, one-way message) gets a latency of
  `base_s + Exp(mean tail_s)`; a per-link `LinkFault` decides loss,
  duplication and extra delay with `base.links.link_delays`, the same
  decision the real packet filter makes.
- Faults act between cluster nodes only: frames to or from an endpoint that is
  not a cluster node (the harness's clients) are never lost, duplicated,
  delayed by a fault or cut by a partition.
- A grudge `{dst: [src, ...]}` drops at `dst` every frame from those `src`
  (inbound, like iptables INPUT DROP), judged when the frame *arrives*: a
  partition made while a frame is in flight catches it.
- Background `loss`/`duplicate` (NetConfig) and the link's decision are
  drawn when the frame is sent, in that order (background loss, the link,
  background duplicate); every copy gets its own latency.
- Frames on one directed link arrive in the order sent (like a TCP stream)
  unless `reorder` is on or the link has jitter.
- All randomness comes from one `random.Random` handed in; the plan for a
  frame depends only on that stream and the fault state, so a seed fixes it.
- `Journal` records every send/deliver/drop as a compact tuple; its digest
  covers every record and every payload sent (see Journal).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from math import log
from typing import Any

from base.links import LinkFault, link_delays

sha256 = hashlib.sha256

_FIFO_GAP_S = 1e-9


@dataclass(frozen=True, slots=True)
class NetConfig:
    """The simulated network's defaults (faults come and go on top of these)."""

    base_s: float = 0.0005
    """Minimum one-way latency."""
    tail_s: float = 0.0005
    """Mean of the exponential tail added to the base latency."""
    loss: float = 0.0
    """Background probability that a frame between nodes is lost."""
    duplicate: float = 0.0
    """Background probability that a frame between nodes arrives twice."""
    reorder: bool = False
    """Let frames on one link overtake each other (otherwise each link is FIFO)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        known = {"base_s", "tail_s", "loss", "duplicate", "reorder"}
        unknown = sorted(k for k in d if k not in known)
        if unknown:
            raise ValueError(f"unknown sim network options {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class Network:
    """Fault state and the per-frame plan. Pure decisions; delivery is the world's job."""

    nodes: frozenset[str]
    rng: Any
    config: NetConfig = field(default_factory=NetConfig)
    drops_from: dict[str, frozenset[str]] = field(default_factory=dict)
    links: dict[tuple[str, str], LinkFault] = field(default_factory=dict)
    _last_arrival: dict[tuple[str, str], float] = field(default_factory=dict)

    def faulty(self, src: str, dst: str) -> bool:
        """Faults apply only to frames between two cluster nodes."""
        return src in self.nodes and dst in self.nodes

    def partition(self, grudge: dict[str, list[str]]) -> None:
        for node in grudge:
            if node not in self.nodes:
                raise ValueError(f"grudge names {node!r}, which is not a cluster node")
        self.drops_from = {dst: frozenset(srcs) for dst, srcs in grudge.items() if srcs}

    def set_links(self, faults: dict[tuple[str, str], LinkFault]) -> None:
        self.links = {link: fault for link, fault in faults.items() if not fault.is_noop}

    def heal(self) -> None:
        self.drops_from = {}
        self.links = {}

    def cut(self, src: str, dst: str) -> bool:
        """True when `dst` drops frames from `src` right now (checked on arrival)."""
        srcs = self.drops_from.get(dst)
        return srcs is not None and src in srcs and src in self.nodes and dst in self.nodes

    def plan(self, src: str, dst: str, now: float) -> list[float]:
        """Arrival times for one frame sent now: [] lost, one, or two (duplicated)."""
        cfg = self.config
        rng = self.rng
        nodes = self.nodes
        faulty = src in nodes and dst in nodes
        if faulty:
            if cfg.loss and rng.random() < cfg.loss:
                return []
            fault = self.links.get((src, dst))
            if fault is not None:
                return self._plan_faulty(src, dst, now, fault)
            if cfg.duplicate and rng.random() < cfg.duplicate:
                return self._arrivals(src, dst, now, [0.0, 0.0], not cfg.reorder)
        # The common case, one copy and no link fault: _arrivals(src, dst, now, [0.0], fifo), inlined.
        tail = cfg.tail_s
        t = now + (cfg.base_s + -log(1.0 - rng.random()) / (1.0 / tail) if tail > 0 else cfg.base_s)
        if not cfg.reorder:
            key = (src, dst)
            after = self._last_arrival.get(key, 0.0) + _FIFO_GAP_S
            if after > t:
                t = after
            self._last_arrival[key] = t
        return [t]

    def _plan_faulty(self, src: str, dst: str, now: float, fault: LinkFault) -> list[float]:
        extras = link_delays(fault, self.rng)
        if not extras:
            return []
        cfg = self.config
        if len(extras) == 1 and cfg.duplicate and self.rng.random() < cfg.duplicate:
            extras.append(extras[0])
        return self._arrivals(src, dst, now, extras, not cfg.reorder and not fault.jitter_s)

    def _arrivals(self, src: str, dst: str, now: float, extras: list[float], fifo: bool) -> list[float]:
        """Each copy gets its own latency; the first copy keeps the link FIFO when `fifo`."""
        arrivals = []
        for i, extra in enumerate(extras):
            t = now + self._latency() + extra
            if fifo and i == 0:
                key = (src, dst)
                after = self._last_arrival.get(key, 0.0) + _FIFO_GAP_S
                if after > t:
                    t = after
                self._last_arrival[key] = t
            arrivals.append(t)
        return arrivals

    def _latency(self) -> float:
        """`base_s + Exp(mean tail_s)`, drawn as random.expovariate(1 / tail_s) draws it."""
        cfg = self.config
        if cfg.tail_s > 0:
            return cfg.base_s + -log(1.0 - self.rng.random()) / (1.0 / cfg.tail_s)
        return cfg.base_s


Record = tuple[int, str, str, str, str, str, int, str]
"""(time_ns, event, src, dst, kind, method, frame id, note)."""

JOURNAL_FIELDS = ("t", "ev", "src", "dst", "kind", "method", "id", "note")


class Journal:
    """Every send / deliver / drop of the simulated network, and a digest over all of them.

    The digest is SHA-256 over two SHA-256 digests: of the journal's JSONL text
    (what to_jsonl returns) and of every payload sent, in order, each as
    b"<length>:" + payload. Same seed, same digest, whether records are kept
    or not; with `keep` the lines are formatted once, when first needed.
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.records: list[Record] = []
        self._lines: list[str] = []
        """JSONL lines of records[:len(_lines)] (kept mode), already in `_text_hash`."""
        self._text_hash = hashlib.sha256()
        self._payload_hash = hashlib.sha256()

    def add(self, record: Record, payload: bytes | None = None) -> None:
        if self.keep:
            self.records.append(record)
        else:
            self._text_hash.update(_line(record).encode() + b"\n")
        if payload is not None:
            self._payload_hash.update(b"%d:" % len(payload) + payload)

    def digest(self) -> str:
        if self.keep:
            self._format_new_lines()
        both = self._text_hash.digest() + self._payload_hash.digest()
        return sha256(both).hexdigest()

    def to_jsonl(self) -> str:
        """One JSON object a line, keys JOURNAL_FIELDS: what json.dumps(..., separators=(",", ":")) writes."""
        self._format_new_lines()
        return "".join(self._lines)

    def _format_new_lines(self) -> None:
        done = len(self._lines)
        if done == len(self.records):
            return
        new = [_line(r) + "\n" for r in self.records[done:]]
        self._text_hash.update("".join(new).encode())
        self._lines.extend(new)


def _line(record: Record) -> str:
    """json.dumps(dict(zip(JOURNAL_FIELDS, record)), separators=(",", ":")), written out."""
    t, ev, src, dst, kind, method, i, note = record
    key = (ev, src, dst, kind, method)
    middle = _MIDDLES.get(key)
    if middle is None:
        s = encode_basestring_ascii
        middle = f'"ev":{s(ev)},"src":{s(src)},"dst":{s(dst)},"kind":{s(kind)},"method":{s(method)}'
        if len(_MIDDLES) < 100_000:
            _MIDDLES[key] = middle
    return f'{{"t":{t},{middle},"id":{i},"note":{encode_basestring_ascii(note)}}}'


_MIDDLES: dict[tuple[str, str, str, str, str], str] = {}
"""The JSON of (ev, src, dst, kind, method), by value: a run repeats few of them many times (bounded)."""
