"""The real runtime: framing, RPC semantics, malformed input, the packet filter, the control
channel and node_main's command line. Runtimes run in-process on loopback ports; only the
node_main tests start processes (marker `real`)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import msgpack
import pytest

from base.links import LinkFaultError
from harness.backends.local import free_ports
from systems.echo import BUGS as ECHO_BUGS
from systems.echo import DEFAULT_OPTIONS as ECHO_OPTIONS
from systems.echo import start_node as echo_start
from systems.runtime.api import (
    ConnectionLost,
    LinkFault,
    NodeConfig,
    ProtocolError,
    RemoteError,
    RpcError,
    RpcTimeout,
    Runtime,
    Unreachable,
    derive_rng,
)
from systems.runtime.node_main import main as node_main
from systems.runtime.real import ClientEndpoint, RealRuntime
from systems.runtime.real_filter import PacketFilter
from systems.runtime.real_log import JsonLog
from systems.runtime.real_wire import MAX_FRAME_BYTES, Frame, FrameDecoder, Kind, encode

REPO = Path(__file__).resolve().parents[1]
TEST_DEADLINE_S = 20.0


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TEST_DEADLINE_S))


async def until(cond: Callable[[], bool], what: str, deadline_s: float = 5.0) -> None:
    """Wait for a condition with a bounded deadline (no sleep-and-hope)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Net:
    """Real runtimes n1..nk (echo system) in this event loop, plus a client endpoint."""

    def __init__(self, rts: dict[str, RealRuntime], logs: dict[str, io.StringIO], client: ClientEndpoint,
                 addrs: dict[str, tuple[str, int]]) -> None:
        self.rts, self.logs, self.client, self.addrs = rts, logs, client, addrs

    def log_events(self, node: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs[node].getvalue().splitlines()]

    def events(self, node: str, event: str) -> list[dict[str, Any]]:
        return [r for r in self.log_events(node) if r["event"] == event]


async def start_runtime(node: str, addrs: dict[str, tuple[str, int]], root: Path, log: io.StringIO,
                        seed: int = 1) -> RealRuntime:
    rt = RealRuntime(node, addrs, root / node, seed=seed, log=JsonLog(node, log))
    await echo_start(rt, NodeConfig("echo"))
    await rt.start()
    rt.mark_ready()
    return rt


@contextlib.asynccontextmanager
async def net(tmp_path: Path, n: int = 2, extra: dict[str, tuple[str, int]] | None = None) -> AsyncIterator[Net]:
    ports = free_ports(n)
    addrs = {f"n{i + 1}": ("127.0.0.1", p) for i, p in enumerate(ports)}
    addrs.update(extra or {})
    logs = {node: io.StringIO() for node in addrs}
    rts: dict[str, RealRuntime] = {}
    client = ClientEndpoint(addrs, log=JsonLog("client", io.StringIO()))
    try:
        for i in range(n):
            node = f"n{i + 1}"
            rts[node] = await start_runtime(node, addrs, tmp_path, logs[node])
        yield Net(rts, logs, client, addrs)
    finally:
        await client.close()
        for rt in rts.values():
            await rt.close()


# -- wire -------------------------------------------------------------------------------------

def test_frames_round_trip_through_a_byte_at_a_time_decoder() -> None:
    frames = [
        Frame(Kind.REQUEST, 7, "n1", "echo", {"a": [1, 2.5, None, True, b"\x00\xff"], 3: "int key"}),
        Frame(Kind.RESPONSE, 7, "n2", "", "ok"),
        Frame(Kind.ERROR, 8, "n2", "", {"code": "x", "definite": True, "message": "m"}),
        Frame(Kind.ONEWAY, 0, "n1", "note", None),
    ]
    data = b"".join(encode(f) for f in frames)
    dec = FrameDecoder()
    out: list[Frame] = []
    for i in range(len(data)):
        out += dec.feed(data[i : i + 1])
    assert out == frames
    assert dec.buffered == 0


def framed(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">I", MAX_FRAME_BYTES + 1),
        struct.pack(">I", 0),
        framed(b"\xc1\xc1\xc1"),
        framed(msgpack.packb([0, 1, "n1", "echo", "x" * 10])[:-3]),
        framed(msgpack.packb([0, 1, "n1", "echo", 1]) + b"\x01"),
        framed(msgpack.packb({"a": 1})),
        framed(msgpack.packb([9, 1, "n1", "m", None])),
        framed(msgpack.packb([0, -1, "n1", "m", None])),
        framed(msgpack.packb([0, 1, 5, "m", None])),
        framed(msgpack.packb([2, 1, "n1", "", "not-a-dict"])),
    ],
    ids=["oversized", "zero-length", "garbage", "truncated", "trailing-bytes", "not-array", "bad-kind",
         "negative-id", "src-not-str", "bad-error-body"],
)
def test_decoder_rejects_bad_frames(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(data)


# -- RPC semantics ----------------------------------------------------------------------------

def test_round_trip_between_two_runtimes(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            n1 = nt.rts["n1"]
            assert isinstance(n1, Runtime)
            assert n1.peers == ["n2"]
            msg = {"k": [1, "two", b"\x03", None, {"nested": 4.5}], 7: True}
            assert await n1.call("n2", "echo", msg) == msg
            assert await n1.call("n2", "relay", {"to": "n1", "msg": "via n2"}) == "via n2"
            assert await nt.client.call("n2", "echo", "from client") == "from client"

    run(main())


def test_big_messages_cross_and_oversized_ones_are_refused_at_the_sender(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            big = b"\x07" * (3 * 1024 * 1024)
            assert await nt.rts["n1"].call("n2", "echo", big) == big
            with pytest.raises(ValueError, match="exceeds"):
                await nt.rts["n1"].call("n2", "echo", b"x" * (MAX_FRAME_BYTES + 1))
            nt.rts["n1"].send("n2", "echo", b"x" * (MAX_FRAME_BYTES + 1))  # never raises: logged
            assert nt.events("n1", "send-unencodable")
            nt.rts["n1"].send("n2", "echo", {1, 2})  # not msgpack-able: logged too
            assert len(nt.events("n1", "send-unencodable")) == 2

    run(main())


def test_requests_are_pipelined_on_one_connection(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            n1 = nt.rts["n1"]
            replies = await asyncio.gather(*(n1.call("n2", "echo", i, timeout=30.0) for i in range(300)))
            assert replies == list(range(300))
            assert list(n1._out) == ["n2"]

    run(main())


def test_no_reply_in_time_is_an_indefinite_timeout(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            never = asyncio.Event()

            async def hang(src: str, msg: Any) -> Any:
                await never.wait()

            nt.rts["n2"].serve("hang", hang)
            with pytest.raises(RpcTimeout) as ei:
                await nt.rts["n1"].call("n2", "hang", None, timeout=0.1)
            assert ei.value.definite is False
            assert await nt.rts["n1"].call("n2", "echo", 1) == 1

    run(main())


def test_connection_refused_is_a_definite_unreachable(tmp_path: Path) -> None:
    async def main() -> None:
        (dead_port,) = free_ports(1)
        async with net(tmp_path, extra={"n9": ("127.0.0.1", dead_port)}) as nt:
            with pytest.raises(Unreachable) as ei:
                await nt.rts["n1"].call("n9", "echo", 1)
            assert ei.value.definite is True
            with pytest.raises(Unreachable):
                await nt.rts["n1"].call("nobody", "echo", 1)
            nt.rts["n1"].send("n9", "echo", 1)  # never raises

    run(main())


def test_remote_errors_travel_with_code_and_definite_flag(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            async def refuse(src: str, msg: Any) -> Any:
                raise RemoteError("expected 1, found 2", code="cas-mismatch", definite=True)

            async def crash(src: str, msg: Any) -> Any:
                raise ValueError("boom")

            nt.rts["n2"].serve("refuse", refuse)
            nt.rts["n2"].serve("crash", crash)
            with pytest.raises(RemoteError) as ei:
                await nt.rts["n1"].call("n2", "refuse", None)
            assert (ei.value.code, ei.value.definite, ei.value.message) == ("cas-mismatch", True, "expected 1, found 2")
            with pytest.raises(RemoteError) as ei:
                await nt.rts["n1"].call("n2", "crash", None)
            assert (ei.value.code, ei.value.definite) == ("internal", False)
            assert "boom" in ei.value.message
            (rec,) = nt.events("n2", "handler-error")
            assert "ValueError" in rec["traceback"]
            with pytest.raises(RemoteError) as ei:
                await nt.rts["n1"].call("n2", "no-such-method", None)
            assert (ei.value.code, ei.value.definite) == ("unknown-method", True)
            assert nt.events("n2", "unknown-method")
            assert await nt.rts["n1"].call("n2", "echo", "still fine") == "still fine"

    run(main())


def test_connection_dying_fails_in_flight_calls_indefinitely_then_reconnects(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            never = asyncio.Event()

            async def hang(src: str, msg: Any) -> Any:
                await never.wait()

            nt.rts["n2"].serve("hang", hang)
            call = asyncio.create_task(nt.rts["n1"].call("n2", "hang", None, timeout=60))
            await until(lambda: len(nt.rts["n2"]._tasks) > 0, "the request to reach n2")
            await nt.rts["n2"].close()
            with pytest.raises(ConnectionLost) as ei:
                await call
            assert isinstance(ei.value, RpcTimeout) and ei.value.definite is False
            # a new n2 on the same port: the next call reconnects lazily
            nt.rts["n2"] = await start_runtime("n2", nt.addrs, tmp_path, nt.logs["n2"])
            assert await nt.rts["n1"].call("n2", "echo", "again") == "again"

    run(main())


def test_one_way_messages_reach_handlers_and_spawned_failures_are_logged(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            got: list[Any] = []

            async def note(src: str, msg: Any) -> None:
                got.append((src, msg))

            nt.rts["n2"].serve("note", note)
            for i in range(5):
                nt.rts["n1"].send("n2", "note", i)  # the first ones wait for the lazy connect
            await until(lambda: len(got) == 5, "five notes")
            assert got == [("n1", i) for i in range(5)]

            async def fail() -> None:
                raise RuntimeError("background trouble")

            nt.rts["n1"].spawn(fail(), name="doomed")
            await until(lambda: bool(nt.events("n1", "task-failed")), "the task failure to be logged")
            assert nt.events("n1", "task-failed")[0]["task"] == "doomed"

    run(main())


def test_rng_is_derived_from_seed_node_and_pid(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            assert nt.rts["n1"].rng.random() == derive_rng(1, "n1", os.getpid()).random()

    run(main())


# -- malformed input --------------------------------------------------------------------------

BAD_INPUTS = {
    "garbage": b"\xde\xad\xbe\xef" * 64,
    "truncated-msgpack": framed(msgpack.packb([0, 1, "n1", "echo", "x" * 20])[:6]),
    "oversized-length": struct.pack(">I", 0x7FFFFFFF) + b"x" * 16,
    "wrong-shape": framed(msgpack.packb({"kind": 0, "id": 1})),
    "wrong-field-type": framed(msgpack.packb([0, "id?", "n1", "echo", 1])),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_malformed_input_is_logged_dropped_and_the_node_keeps_serving(tmp_path: Path, name: str) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            # a healthy connection from n1 exists before the attack and survives it
            assert await nt.rts["n1"].call("n2", "echo", "before") == "before"
            host, port = nt.addrs["n2"]
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(BAD_INPUTS[name])
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the node closed the connection
            writer.close()
            (rec,) = nt.events("n2", "bad-frame")
            assert rec["level"] == "warning" and rec["reason"]
            assert await nt.rts["n1"].call("n2", "echo", "after") == "after"
            assert await nt.client.call("n2", "echo", "client after") == "client after"

    run(main())


def test_a_frame_cut_short_by_eof_is_logged(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            host, port = nt.addrs["n2"]
            _, writer = await asyncio.open_connection(host, port)
            writer.write(struct.pack(">I", 100) + b"only ten b")
            await writer.drain()
            writer.close()
            await until(lambda: bool(nt.events("n2", "truncated-frame")), "truncated-frame in the log")
            assert await nt.rts["n1"].call("n2", "echo", 1) == 1

    run(main())


# -- packet filter ----------------------------------------------------------------------------

def test_filter_decisions_are_seeded_and_follow_the_fault() -> None:
    def draws(seed: int) -> list[list[float]]:
        f = PacketFilter(random.Random(seed))
        f.set({"links": {"n1": {"drop": 0.3, "delay_s": 0.01, "jitter_s": 0.02, "duplicate": 0.2}}, "version": 1})
        return [f.decide("n1") for _ in range(2000)]

    a, b = draws(5), draws(5)
    assert a == b and a != draws(6)
    dropped = sum(1 for d in a if not d)
    dup = sum(1 for d in a if len(d) == 2)
    assert 450 < dropped < 750 and 200 < dup < 450
    assert all(0.01 <= x < 0.03 for d in a for x in d)
    f = PacketFilter(random.Random(0))
    f.set({"grudge": ["n3"], "version": 2})
    assert f.decide("n3") == [] and f.decide("n1") == [0.0]
    assert f.set({"grudge": [], "version": 1}) is False  # stale version: ignored
    assert f.grudge == frozenset({"n3"})
    with pytest.raises(ProtocolError):
        f.set({"links": {"n1": {"drop": 2}}})
    with pytest.raises(LinkFaultError):
        LinkFault.from_wire({"delay_s": -1})


def test_drop_everything_gives_timeouts_but_spares_the_client_and_control(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            await nt.client.control("n2", "set-filter", {"links": {"n1": {"drop": 1.0}}, "version": 1})
            with pytest.raises(RpcTimeout):
                await nt.rts["n1"].call("n2", "echo", 1, timeout=0.2)
            assert await nt.client.call("n2", "echo", "client is never filtered") == "client is never filtered"
            assert (await nt.client.control("n2", "get-filter"))["stats"]["dropped"] >= 1
            await nt.client.control("n2", "clear-filter", {"version": 2})
            assert await nt.rts["n1"].call("n2", "echo", 2) == 2

    run(main())


def test_duplicate_delivers_twice_and_delay_holds_frames_back(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            got: list[Any] = []

            async def note(src: str, msg: Any) -> None:
                got.append(msg)

            nt.rts["n2"].serve("note", note)
            await nt.client.control("n2", "set-filter", {"links": {"n1": {"duplicate": 1.0}}, "version": 1})
            nt.rts["n1"].send("n2", "note", "twice")
            await until(lambda: len(got) == 2, "the duplicate")
            assert got == ["twice", "twice"]
            await nt.client.control("n2", "set-filter", {"links": {"n1": {"delay_s": 0.5}}, "version": 2})
            with pytest.raises(RpcTimeout):  # the request cannot arrive before 0.5 s
                await nt.rts["n1"].call("n2", "echo", 1, timeout=0.1)
            assert await nt.rts["n1"].call("n2", "echo", 2, timeout=10) == 2
            assert (await nt.client.control("n2", "get-filter"))["stats"]["delayed"] >= 2

    run(main())


def test_grudge_drops_inbound_frames_only(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            got: dict[str, list[Any]] = {"n1": [], "n2": []}
            for node in ("n1", "n2"):
                async def note(src: str, msg: Any, node: str = node) -> None:
                    got[node].append(msg)

                nt.rts[node].serve("note", note)
            # n2 drops everything from n1 (iptables INPUT DROP on n2 for n1)
            reply = await nt.client.control("n2", "set-filter", {"grudge": ["n1"], "version": 1})
            assert reply == {"applied": True, "version": 1}
            nt.rts["n1"].send("n2", "note", "n1->n2")
            nt.rts["n2"].send("n1", "note", "n2->n1")
            await until(lambda: got["n1"] == ["n2->n1"], "n2's note to reach n1")
            await until(lambda: nt.rts["n2"].filter.stats.dropped >= 1, "n2 to drop n1's note")
            assert got["n2"] == []
            # a call n2 -> n1 runs n1's handler, but n1's reply is dropped at n2
            with pytest.raises(RpcTimeout):
                await nt.rts["n2"].call("n1", "incr", {}, timeout=0.2)
            assert await nt.client.call("n1", "count", None) == 1
            with pytest.raises(RpcTimeout):
                await nt.rts["n1"].call("n2", "echo", 1, timeout=0.2)
            await nt.client.control("n2", "clear-filter")
            assert await nt.rts["n1"].call("n2", "echo", 3) == 3

    run(main())


# -- control channel --------------------------------------------------------------------------

def test_control_channel_ping_stats_and_bad_requests(tmp_path: Path) -> None:
    async def main() -> None:
        async with net(tmp_path) as nt:
            assert await nt.client.control("n1", "ping") == {"node": "n1", "pid": os.getpid(), "ready": True}
            stats = await nt.client.control("n1", "stats")
            assert stats["node"] == "n1" and "filter" in stats
            with pytest.raises(RemoteError) as ei:
                await nt.client.control("n1", "reboot")
            assert ei.value.code == "unknown-control"
            with pytest.raises(RemoteError) as ei:
                await nt.client.control("n1", "set-filter", {"grudge": "n2"})
            assert ei.value.code == "bad-control"
            with pytest.raises(RuntimeError):
                nt.client.disk.read("x")

    run(main())


def test_requests_wait_until_the_node_is_ready(tmp_path: Path) -> None:
    async def main() -> None:
        (port,) = free_ports(1)
        addrs = {"n1": ("127.0.0.1", port)}
        rt = RealRuntime("n1", addrs, tmp_path / "n1", log=JsonLog("n1", io.StringIO()))
        client = ClientEndpoint(addrs)
        try:
            await rt.start()
            assert (await client.control("n1", "ping"))["ready"] is False
            call = asyncio.create_task(client.call("n1", "echo", "early", timeout=10))
            await until(lambda: len(rt._tasks) == 1, "the early request to be parked")
            await echo_start(rt, NodeConfig("echo"))
            rt.mark_ready()
            assert await call == "early"
        finally:
            await client.close()
            await rt.close()

    run(main())


# -- node_main --------------------------------------------------------------------------------

def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BROKEN_CLUSTERS = {
    "missing": (None, "does not exist"),
    "bad-json": ('{"nodes": {"n1": ', "not valid JSON"),
    "bad-toml": ("[nodes.n1\nhost=", "not valid TOML"),
    "no-nodes": ('{"system": "echo"}', "'nodes'"),
    "bad-port": ('{"nodes": {"n1": {"host": "127.0.0.1", "port": 70000}}}', "'port'"),
    "port-not-int": ('{"nodes": {"n1": {"host": "127.0.0.1", "port": "7001"}}}', "'port'"),
    "unknown-id": ('{"nodes": {"n2": {"host": "127.0.0.1", "port": 7001}}}', "node id 'n1' is not in"),
    "other-system": ('{"system": "raft", "nodes": {"n1": {"host": "127.0.0.1", "port": 7001}}}', "for system"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CLUSTERS))
def test_node_main_rejects_a_broken_cluster_file(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = BROKEN_CLUSTERS[case]
    ext = ".toml" if case == "bad-toml" else ".json"
    path = tmp_path / f"cluster{ext}"
    if text is not None:
        _write(path, text)
    with pytest.raises(SystemExit) as ei:
        node_main("echo", echo_start, bugs=ECHO_BUGS, default_options=ECHO_OPTIONS,
                  argv=["--cluster", str(path), "--id", "n1"])
    assert ei.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("node: error:") and "\n" not in err
    assert expected in err


def test_node_main_rejects_an_unknown_bug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "c.json", '{"nodes": {"n1": {"host": "127.0.0.1", "port": 7001}}}')
    with pytest.raises(SystemExit) as ei:
        node_main("echo", echo_start, bugs=ECHO_BUGS, default_options=ECHO_OPTIONS,
                  argv=["--cluster", str(path), "--id", "n1", "--bug", "no-such-bug"])
    assert ei.value.code == 2
    assert "unknown bug 'no-such-bug'" in capsys.readouterr().err


def _node_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.mark.real
def test_node_main_cli_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "cluster.json", '{"nodes": {"n1": {"host": "127.0.0.1", "port": 0}}}')
    proc = subprocess.run(
        [sys.executable, "-m", "systems.echo", "--cluster", str(path), "--id", "n1"],
        capture_output=True, text=True, env=_node_env(), timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("node: error:") and "Traceback" not in proc.stderr
    assert "'port' must be an integer in 1..65535" in proc.stderr


@pytest.mark.real
def test_node_main_serves_until_sigterm(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    toml = f'system = "echo"\nseed = 3\n[nodes.n1]\nhost = "127.0.0.1"\nport = {port}\n'
    path = _write(tmp_path / "cluster.toml", toml)
    log = tmp_path / "n1.log"
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "systems.echo", "--cluster", str(path), "--id", "n1", "--log", str(log)],
            env=_node_env(), stdout=subprocess.DEVNULL, stderr=err,
        )
    try:
        async def main() -> None:
            client = ClientEndpoint({"n1": ("127.0.0.1", port)})
            try:
                async def up() -> bool:
                    try:
                        return (await client.control("n1", "ping", timeout=0.5))["ready"]
                    except RpcError:
                        return False

                end = asyncio.get_running_loop().time() + 15
                while not await up():
                    assert proc.poll() is None, (tmp_path / "stderr").read_text()
                    assert asyncio.get_running_loop().time() < end, "node never answered ping"
                    await asyncio.sleep(0.02)
                assert await client.call("n1", "incr", {"sync": True}) == 1
            finally:
                await client.close()

        run(main())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "node-started" in events and events[-1] == "node-stopped"
    assert (tmp_path / "data" / "n1" / "count").read_bytes() == b"1"


def test_frames_queued_in_one_turn_leave_in_one_write_per_connection() -> None:
    """Batching per peer per loop turn: 50 one-way frames to one node, 50 to another -> 2 writes."""

    async def main() -> tuple[list[int], int]:
        received: dict[int, int] = {}
        open_handlers = [0]

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            open_handlers[0] += 1
            port = writer.get_extra_info("sockname")[1]
            try:
                while data := await reader.read(65536):
                    received[port] = received.get(port, 0) + len(data)
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
                open_handlers[0] -= 1

        servers = [await asyncio.start_server(sink, "127.0.0.1", 0) for _ in range(2)]
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        ep = ClientEndpoint({"a": ("127.0.0.1", ports[0]), "b": ("127.0.0.1", ports[1])})
        writes: list[int] = []
        try:
            for node in ("a", "b"):
                conn = await ep._get_conn(node, 2.0)
                assert conn.transport is not None
                real_write = conn.transport.write
                conn.transport.write = lambda data, w=real_write: (writes.append(len(data)), w(data))[1]  # type: ignore[method-assign]
            for i in range(50):
                ep.send("a", "m", i)
                ep.send("b", "m", i)
            assert writes == []  # nothing left yet: they wait for the end of this turn
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            want = sum(writes)
            deadline = asyncio.get_running_loop().time() + 5
            while sum(received.values()) < want:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
        finally:
            await ep.close()
            deadline = asyncio.get_running_loop().time() + 5
            while open_handlers[0] and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            for s in servers:
                s.close()
                await s.wait_closed()
        return writes, sum(received.values())

    writes, got = asyncio.run(main())
    assert len(writes) == 2 and got == sum(writes)
