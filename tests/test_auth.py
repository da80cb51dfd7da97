"""Authenticated membership on the real runtime: keys, the handshake, tagged frames, who may send what.

Runtimes run in-process on loopback ports (echo system). Every wait is on a condition with a
bound."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import stat
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import msgpack
import pytest

from harness.backends.local import free_ports
from systems.echo import start_node as echo_start
from systems.runtime.api import ConnectionLost, NodeConfig, ProtocolError, RemoteError, RpcError, Unreachable
from systems.runtime.real import ClientEndpoint, RealRuntime
from systems.runtime.real_auth import (
    AuthError,
    ClusterKeys,
    Credentials,
    Handshake,
    KeyFileError,
    load_key_file,
    node_key_file,
    write_key_files,
)
from systems.runtime.real_log import JsonLog
from systems.runtime.real_transport import Limits

DEADLINE_S = 30.0


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, DEADLINE_S))


async def until(cond: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def frame(kind: int, rid: int, src: str, method: str, body: Any) -> bytes:
    p = msgpack.packb([kind, rid, src, method, body], use_bin_type=True)
    return struct.pack(">I", len(p)) + p


class KeyedNet:
    def __init__(self, keys: ClusterKeys, addrs: dict[str, tuple[str, int]], rts: dict[str, RealRuntime],
                 logs: dict[str, io.StringIO], harness: ClientEndpoint) -> None:
        self.keys, self.addrs, self.rts, self.logs, self.harness = keys, addrs, rts, logs, harness

    def events(self, node: str, event: str) -> list[dict[str, Any]]:
        return [r for r in (json.loads(x) for x in self.logs[node].getvalue().splitlines()) if r["event"] == event]

    def client(self, name: str = "c1", creds: Credentials | None = None) -> ClientEndpoint:
        return ClientEndpoint(self.addrs, node_id=name, log=JsonLog(name, io.StringIO()),
                              credentials=creds or self.keys.client)


@contextlib.asynccontextmanager
async def keyed_net(tmp_path: Path, n: int = 2, limits: Limits | None = None) -> AsyncIterator[KeyedNet]:
    addrs = {f"n{i + 1}": ("127.0.0.1", p) for i, p in enumerate(free_ports(n))}
    keys = ClusterKeys.generate(addrs)
    logs = {node: io.StringIO() for node in addrs}
    rts: dict[str, RealRuntime] = {}
    harness = ClientEndpoint(addrs, log=JsonLog("client", io.StringIO()), credentials=keys.harness)
    try:
        for node in addrs:
            rt = RealRuntime(node, addrs, tmp_path / node, log=JsonLog(node, logs[node]),
                             credentials=keys.nodes[node], limits=limits)
            await echo_start(rt, NodeConfig("echo"))
            await rt.start()
            rt.mark_ready()
            rts[node] = rt
        yield KeyedNet(keys, addrs, rts, logs, harness)
    finally:
        await harness.close()
        for rt in rts.values():
            await rt.close()


# -- keys ----------------------------------------------------------------------------------------------

def test_a_key_file_holds_only_what_its_owner_needs() -> None:
    keys = ClusterKeys.generate(["n1", "n2", "n3"])
    n1 = keys.nodes["n1"]
    assert sorted(n1.peers) == ["n1", "n2", "n3"] and sorted(n1.roles) == ["client", "harness"]
    assert n1.peers["n1"] not in (keys.nodes["n2"].peers["n3"], *keys.nodes["n2"].peers.values())  # its own alone
    assert n1.peers["n2"] == keys.nodes["n2"].peers["n1"]  # a pair key is shared by the pair alone
    assert n1.peers["n3"] != keys.nodes["n2"].peers["n3"]
    assert keys.harness.peers["n1"] == n1.roles["harness"] != n1.roles["client"] == keys.client.peers["n1"]
    assert not keys.harness.roles and not keys.client.roles
    other = ClusterKeys.generate(["n1", "n2", "n3"])
    assert other.nodes["n1"].peers["n2"] != n1.peers["n2"]  # every cluster its own master


def test_key_files_are_owner_only_and_one_open_to_others_is_refused(tmp_path: Path) -> None:
    keys = ClusterKeys.generate(["n1", "n2"])
    d = tmp_path / "keys"
    write_key_files(d, keys.files())
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    path = d / node_key_file("n1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_file(path) == keys.nodes["n1"]
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600") as ei:
        load_key_file(path)
    assert "\n" not in str(ei.value)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key_file(d / "nope.key")


def test_unsafe_node_ids_get_no_keys() -> None:
    with pytest.raises(ValueError, match="node id"):
        ClusterKeys.generate(["n1", "../../x"])


# -- the handshake, as a pure state machine ----------------------------------------------------------

def handshake(client: Credentials, server: Credentials, *, name: str, to: str, nodes: list[str]) -> tuple[Any, Any]:
    c = Handshake(client, name=name, to=to, nodes=nodes)
    s = Handshake(server, name=to, to=None, nodes=nodes)
    out_s, sess_s, _ = s.feed(c.hello())
    out_c, sess_c, _ = c.feed(out_s)
    _, sess_s, _ = s.feed(out_c)
    return sess_c, sess_s


def test_a_handshake_proves_both_ends_and_keys_every_frame() -> None:
    keys = ClusterKeys.generate(["n1", "n2"])
    c, s = handshake(keys.nodes["n1"], keys.nodes["n2"], name="n1", to="n2", nodes=["n1", "n2"])
    assert (c.name, c.role, s.name, s.role) == ("n2", "node", "n1", "node")
    sealed = [c.seal(frame(0, i, "n1", "echo", i)) for i in range(3)]
    assert [msgpack.unpackb(s.open(f[4:]))[4] for f in sealed] == [0, 1, 2]
    replayed = c.seal(frame(0, 9, "n1", "echo", 9))
    s.open(replayed[4:])
    with pytest.raises(ProtocolError, match="tag"):
        s.open(replayed[4:])  # the same frame again: its sequence number has passed
    forged = bytearray(c.seal(frame(0, 10, "n1", "echo", 10)))
    forged[10] ^= 1
    with pytest.raises(ProtocolError, match="tag"):
        s.open(bytes(forged[4:]))


@pytest.mark.parametrize("case", ["wrong-cluster", "claims-another-node", "client-as-node", "garbage"])
def test_a_peer_that_cannot_prove_itself_is_refused(case: str) -> None:
    keys = ClusterKeys.generate(["n1", "n2", "n3"])
    nodes = ["n1", "n2", "n3"]
    server = Handshake(keys.nodes["n2"], name="n2", to=None, nodes=nodes)
    if case == "garbage":
        with pytest.raises(AuthError):
            server.feed(frame(0, 1, "n1", "raft", {"t": "append"}))
        return
    if case == "wrong-cluster":
        client = Handshake(ClusterKeys.generate(nodes).nodes["n1"], name="n1", to="n2", nodes=nodes)
    elif case == "claims-another-node":  # n3 holds no key shared by n1 and n2
        creds = keys.nodes["n3"]
        client = Handshake(Credentials("node", "n1", {"n2": creds.peers["n2"]}), name="n1", to="n2", nodes=nodes)
    else:
        client = Handshake(Credentials("node", "n1", {"n2": keys.client.peers["n2"]}), name="n1", to="n2",
                           nodes=nodes)
    out, _, _ = server.feed(client.hello())
    with pytest.raises(AuthError):
        answer, _, _ = client.feed(out)  # the server's proof does not verify with the client's key
        server.feed(answer)


# -- the runtime -----------------------------------------------------------------------------------------

def test_authenticated_calls_work_and_src_is_the_proven_name(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyed_net(tmp_path) as net:
            seen: list[str] = []

            async def who(src: str, msg: Any) -> Any:
                seen.append(src)
                return src

            net.rts["n2"].serve("who", who)
            assert await net.rts["n1"].call("n2", "echo", {"x": b"\x01"}) == {"x": b"\x01"}
            assert await net.rts["n1"].call("n2", "who", None) == "n1"
            liar = net.client("c1")
            assert await liar.call("n2", "who", None) == "c1"
            liar.node_id = "n1"  # now every frame it writes says src "n1"
            assert await liar.call("n2", "who", None) == "c1"
            await liar.close()
            assert await net.harness.call("n2", "who", None) == "client"
            big = b"\x07" * (2 * 1024 * 1024)
            assert await net.rts["n1"].call("n2", "echo", big, timeout=10) == big

    run(main())


def test_control_frames_are_the_harness_alone(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyed_net(tmp_path) as net:
            assert (await net.harness.control("n1", "ping"))["ready"] is True
            client = net.client()
            with pytest.raises(RemoteError) as ei:
                await client.control("n1", "set-filter", {"grudge": ["n2"], "version": 2**62})
            assert ei.value.code == "forbidden" and ei.value.definite
            await client.close()
            assert (await net.harness.control("n1", "get-filter"))["version"] == 0
            reply = await net.harness.control("n1", "set-filter", {"grudge": [], "links": {}, "version": 3})
            assert reply == {"applied": True, "version": 3}
            with pytest.raises(RemoteError, match=r"0\.\.") as ei:
                await net.harness.control("n1", "clear-filter", {"version": 2**64 - 1})
            assert ei.value.code == "bad-control"
            assert net.events("n1", "control-refused")

    run(main())


def test_no_key_no_entry_and_the_warnings_stay_a_trickle(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyed_net(tmp_path) as net:
            host, port = net.addrs["n1"]
            for _ in range(40):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(frame(4, 1, "client", "set-filter", {"grudge": ["n2"], "version": 2**63 - 1}))
                await writer.drain()
                assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
                writer.close()
            assert len(net.events("n1", "auth-failed")) == 5  # the rest are counted, told in a summary
            assert (await net.harness.control("n1", "stats"))["dropped"]["auth-failed"] == 40
            assert (await net.harness.control("n1", "get-filter"))["version"] == 0
            assert await net.rts["n2"].call("n1", "echo", "still here") == "still here"

    run(main())


def test_an_impostor_at_a_nodes_address_is_unreachable(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyed_net(tmp_path) as net:
            n1 = net.rts["n1"]
            await net.rts["n2"].close()
            other = ClusterKeys.generate(["n1", "n2"])  # a process with another cluster's keys takes n2's port
            fake = RealRuntime("n2", net.addrs, tmp_path / "fake", log=JsonLog("n2", io.StringIO()),
                               credentials=other.nodes["n2"])
            await echo_start(fake, NodeConfig("echo"))
            await fake.start()
            fake.mark_ready()
            try:
                with pytest.raises(Unreachable, match="prove"):
                    await n1.call("n2", "echo", "secret", timeout=3)
            finally:
                await fake.close()

    run(main())


def test_an_open_endpoint_cannot_talk_to_a_keyed_node(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyed_net(tmp_path) as net:
            open_client = ClientEndpoint(net.addrs, log=JsonLog("x", io.StringIO()))
            try:
                with pytest.raises(RpcError):  # its frame is not a hello: the node hangs up
                    await open_client.call("n1", "echo", 1, timeout=2)
                assert net.events("n1", "auth-failed")
            finally:
                await open_client.close()

    run(main())


# -- limits ------------------------------------------------------------------------------------------------

def test_a_slow_body_a_silent_handshake_and_too_many_connections_are_cut(tmp_path: Path) -> None:
    limits = Limits(handshake_timeout_s=0.5, body_timeout_s=0.5, max_conns_per_address=6, sweep_s=0.1,
                    buffer_budget_bytes=3 * 1024 * 1024)

    async def main() -> None:
        async with keyed_net(tmp_path, limits=limits) as net:
            host, port = net.addrs["n1"]
            # a connection that never says hello is closed after the handshake timeout
            reader, writer = await asyncio.open_connection(host, port)
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            assert net.events("n1", "handshake-timeout")
            # an authenticated client that starts a frame and stalls is cut after the body timeout
            client = net.client("slow")
            await client.call("n1", "echo", 1)
            conn = client._out["n1"]
            assert conn.transport is not None
            conn.transport.write(struct.pack(">I", 1000) + b"x" * 10)
            await until(lambda: conn.closed, "the stalled connection to be cut")
            assert net.events("n1", "slow-frame")
            # partial frames past the buffer budget: the connection that passes it is closed
            conn2 = (await client._get_conn("n1", 2.0))
            assert conn2.transport is not None
            conn2.transport.write(struct.pack(">I", 8 * 1024 * 1024) + b"y" * (4 * 1024 * 1024))
            await until(lambda: conn2.closed, "the connection over budget to be cut", 5)
            assert net.events("n1", "buffer-budget")
            await client.close()
            # more connections from one address than allowed: the extra ones are closed at once
            writers = []
            for _ in range(10):
                _, w = await asyncio.open_connection(host, port)
                writers.append(w)
            await until(lambda: bool(net.events("n1", "too-many-connections")), "the cap to bite")
            for w in writers:
                w.close()
            await asyncio.sleep(0.3)
            assert await net.rts["n2"].call("n1", "echo", "ok") == "ok"

    run(main())


# -- fail-stop -----------------------------------------------------------------------------------------------

def test_an_essential_task_that_dies_stops_the_node(tmp_path: Path) -> None:
    async def main() -> None:
        async with keyed_net(tmp_path) as net:
            n2 = net.rts["n2"]
            told: list[str] = []
            n2.on_failure = told.append
            assert await net.rts["n1"].call("n2", "echo", 1) == 1

            async def loop() -> None:
                await asyncio.sleep(0.05)
                raise OverflowError("Integer value out of range")

            n2.spawn(loop(), name="protocol-loop", essential=True)
            await until(lambda: bool(told), "the node to fail")
            assert "protocol-loop" in told[0] and "OverflowError" in told[0]
            assert net.events("n2", "node-failed")
            # no answer: a new connection is refused (Unreachable) or the kept one closes under the request
            with pytest.raises((Unreachable, ConnectionLost)):
                await net.rts["n1"].call("n2", "echo", 2, timeout=2)
            n2.spawn(asyncio.sleep(0), name="not-essential")  # a finished ordinary task is no failure
            assert len(told) == 1

    run(main())


def test_a_failed_sync_is_never_acknowledged_and_stops_the_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    import errno

    from systems.runtime import real_disk

    async def main() -> None:
        async with keyed_net(tmp_path) as net:
            told: list[str] = []
            net.rts["n2"].on_failure = told.append
            assert await net.harness.call("n2", "incr", {"sync": True}) == 1

            def eio(*args: Any) -> Any:
                raise OSError(errno.EIO, "Input/output error")

            monkeypatch.setattr(real_disk, "_timed_fsync", eio)
            with pytest.raises(RpcError):  # no answer at all: the node stopped before it could say ok
                await net.harness.call("n2", "incr", {"sync": True}, timeout=3)
            await until(lambda: bool(told), "the node to fail")
            assert "Input/output error" in told[0]
            (rec,) = net.events("n2", "node-failed")
            assert "sync" in rec["reason"]

    run(main())
