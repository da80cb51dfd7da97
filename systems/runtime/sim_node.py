"""One simulated node (or client endpoint): the `Runtime` a system sees inside the simulator.

Rules this module keeps:

- `SimRuntime` is one *incarnation* of a node: a restart makes a new one with
  the next incarnation number and its own RNG stream
  `derive_rng(seed, "node", id, incarnation)`. Once dead it never acts
  again: its `send`s vanish, its disk writes are ignored, its tasks only see
  CancelledError (sim_gate).
- Every message is packed with msgpack before it leaves
  (`encode_checked`): what the real runtime would reject is rejected here
  too, and no mutable object is ever shared between two nodes (the
  receiver gets what unpacking the bytes gives: the copy the check
  unpacked, or for a flat map of scalars an equal copy made without the
  round trip, `plain_copy`; a duplicated frame's second copy is unpacked
  afresh). `call` raises `MessageNotEncodable` (a TypeError) at
  once; `send` never raises: it logs `send-unencodable`.
- `call` waits for its own reply or its own deadline: `RpcTimeout` when no
  reply came in time; the world completes it with the reply, a
  `RemoteError`, `Unreachable` (refused) or an early `RpcTimeout` (reset).
- `spawn`ed tasks belong to the node; an exception escaping one is logged
  (`task-failed`), never lost; one escaping an `essential` task also logs
  `node-failed` and crashes the node (api.py's fail-stop), and so does a
  disk operation that raises OSError (sim_disk's `on_failure`), before its
  caller sees the error.
- `now`/`sleep` read the node's clock (systems.runtime.clock, kept by the
  world per node): a clock fault moves what the node sees; its log's `time`
  stays true virtual time.
- The log is JSON lines: `time` (virtual seconds), `node`, `level`,
  `event`, `incarnation`, then the fields (a clashing name becomes
  `field_<name>`), kept per node across incarnations.
"""

from __future__ import annotations

import asyncio
import functools
import json
from asyncio.futures import _set_result_unless_cancelled
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from systems.runtime.api import Handler, Message, RpcTimeout, Unreachable, derive_rng
from systems.runtime.common import LevelledLog
from systems.runtime.sim_disk import DiskStore, DiskView
from systems.runtime.sim_gate import create_owned_task, owner_context

if TYPE_CHECKING:
    from systems.runtime.sim_world import SimWorld

_LOG_BASE = ("time", "node", "level", "event", "incarnation")


class MessageNotEncodable(TypeError):
    """A message msgpack cannot carry (the real runtime would reject it too)."""


def encode(msg: Message, where: str) -> bytes:
    """The bytes on the wire for `msg`, checked to unpack as the receiver will unpack them."""
    return encode_checked(msg, where)[0]


def encode_checked(
    msg: Message, what: str, src: str = "", dst: str = "", method: str = "", *, pack: Packer | None = None,
) -> tuple[bytes, Message]:
    """The bytes on the wire for `msg` and what the receiver will unpack from them (a fresh copy).

    `pack` is a `new_packer()` to reuse (one per world, never shared between threads). An
    error names the frame as "{what} {src}->{dst} {method}" (or just `what`).
    """
    try:
        payload = pack(msg) if pack is not None else msgpack.packb(msg, use_bin_type=True)
        copy = plain_copy(msg)
        return payload, decode(payload) if copy is None else copy
    except (TypeError, ValueError, OverflowError) as e:
        where = f"{what} {src}->{dst} {method}" if src else what
        raise MessageNotEncodable(
            f"{where}: message is not msgpack-able ({e}); use None, bool, int, float, str, bytes, "
            f"and lists/dicts of those (dict keys str or int): {msg!r:.200}"
        ) from None


Packer = Callable[[Message], bytes]

_SCALARS = frozenset({str, int, bool, float, bytes, type(None)})
"""The exact types msgpack gives back as they went in, equal and of the same type (a float stays a
64-bit float, an int is one msgpack could pack, bytes stays bin, a str stays UTF-8)."""


def plain_copy(msg: Message) -> Message | None:
    """What `decode(pack(msg))` returns, for a message that msgpack has just packed, when that is
    a map of str keys to scalars (_SCALARS) or empty lists; None for anything else.

    Such a map decodes to a map with the same keys in the same order, equal values of the same
    types, and fresh empty lists: a shallow copy with fresh empty lists is that, without the
    round trip. Its immutable values are shared with the sender; nothing mutable is. (The bytes
    are still packed: the journal's digest covers them, and packing is the check the real runtime
    makes.)
    """
    if type(msg) is not dict:
        return None
    empties = None
    for k, v in msg.items():
        if type(k) is not str:
            return None
        if type(v) not in _SCALARS:
            if type(v) is not list or v:
                return None
            if empties is None:
                empties = []
            empties.append(k)
    copy = msg.copy()
    if empties is not None:
        for k in empties:
            copy[k] = []
    return copy


def new_packer() -> Packer:
    """msgpack.packb(msg, use_bin_type=True) without a new Packer (and its buffer) per message.

    The Packer resets itself after an error; it is not for two threads at once.
    """
    return msgpack.Packer(use_bin_type=True).pack


decode: Callable[[bytes], Message] = functools.partial(msgpack.unpackb, raw=False, strict_map_key=False)
"""What a receiver unpacks from `payload` (a partial: no Python frame per message)."""


class SimLog(LevelledLog):
    """`api.Log`: one JSON line per record, `time` in virtual seconds, appended to a list."""

    def __init__(self, node_id: str, lines: list[str], clock: Callable[[], float], incarnation: int) -> None:
        self.node_id = node_id
        self.lines = lines
        self._clock = clock
        self.incarnation = incarnation

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        rec: dict[str, Any] = {
            "time": round(self._clock(), 9),
            "node": self.node_id,
            "level": level,
            "event": event,
            "incarnation": self.incarnation,
        }
        for k, v in fields.items():
            rec[f"field_{k}" if k in _LOG_BASE else k] = v
        try:
            self.lines.append(json.dumps(rec, default=repr, ensure_ascii=False))
        except (TypeError, ValueError) as e:  # circular structures and the like: never crash the node
            self.lines.append(json.dumps({**rec, "unloggable": repr(e)} | {k: repr(v) for k, v in fields.items()}))


@dataclass(slots=True)
class PendingCall:
    caller: SimRuntime
    dst: str
    dst_incarnation: int
    method: str
    future: asyncio.Future[Any]


class SimRuntime:
    """`systems.runtime.api.Runtime` for one incarnation of a node, or for a client endpoint."""

    def __init__(
        self,
        world: SimWorld,
        node_id: str,
        peers: list[str],
        incarnation: int,
        store: DiskStore,
        *,
        is_node: bool,
    ) -> None:
        self.world = world
        self._loop = world.loop
        self.clock = world.clocks[node_id] if is_node else None
        """The node's clock (clock faults); a client endpoint reads true virtual time."""
        self.node_id = node_id
        self.peers = list(peers)
        self.incarnation = incarnation
        self.is_node = is_node
        self.rng = derive_rng(world.seed, "node", node_id, incarnation)
        self.disk = DiskView(store, lambda: not self.dead, world.sync_s, on_failure=self._disk_failed)
        self.log = SimLog(node_id, world.logs.setdefault(node_id, []), world.loop.time, incarnation)
        self.dead = False
        self.paused = False
        self.handlers: dict[str, Handler] = {}
        self._tasks: dict[object, asyncio.Task[Any]] = {}
        """Live tasks by their gate, in creation order."""
        self._waiters: list[asyncio.Future[None]] = []
        self.owner: SimRuntime | None = self if is_node else None
        """Who owns the tasks started for this endpoint (None for a client: its tasks are not gated)."""
        self.root_context = owner_context(self.owner)
        """The world's empty root context with CURRENT set to `owner` (for handler tasks)."""

    # -- gate owner (sim_gate) ----------------------------------------------------------------
    def gate_waiter(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self.world.loop.create_future()
        self._waiters.append(fut)
        return fut

    def own_task(self, task: asyncio.Task[Any], gate: object) -> None:
        self._tasks[gate] = task

    def forget(self, gate: object) -> None:
        self._tasks.pop(gate, None)

    def _release(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _kill(self) -> None:
        self.dead = True
        self.paused = False
        self._release()
        for task in list(self._tasks.values()):
            task.cancel()

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        return list(self._tasks.values())

    # -- Runtime ------------------------------------------------------------------------------
    def now(self) -> float:
        clock = self.clock
        return self._loop._now if clock is None else clock.now()

    async def sleep(self, seconds: float) -> None:
        clock = self.clock
        delay = max(0.0, seconds) if clock is None else clock.true_duration(seconds)
        if delay <= 0:
            await asyncio.sleep(delay)
        else:  # asyncio.sleep(delay), inlined: the same future and timer, one coroutine fewer
            loop = self._loop
            fut = loop.create_future()
            timer = loop.call_at(loop._now + delay, _set_result_unless_cancelled, fut, None)
            try:
                await fut
            finally:
                timer.cancel()
        self.world.stats["timers"] += 1

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "", *, essential: bool = False) -> asyncio.Task[Any]:
        task = create_owned_task(self.world.loop, self if self.is_node else None, coro, name, log=self.log)
        if essential:
            task.add_done_callback(self._essential_done)
        return task

    def _essential_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None and not self.dead and self.is_node:
            self.log.error("node-failed", reason=f"essential task {task.get_name()} died: {task.exception()!r}")
            self.world.crash(self.node_id)

    def _disk_failed(self, reason: str) -> None:
        """Fail-stop on a disk error (sim_disk calls it before the caller sees the OSError)."""
        if not self.dead and self.is_node:
            self.log.error("node-failed", reason=reason)
            self.world.crash(self.node_id)

    def serve(self, method: str, handler: Handler) -> None:
        self.handlers[method] = handler

    async def call(self, dst: str, method: str, msg: Message, timeout: float = 1.0) -> Message:
        world = self.world
        payload, copy = encode_checked(msg, "call", self.node_id, dst, method, pack=world.pack)
        if dst not in world.endpoints:
            raise Unreachable(f"no route to {dst!r}")
        if self.dead:
            raise Unreachable(f"{self.node_id} is down")
        loop = world.loop
        fut: asyncio.Future[Any] = loop.create_future()
        call_id = next(world._ids)
        world._calls[call_id] = PendingCall(self, dst, world.incarnation_of(dst), method, fut)
        expiry = loop.call_later(max(0.0, timeout), _expire, fut, dst, method, timeout)
        try:
            world._transmit(self, dst, "call", method, payload, call_id, copy)
            return await fut
        finally:
            expiry.cancel()
            world._calls.pop(call_id, None)

    def send(self, dst: str, method: str, msg: Message) -> None:
        if self.dead:
            return
        try:
            payload, copy = encode_checked(msg, "send", self.node_id, dst, method, pack=self.world.pack)
        except MessageNotEncodable as e:
            self.log.error("send-unencodable", dst=dst, method=method, error=str(e))
            self.world.stats["unencodable"] += 1
            return
        if dst in self.world.endpoints:
            self.world._transmit(self, dst, "send", method, payload, 0, copy)


def _expire(fut: asyncio.Future[Any], dst: str, method: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(RpcTimeout(f"no reply from {dst} to {method} within {timeout}s"))


def error_body(code: str, definite: bool, message: str) -> dict[str, Any]:
    return {"code": code, "definite": definite, "message": message}
