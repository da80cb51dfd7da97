"""The simulated world: nodes, client endpoints, the network between them, their disks.

Rules this module keeps:

- One `SimWorld` per run, on one `VirtualTimeLoop`. Every node and client
  endpoint reaches the others only through `_transmit`, which round-trips the
  message through msgpack (so nothing the real runtime would reject gets
  through, and no object is shared between nodes) and schedules each arrival
  with the latency `Network.plan` draws.
- `call` raises as api.py says: `Unreachable` when the request met a node
  that was down when it was sent (connection refused) or names no endpoint;
  `RpcTimeout` when no reply came in time, or, early, when the node it was
  talking to crashed (connection reset; indefinite, like the real runtime's
  ConnectionLost); `RemoteError` carrying the handler's code and definite
  flag. Any other handler exception is logged and answered as the
  indefinite `RemoteError("internal")`. A message that msgpack cannot carry
  makes `call` raise `MessageNotEncodable` at once; `send` never raises and
  logs it as `send-unencodable` (as the real runtime does).
- A request or one-way message reaches only the incarnation it was sent to:
  if that incarnation crashed meanwhile the frame is dropped.
- crash: the node's code stops at once (its tasks only ever see
  CancelledError, see sim_gate), its disk loses what was not synced, calls
  in flight to it fail with a reset after one latency. restart: a fresh
  `SimRuntime` (next incarnation, its own RNG stream
  `derive_rng(seed, "node", id, incarnation)`) over the same disk, and the
  system's `start_node` again. pause: nothing of the node runs until resume;
  what arrives meanwhile waits and is handled on resume, in arrival order.
- Determinism: every choice comes from seeded streams, every collection that
  is iterated is a list or an insertion-ordered dict, and ids come from
  counters. The journal's digest is the same for the same seed, on any
  machine and under any PYTHONHASHSEED.
- Node logs are JSON lines with virtual `time`, kept per node across
  incarnations in `world.logs[node]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dis
import functools
import inspect
import itertools
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import CodeType
from typing import Any

from systems.runtime.api import (
    ConnectionLost,
    Handler,
    LinkFault,
    Message,
    NodeConfig,
    RemoteError,
    RpcError,
    Unreachable,
    derive_rng,
)
from systems.runtime.clock import NodeClock
from systems.runtime.sim_disk import DiskStore
from systems.runtime.sim_gate import create_owned_task, task_factory
from systems.runtime.sim_loop import SimError, VirtualTimeLoop
from systems.runtime.sim_net import Journal, NetConfig, Network
from systems.runtime.sim_node import (
    MessageNotEncodable,
    PendingCall,
    SimRuntime,
    decode,
    encode_checked,
    error_body,
    new_packer,
)

NodeMain = Callable[[Any, NodeConfig], Awaitable[None]]


@dataclass(slots=True)
class Frame:
    """One message on the simulated wire."""

    id: int
    src: str
    dst: str
    kind: str
    """call, reply, error, refused, reset or send."""
    method: str
    payload: bytes
    call_id: int
    dst_incarnation: int
    """Which incarnation of dst the frame was sent to (0: dst was down when sent)."""
    message: Any = None
    """The payload already unpacked when it was checked at send time, for the first copy to arrive
    (`_TAKEN` once taken or when there is none: a later copy unpacks its own)."""


_TAKEN: Any = object()


def _take_message(frame: Frame) -> Message:
    """The message a frame carries, as a fresh object nobody else holds."""
    msg = frame.message
    if msg is _TAKEN:
        return decode(frame.payload)
    frame.message = _TAKEN
    return msg


class SimWorld:
    """Nodes, clients, network and disks of one simulation, driven by one seed."""

    def __init__(
        self,
        seed: int,
        nodes: list[str],
        *,
        net: NetConfig | None = None,
        sync_s: float = 0.001,
        keep_journal: bool = True,
        time_limit_s: float | None = None,
    ) -> None:
        self.seed = seed
        self.nodes = list(nodes)
        self.sync_s = sync_s
        self.loop = VirtualTimeLoop(time_limit_s=time_limit_s)
        self.loop.set_task_factory(task_factory)
        self.net = Network(frozenset(self.nodes), derive_rng(seed, "net"), net or NetConfig())
        self.journal = Journal(keep=keep_journal)
        self.pack = new_packer()
        """This world's msgpack packer (reused for every message; sims in other threads have their own)."""
        self.logs: dict[str, list[str]] = {n: [] for n in self.nodes}
        self.stores: dict[str, DiskStore] = {n: DiskStore() for n in self.nodes}
        self.clocks: dict[str, NodeClock] = {n: NodeClock(self.loop.time) for n in self.nodes}
        """Each node's clock (clock faults move it; it outlives incarnations, as hardware does)."""
        self.runtimes: dict[str, SimRuntime] = {}
        """The current incarnation of every node ever started, and every client endpoint."""
        self.endpoints: dict[str, SimRuntime | None] = {n: None for n in self.nodes}
        self.up: dict[str, bool] = {n: False for n in self.nodes}
        self.mains: dict[str, tuple[NodeMain, NodeConfig]] = {}
        self.stats: dict[str, int] = {
            "sent": 0, "delivered": 0, "dropped": 0, "timers": 0, "unencodable": 0, "handler_errors": 0,
        }
        self._incarnations: dict[str, int] = {n: 0 for n in self.nodes}
        self._calls: dict[int, PendingCall] = {}
        self._ids = itertools.count(1)
        self._root = contextvars.Context()

    # -- endpoints ----------------------------------------------------------------------------
    def client(self, name: str = "client") -> SimRuntime:
        """A harness endpoint: never partitioned, never crashed, peers = every node."""
        if name in self.nodes:
            raise ValueError(f"{name!r} is a node name")
        existing = self.runtimes.get(name)
        if existing is not None:
            return existing
        rt = SimRuntime(self, name, sorted(self.nodes), 1, DiskStore(), is_node=False)
        self.runtimes[name] = rt
        self.endpoints[name] = rt
        return rt

    def incarnation_of(self, node: str) -> int:
        """The running incarnation of `node` (0 while it is down); clients are always 1."""
        if node in self.up:
            return self._incarnations[node] if self.up[node] else 0
        return 1

    def is_up(self, node: str) -> bool:
        return self.up[node]

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, node: str, main: NodeMain, config: NodeConfig) -> None:
        """Start `node` (it must be down) and await its `start_node`; remembered for restarts."""
        self.mains[node] = (main, config)
        if self.up[node]:
            return
        inc = self._incarnations[node] + 1
        self._incarnations[node] = inc
        peers = sorted(n for n in self.nodes if n != node)
        self.stores[node].new_incarnation()  # a disk fault lives as long as the incarnation (sim_disk)
        rt = SimRuntime(self, node, peers, inc, self.stores[node], is_node=True)
        self.runtimes[node] = rt
        self.endpoints[node] = rt
        self.up[node] = True
        rt.log.info("sim-start")
        task = create_owned_task(self.loop, rt, main(rt, config), f"{node}.start_node")
        await task

    async def restart(self, node: str) -> None:
        if self.up[node]:
            return
        main, config = self.mains[node]
        await self.start(node, main, config)

    def crash(self, node: str) -> None:
        """Power off: the node's code stops, unsynced writes are lost, connections to it reset."""
        if not self.up[node]:
            return
        rt = self.runtimes[node]
        rt.log.info("sim-crash", unsynced=self.stores[node].unsynced())
        self.up[node] = False
        self.endpoints[node] = None
        rt._kill()
        self.stores[node].crash()
        for call_id, call in list(self._calls.items()):
            if call.caller is rt:
                self._calls.pop(call_id, None)
            elif call.dst == node and call.dst_incarnation == rt.incarnation:
                self._transmit_raw(node, call.caller.node_id, "reset", call.method, b"", call_id, 1)

    def pause(self, node: str) -> None:
        if self.up[node] and not self.runtimes[node].paused:
            self.runtimes[node].log.info("sim-pause")
            self.runtimes[node].paused = True

    def resume(self, node: str) -> None:
        rt = self.runtimes.get(node)
        if rt is not None and self.up[node] and rt.paused:
            rt.paused = False
            rt.log.info("sim-resume", waiting=len(rt._waiters))
            rt._release()

    def partition(self, grudge: dict[str, list[str]]) -> None:
        self.net.partition(grudge)

    def set_links(self, faults: dict[tuple[str, str], LinkFault]) -> None:
        self.net.set_links(faults)

    def heal(self) -> None:
        self.net.heal()

    async def shutdown(self) -> None:
        """Stop every node and cancel everything still running on the loop."""
        for node in self.nodes:
            rt = self.runtimes.get(node)
            if rt is not None:
                rt._kill()
            self.up[node] = False
            self.endpoints[node] = None
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks(self.loop) if t is not me and not t.done()]
        for t in rest:
            t.cancel()
        if rest:
            await asyncio.wait(rest, timeout=1.0)

    # -- the wire -----------------------------------------------------------------------------
    def _transmit(
        self, src: SimRuntime, dst: str, kind: str, method: str, payload: bytes, call_id: int,
        message: Any = _TAKEN,
    ) -> None:
        if src.dead:
            return
        up = self.up.get(dst)  # incarnation_of(dst), inlined
        dst_inc = 1 if up is None else (self._incarnations[dst] if up else 0)
        self._transmit_raw(src.node_id, dst, kind, method, payload, call_id, dst_inc, message)

    def _transmit_raw(
        self, src: str, dst: str, kind: str, method: str, payload: bytes, call_id: int, dst_inc: int,
        message: Any = _TAKEN,
    ) -> None:
        loop = self.loop
        now = loop._now
        frame = Frame(next(self._ids), src, dst, kind, method, payload, call_id, dst_inc, message)
        arrivals = self.net.plan(src, dst, now)
        stats = self.stats
        stats["sent"] += 1
        arrive = self._arrive_request if kind == "call" or kind == "send" else self._arrive_reply
        if len(arrivals) == 1:
            self.journal.add((round(now * 1e9), "send", src, dst, kind, method, frame.id, ""), payload)
            loop.call_at(arrivals[0], arrive, frame, context=self._root)
            return
        note = "lost" if not arrivals else "dup"
        self.journal.add((round(now * 1e9), "send", src, dst, kind, method, frame.id, note), payload)
        for t in arrivals:
            loop.call_at(t, arrive, frame, context=self._root)
        if not arrivals:
            stats["dropped"] += 1

    def _drop(self, frame: Frame, why: str) -> None:
        self.stats["dropped"] += 1
        self.journal.add(
            (_ns(self.loop.time()), "drop", frame.src, frame.dst, frame.kind, frame.method, frame.id, why)
        )

    def _cut(self, frame: Frame) -> bool:
        """A partition drops the frame as it arrives (then it is journalled as dropped)."""
        if self.net.cut(frame.src, frame.dst):
            self._drop(frame, "partition")
            return True
        return False

    def _arrive_request(self, frame: Frame) -> None:
        """A call or one-way message reaches its destination."""
        dst = frame.dst
        if dst in self.net.drops_from and self._cut(frame):
            return
        if frame.dst_incarnation == 0:
            self._drop(frame, "down")
            if frame.kind == "call":  # connection refused
                self._transmit_raw(dst, frame.src, "refused", frame.method, b"", frame.call_id, 1)
            return
        rt = self.endpoints.get(dst)
        if rt is None or rt.incarnation != frame.dst_incarnation:  # the endpoint is its current incarnation
            self._drop(frame, "crashed")
            return
        self.stats["delivered"] += 1
        self.journal.add(
            (round(self.loop._now * 1e9), "recv", frame.src, dst, frame.kind, frame.method, frame.id, "")
        )
        # The handler starts from the world's empty root context, as the arrival callback runs in it.
        handler = rt.handlers.get(frame.method)
        if handler is not None and rt.owner is rt and never_suspends(handler):
            # A handler that cannot suspend runs to its end in its task's first step: that step, at the
            # place in the ready queue where the task's would be, without the task (see _handle_at_once).
            self.loop.call_soon(
                self._handle_at_once, rt, frame, _take_message(frame), handler, None, context=rt.root_context.copy()
            )
            return
        create_owned_task(
            self.loop, rt.owner, self._handle(rt, frame, _take_message(frame)), f"{dst}.{frame.method}",
            context=rt.root_context.copy(),
        )

    def _handle_at_once(
        self, rt: SimRuntime, frame: Frame, msg: Message, handler: Handler, _resumed: object = None,
    ) -> None:
        """What the owned task running `_handle(rt, frame, msg)` does in its one step, by the gate's rules.

        Dead owner: the coroutine never runs (the task ends; the loop is told as the gate tells it).
        Paused owner: wait for a gate waiter, then decide again, as the gated task would. Else run
        `_handle` to its end: its handler (`never_suspends`) cannot suspend, nor can it then.
        """
        loop = self.loop
        if rt.dead:
            loop.note_task_done()
            return
        if rt.paused:
            waiter = rt.gate_waiter()
            waiter.add_done_callback(functools.partial(self._handle_at_once, rt, frame, msg, handler))
            return
        if rt.handlers.get(frame.method) is not handler:
            raise SimError(f"{rt.node_id} replaced its {frame.method!r} handler while a message waited for it")
        coro = self._handle(rt, frame, msg)
        try:
            coro.send(None)
        except StopIteration:
            pass
        except asyncio.CancelledError:
            pass  # the task would have ended cancelled: nothing to report
        else:
            coro.close()
            raise SimError(f"{rt.node_id}'s {frame.method!r} handler suspended, which it cannot")
        finally:
            loop.note_task_done()

    async def _handle(self, rt: SimRuntime, frame: Frame, msg: Message) -> None:
        is_call = frame.kind == "call"
        handler = rt.handlers.get(frame.method)
        if handler is None:
            rt.log.warning("unknown-method", method=frame.method, src=frame.src)
            if is_call:
                body = error_body("unknown-method", True, f"{rt.node_id} serves no {frame.method!r}")
                self._reply(rt, frame, "error", body)
            return
        try:
            result = await handler(frame.src, msg)
        except RpcError as e:
            if is_call:
                self._reply(rt, frame, "error", error_body(e.code, e.definite, e.message))
            return
        except Exception as e:
            self.stats["handler_errors"] += 1
            rt.log.error(
                "handler-failed", method=frame.method, src=frame.src, error=repr(e),
                traceback="".join(traceback.format_exception(e)),
            )
            if is_call:
                self._reply(rt, frame, "error", error_body("internal", False, f"{type(e).__name__}: {e}"))
            return
        if is_call:
            self._reply(rt, frame, "reply", result)

    def _reply(self, rt: SimRuntime, frame: Frame, kind: str, body: Message) -> None:
        try:
            payload, copy = encode_checked(body, "reply", rt.node_id, frame.src, frame.method, pack=self.pack)
        except MessageNotEncodable as e:
            rt.log.error("bad-reply", method=frame.method, error=str(e))
            kind = "error"
            payload, copy = encode_checked(error_body("internal", False, f"reply could not be encoded: {e}"), "reply")
        self._transmit(rt, frame.src, kind, frame.method, payload, frame.call_id, copy)

    def _arrive_reply(self, frame: Frame) -> None:
        """A reply, error, refusal or reset reaches the caller."""
        if frame.dst in self.net.drops_from and self._cut(frame):
            return
        call = self._calls.get(frame.call_id)
        if call is None or call.future.done() or call.caller.dead:
            self._drop(frame, "late")
            return
        self.stats["delivered"] += 1
        self.journal.add(
            (round(self.loop._now * 1e9), "recv", frame.src, frame.dst, frame.kind, frame.method, frame.id, "")
        )
        fut = call.future
        if frame.kind == "reply":
            fut.set_result(_take_message(frame))
        elif frame.kind == "error":
            b = _take_message(frame)
            fut.set_exception(RemoteError(str(b.get("message", "")), code=b["code"], definite=b["definite"]))
        elif frame.kind == "refused":
            fut.set_exception(Unreachable(f"connection to {frame.src} refused"))
        else:  # reset
            fut.set_exception(ConnectionLost(f"connection to {frame.src} lost"))

    # -- running ------------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run `coro` on the world's loop; then shut everything down and close the loop."""
        loop = self.loop
        main = loop.create_task(coro, name="sim-main")
        try:
            return loop.run_until_complete(main)
        finally:
            loop.time_limit_s = None
            try:
                with contextlib.suppress(SimError):  # a task that refuses to die must not hide the result
                    loop.run_until_complete(self.shutdown())
            finally:
                loop.close()

    def digest(self) -> str:
        """SHA-256 over every journal record and payload: equal seeds, equal digests."""
        return self.journal.digest()


_SUSPENDING_OPS = frozenset({
    "YIELD_VALUE", "SEND", "GET_AWAITABLE", "GET_AITER", "GET_ANEXT", "BEFORE_ASYNC_WITH", "END_ASYNC_FOR",
})
"""Opcodes of every point where a coroutine's own frame can suspend (await, async for/with)."""
_NEVER_SUSPENDS: dict[CodeType, bool] = {}
"""Judgements by code object: shared by every closure made from one `async def` and holding none of
their cells, so a run's closures (and the world they reach) are never kept alive by it."""


def never_suspends(handler: Handler) -> bool:
    """True when `handler` is a coroutine function (or a method of one) whose own code holds no
    await, async for or async with: its coroutine can only run to its end in one step. Unknown
    shapes (partials, wrappers, callables) are False. Judged once per code object."""
    func = getattr(handler, "__func__", handler)
    if not inspect.isfunction(func):
        return False
    code = func.__code__
    known = _NEVER_SUSPENDS.get(code)
    if known is None:
        known = bool(code.co_flags & inspect.CO_COROUTINE) and not any(
            op.opname in _SUSPENDING_OPS for op in dis.get_instructions(code)
        )
        if len(_NEVER_SUSPENDS) < 10_000:
            _NEVER_SUSPENDS[code] = known
    return known


def _ns(t: float) -> int:
    return round(t * 1e9)
