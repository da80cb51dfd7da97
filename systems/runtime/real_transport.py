"""TCP transport of the real runtime: connections, request ids, timeouts, the filter hook.

Rules this module keeps:

- One outgoing connection per destination, opened lazily by the first `call`
  or `send` and reopened lazily after it dies; requests are pipelined on it
  (many in flight, matched to replies by request id). Replies always come
  back on the connection the request went out on.
- Errors, as api.py says: a refused or failed connect (or one that does not
  finish within the call's timeout) raises `Unreachable` (definite: nothing
  was sent); no reply within the timeout raises `RpcTimeout`; an ERROR frame
  raises `RemoteError` with the sender's code, definite flag and message; a
  connection that dies with requests in flight fails each of them with
  `ConnectionLost` (an `RpcTimeout`, indefinite: the request may have been
  delivered).
- Frames written to a connection during one turn of the event loop leave in
  one `transport.write`: every frame to one peer in that turn (requests,
  one-way messages, replies) shares a system call, and one `call_soon` per
  turn flushes every connection written to; order on a connection is kept.
- `send` never raises: a message that cannot be encoded is logged and
  dropped, one sent while connecting waits (bounded backlog) and is dropped
  if the connect fails, one that would overfill the socket buffer is dropped.
- Malformed input (see real_wire) is logged as `bad-frame` with the reason
  and the peer address, the connection is closed, every other connection is
  unaffected. Bytes left over at EOF are logged as `truncated-frame`.
- Inbound frames pass `_admit` first: CONTROL frames go to `_on_control`;
  the filter (if any, see real_filter) applies to frames whose `src` is one
  of `filtered_srcs` (the cluster's nodes), never to the harness client.
  Delayed copies are delivered with `loop.call_later`.
- Subclasses decide what a request or one-way message does (`_dispatch`) and
  what a control frame does (`_on_control`); this base answers requests with
  a definite `unknown-method` error and control frames with `unknown-control`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Coroutine
from typing import Any

from systems.runtime.api import ConnectionLost, Message, ProtocolError, RemoteError, RpcError, RpcTimeout, Unreachable
from systems.runtime.common import log_task_failure
from systems.runtime.real_filter import PacketFilter
from systems.runtime.real_log import JsonLog
from systems.runtime.real_wire import MAX_FRAME_BYTES, Frame, FrameDecoder, Kind, encode_raw

SEND_BACKLOG_FRAMES = 10_000
"""One-way frames kept per destination while its connection is being opened."""
SEND_BUFFER_LIMIT_BYTES = 4 * MAX_FRAME_BYTES
"""A one-way frame is dropped when the socket's write buffer already holds this much."""

CONNECT_FAILURE_LOG_S = 5.0
"""Repeated connect failures to one destination are logged at most this often."""

Address = tuple[str, int]


class Conn(asyncio.Protocol):
    """One TCP connection, in either direction, carrying frames both ways."""

    def __init__(self, ep: Endpoint, dst: str | None) -> None:
        self.ep = ep
        self.dst = dst  # the node this outgoing connection goes to; None for inbound ones
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.in_flight: set[int] = set()
        self.closed = False
        self.peer = "?"
        self._wbuf: list[bytes] = []
        self._wbuf_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.ep._conns.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as e:
            self.ep.log.warning("bad-frame", reason=str(e), peer=self.peer, dst=self.dst)
            self.close()
            return
        for frame in frames:
            if self.closed:
                return
            self.ep._admit(self, frame)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.decoder.buffered and not self.closed:
            self.ep.log.warning("truncated-frame", peer=self.peer, bytes=self.decoder.buffered)
        self.closed = True
        self.ep._on_conn_lost(self, exc)

    def write(self, data: bytes) -> bool:
        """Queue bytes; False when the connection is already closing.

        Writes made in one turn of the event loop leave in one `send` per connection
        (the endpoint flushes every connection written to in one `call_soon`): under
        load many frames to a peer share a system call."""
        t = self.transport
        if self.closed or t is None or t.is_closing():
            return False
        if not self._wbuf:
            self.ep._schedule_flush(self)
        self._wbuf.append(data)
        self._wbuf_bytes += len(data)
        return True

    def flush(self) -> None:
        data, self._wbuf = self._wbuf, []
        self._wbuf_bytes = 0
        t = self.transport
        if data and t is not None and not t.is_closing():
            t.write(data[0] if len(data) == 1 else b"".join(data))

    def buffered_bytes(self) -> int:
        t = self.transport
        return (t.get_write_buffer_size() if t is not None else 0) + self._wbuf_bytes

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class Endpoint:
    """The client half of a runtime: call/send to named nodes over TCP."""

    def __init__(
        self,
        node_id: str,
        addrs: dict[str, Address],
        log: JsonLog,
        *,
        packet_filter: PacketFilter | None = None,
        filtered_srcs: frozenset[str] = frozenset(),
    ) -> None:
        self.node_id = node_id
        self.addrs = dict(addrs)
        self.log = log
        self.filter = packet_filter
        self.filtered_srcs = filtered_srcs - {node_id}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._out: dict[str, Conn] = {}
        self._connecting: dict[str, asyncio.Task[Conn]] = {}
        self._backlog: dict[str, list[bytes]] = {}
        self._conns: set[Conn] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._connect_failure_logged: dict[str, float] = {}
        self._dirty: list[Conn] = []
        """Connections with frames queued in this turn of the loop (flushed together at its end)."""

    def _schedule_flush(self, conn: Conn) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._dirty.append(conn)

    def _flush_all(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    # -- time and tasks -----------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        log_task_failure(self.log, task)

    # -- outgoing ----------------------------------------------------------------------------
    async def call(self, dst: str, method: str, msg: Message, timeout: float = 1.0) -> Message:
        return await self._request(Kind.REQUEST, dst, method, msg, timeout)

    def send(self, dst: str, method: str, msg: Message) -> None:
        if self._closed:
            return
        try:
            data = encode_raw(Kind.ONEWAY, 0, self.node_id, method, msg)
        except (TypeError, ValueError) as e:
            self.log.error("send-unencodable", dst=dst, method=method, error=repr(e))
            return
        conn = self._out.get(dst)
        if conn is not None and not conn.closed:
            if conn.buffered_bytes() > SEND_BUFFER_LIMIT_BYTES:
                self.log.debug("send-dropped", dst=dst, method=method, reason="write buffer full")
                return
            conn.write(data)
            return
        if dst not in self.addrs:
            self.log.debug("send-dropped", dst=dst, method=method, reason="unknown node")
            return
        backlog = self._backlog.setdefault(dst, [])
        if len(backlog) >= SEND_BACKLOG_FRAMES:
            self.log.debug("send-dropped", dst=dst, method=method, reason="connect backlog full")
            return
        backlog.append(data)
        self._start_connect(dst)

    async def _request(self, kind: Kind, dst: str, method: str, msg: Message, timeout: float) -> Message:
        if self._closed:
            raise Unreachable(f"{self.node_id} is shut down")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        rid = next(self._ids)
        data = encode_raw(kind, rid, self.node_id, method, msg)  # TypeError/ValueError: caller's bug
        conn = await self._get_conn(dst, timeout)
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = fut
        conn.in_flight.add(rid)
        timer = loop.call_at(deadline, _expire, fut, dst, method, timeout)
        try:
            if not conn.write(data):
                raise Unreachable(f"connection to {dst} closed before the request was sent")
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(rid, None)
            conn.in_flight.discard(rid)

    async def _get_conn(self, dst: str, timeout: float) -> Conn:
        conn = self._out.get(dst)
        if conn is not None and not conn.closed:
            return conn
        if dst not in self.addrs:
            raise Unreachable(f"unknown node {dst!r}")
        task = self._start_connect(dst)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise Unreachable(f"connect to {dst} did not finish within {timeout}s") from None

    def _start_connect(self, dst: str) -> asyncio.Task[Conn]:
        task = self._connecting.get(dst)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._connect(dst), name=f"connect-{dst}")
            self._connecting[dst] = task
            task.add_done_callback(lambda t, d=dst: self._connect_done(d, t))
        return task

    async def _connect(self, dst: str) -> Conn:
        host, port = self.addrs[dst]
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: Conn(self, dst), host, port)
        except OSError as e:
            raise Unreachable(f"cannot connect to {dst} at {host}:{port}: {e.strerror or e}") from None
        if self._closed:
            conn.close()
            raise Unreachable(f"{self.node_id} is shut down")
        self._out[dst] = conn
        return conn

    def _connect_done(self, dst: str, task: asyncio.Task[Conn]) -> None:
        if self._connecting.get(dst) is task:
            del self._connecting[dst]
        backlog = self._backlog.pop(dst, [])
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # at most one record per destination every CONNECT_FAILURE_LOG_S: a dead peer is not news
            now = time.monotonic()
            if now - self._connect_failure_logged.get(dst, -CONNECT_FAILURE_LOG_S) >= CONNECT_FAILURE_LOG_S:
                self._connect_failure_logged[dst] = now
                self.log.debug("connect-failed", dst=dst, error=str(exc), dropped_sends=len(backlog))
            return
        self._connect_failure_logged.pop(dst, None)
        conn = task.result()
        for data in backlog:
            conn.write(data)

    async def readdress(self, addrs: dict[str, Address]) -> None:
        """Point nodes at new addresses; connections to a changed address are closed."""
        for node, addr in addrs.items():
            if self.addrs.get(node) == addr:
                continue
            self.addrs[node] = addr
            self._backlog.pop(node, None)
            task = self._connecting.pop(node, None)
            if task is not None:
                task.cancel()
            conn = self._out.pop(node, None)
            if conn is not None:
                conn.close()
        await asyncio.sleep(0)

    # -- incoming ----------------------------------------------------------------------------
    def _admit(self, conn: Conn, frame: Frame) -> None:
        if frame.kind == Kind.CONTROL:
            self._on_control(conn, frame)
            return
        f = self.filter
        if f is None or not f.active or frame.src not in self.filtered_srcs:
            self._deliver(conn, frame)
            return
        loop = asyncio.get_running_loop()
        for delay in f.decide(frame.src):
            if delay <= 0:
                self._deliver(conn, frame)
            else:
                loop.call_later(delay, self._deliver, conn, frame)

    def _deliver(self, conn: Conn, frame: Frame) -> None:
        if self._closed:
            return
        kind = frame.kind
        if kind == Kind.RESPONSE or kind == Kind.ERROR:
            fut = self._pending.get(frame.id)
            if fut is None or fut.done():
                return  # late, duplicated or for a caller that gave up
            if kind == Kind.RESPONSE:
                fut.set_result(frame.body)
            else:
                b = frame.body
                fut.set_exception(RemoteError(str(b.get("message", "")), code=b["code"], definite=b["definite"]))
        else:
            self._dispatch(conn, frame)

    def _dispatch(self, conn: Conn, frame: Frame) -> None:
        """A REQUEST or ONEWAY frame arrived (after the filter)."""
        self.log.warning("unknown-method", method=frame.method, src=frame.src, peer=conn.peer)
        if frame.kind == Kind.REQUEST:
            self._reply_error(conn, frame.id, "unknown-method", True, f"{self.node_id} serves no {frame.method!r}")

    def _on_control(self, conn: Conn, frame: Frame) -> None:
        self._reply_error(conn, frame.id, "unknown-control", True, f"{self.node_id} takes no control frames")

    def _reply(self, conn: Conn, rid: int, body: Message) -> None:
        try:
            data = encode_raw(Kind.RESPONSE, rid, self.node_id, "", body)
        except (TypeError, ValueError) as e:
            self.log.error("bad-reply", error=repr(e))
            self._reply_error(conn, rid, "internal", False, f"reply could not be encoded: {e}")
            return
        conn.write(data)

    def _reply_error(self, conn: Conn, rid: int, code: str, definite: bool, message: str) -> None:
        body = {"code": code, "definite": definite, "message": message}
        conn.write(encode_raw(Kind.ERROR, rid, self.node_id, "", body))

    def _on_conn_lost(self, conn: Conn, exc: Exception | None) -> None:
        self._conns.discard(conn)
        if conn.dst is not None and self._out.get(conn.dst) is conn:
            del self._out[conn.dst]
        for rid in conn.in_flight:
            fut = self._pending.get(rid)
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionLost(f"connection to {conn.dst or conn.peer} lost"))

    # -- shutdown ----------------------------------------------------------------------------
    async def close(self) -> None:
        """Cancel every task, close every connection, fail every pending call. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._connecting.values()):
            task.cancel()
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        for conn in list(self._conns):
            conn.close()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(f"{self.node_id} is shutting down"))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let transports run their connection_lost callbacks


def _expire(fut: asyncio.Future[Any], dst: str, method: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(RpcTimeout(f"no reply from {dst} to {method} within {timeout}s"))


def error_body(e: RpcError) -> dict[str, Any]:
    return {"code": e.code, "definite": e.definite, "message": e.message}
