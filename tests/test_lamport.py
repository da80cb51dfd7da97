"""Message-flow diagrams: messages from the sim journal and from a bridge capture, put on history time.

The capture tests build pcap files with scapy from TCP segments carrying our real frames
(systems/runtime/real_wire.py), with the things a real capture has: a handshake, frames split across
segments, a retransmission, a segment out of order, a frame never acknowledged. The sim and netns tests
run the real harness and check that the diagram agrees with the history: each client op's request leaves
when the op was invoked (exactly, in sim) and dropped frames fall inside the partitions that dropped them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from support import needs_root

from base.history import pairs, read_history
from base.spec import TestSpec
from harness.lamport import MAX_MESSAGES, Flow, Message, journal_messages, load_flow, window

# -- the sim journal ------------------------------------------------------------------------------------


def rec(t_ns: int, ev: str, src: str, dst: str, fid: int, kind: str = "send", method: str = "raft",
        note: str = "") -> str:
    return json.dumps({"t": t_ns, "ev": ev, "src": src, "dst": dst, "kind": kind, "method": method, "id": fid,
                       "note": note})


def test_journal_records_pair_into_delivered_dropped_lost_and_duplicated_messages() -> None:
    lines = [
        rec(1_000_000, "send", "client", "n1", 1, "call", "client"),
        rec(1_500_000, "send", "n1", "n2", 2),
        rec(1_600_000, "send", "n1", "n3", 3),
        rec(1_700_000, "send", "n1", "n2", 4, note="lost"),
        rec(1_800_000, "send", "n2", "n1", 5, note="dup"),
        rec(2_000_000, "recv", "client", "n1", 1, "call", "client"),
        rec(2_100_000, "recv", "n1", "n2", 2),
        rec(2_200_000, "drop", "n1", "n3", 3, note="partition"),
        rec(2_300_000, "recv", "n2", "n1", 5),
        rec(2_400_000, "recv", "n2", "n1", 5),
        '{"t": 9, "ev": "send", "src": "n1"',  # a torn last line is skipped
    ]
    msgs = journal_messages(lines, offset_s=0.001)
    got = [(m.src, m.dst, round(m.sent_s, 6), None if m.recv_s is None else round(m.recv_s, 6), m.fate, m.note)
           for m in msgs]
    assert got == [
        ("client", "n1", 0.0, 0.001, "delivered", ""),
        ("n1", "n2", 0.0005, 0.0011, "delivered", ""),
        ("n1", "n3", 0.0006, 0.0012, "dropped", "partition"),
        ("n1", "n2", 0.0007, None, "lost", "lost"),
        ("n2", "n1", 0.0008, 0.0013, "delivered", ""),
        ("n2", "n1", 0.0008, 0.0014, "delivered", "duplicate"),
    ]
    assert msgs[0].kind == "call" and msgs[0].method == "client"


def flow_of(msgs: list[Message]) -> Flow:
    return Flow("journal", msgs, ["client", "n1", "n2"], "test")


def test_a_window_holds_the_messages_in_flight_during_it_and_cuts_at_the_limit() -> None:
    long = Message("n1", "n2", 0.0, 5.0, "send", "raft", "delivered")
    short = [Message("n1", "n2", 1.0 + i * 1e-4, 1.0 + i * 1e-4 + 5e-5, "send", "raft", "delivered")
             for i in range(MAX_MESSAGES + 10)]
    after = Message("n2", "n1", 9.0, 9.1, "send", "raft", "delivered")
    flow = flow_of(sorted([long, *short, after], key=lambda m: m.sent_s))
    w = window(flow, [], ["n1", "n2"], start=2.0, end=3.0)
    assert w["count"] == 1 and w["messages"][0][2] == 0.0  # sent before the window, still in flight in it
    w = window(flow, [], ["n1", "n2"], start=0.5, end=1.5)
    assert w["count"] == MAX_MESSAGES + 11 and len(w["messages"]) == MAX_MESSAGES and w["cut"] is True


def test_asked_for_an_op_the_window_spans_it_with_a_margin_and_names_it() -> None:
    history = [
        {"index": 0, "time": 1_000_000_000, "process": 0, "type": "invoke", "f": "read", "key": "r", "value": None,
         "node": "n1"},
        {"index": 1, "time": 1_004_000_000, "process": 0, "type": "ok", "f": "read", "key": "r", "value": 3,
         "node": "n1"},
        {"index": 2, "time": 3_000_000_000, "process": 1, "type": "invoke", "f": "write", "key": "r", "value": 4,
         "node": "n2"},
        {"index": 3, "time": 3_500_000_000, "process": 1, "type": "info", "f": "write", "key": "r", "value": 4,
         "node": "n2", "error": "timeout"},
    ]
    w = window(flow_of([Message("client", "n1", 1.0, 1.001, "call", "client", "delivered")]), history,
               ["n1", "n2"], op=0)
    assert w["focus"]["index"] == 0 and w["focus"]["value"] == 3 and w["focus"]["type"] == "ok"
    assert w["window"][0] == pytest.approx(0.95) and w["window"][1] == pytest.approx(1.054)
    assert [o["index"] for o in w["ops"]] == [0] and w["count"] == 1
    w = window(flow_of([]), history, ["n1", "n2"], op=2)
    # the margin is cut where the run ends
    assert w["window"] == [pytest.approx(2.5), pytest.approx(3.5)] and w["ops"][0]["type"] == "info"


@pytest.mark.sim
def test_a_sim_runs_diagram_lines_up_with_its_history(tmp_path: Path) -> None:
    from harness.session import check, execute, prepare

    spec = TestSpec(system="raft", workload="register", nemesis=("partition",), backend="sim", node_count=3,
                    concurrency=3, time_limit_s=6.0, nemesis_interval_s=1.0, quiet_s=1.0, seed=4)
    spec = prepare(spec, tmp_path)
    execute(spec)
    check(spec.path)
    assert json.loads((spec.path / "clock.json").read_text())["t0_s"] >= 0
    flow, history, nodes = load_flow(spec.path)
    assert flow.source == "journal" and "clock.json" in flow.alignment
    assert flow.endpoints == ["client", "n1", "n2", "n3"]
    # every client op's request to its node leaves exactly when the op was invoked (virtual time)
    client_sends = {(m.dst, round(m.sent_s, 9)) for m in flow.messages if m.src == "client"}
    ops = [p for p in pairs(history) if p.invoke["process"] != "nemesis"]
    assert ops and all((p.invoke["node"], round(p.invoke["time"] / 1e9, 9)) in client_sends for p in ops)
    # frames dropped by a partition were dropped while one was in place
    w = window(flow, history, nodes, start=0.0, end=100.0)
    parts = [(f["start"], f["end"]) for f in w["faults"] if f["kind"] == "partition"]
    dropped = [m for m in flow.messages if m.note == "partition"]
    assert parts and dropped
    assert all(any(a - 1e-9 <= m.recv_s <= b + 1e-9 for a, b in parts) for m in dropped if m.recv_s is not None)
    # a window around an op holds that op's own request
    op = ops[len(ops) // 2].invoke
    around = window(flow, history, nodes, op=op["index"])
    assert ["client", op["node"]] in [[m[0], m[1]] for m in around["messages"]]


# -- the bridge capture --------------------------------------------------------------------------------


HARNESS_IP, N1_IP, N2_IP = "10.77.0.1", "10.77.0.11", "10.77.0.12"


def frame(kind: Any, fid: int, src: str, method: str, body: Any) -> bytes:
    from systems.runtime.real_wire import Frame, encode

    return encode(Frame(kind, fid, src, method, body))


def segment(t: float, src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int | None, flags: str,
            data: bytes = b"") -> Any:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    tcp_flags = flags + ("A" if ack is not None else "")
    pkt = Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack or 0,
                                                    flags=tcp_flags)
    if data:
        from scapy.packet import Raw

        pkt = pkt / Raw(load=data)
    pkt.time = t
    return pkt


def write_capture(run_dir: Path) -> None:
    from scapy.utils import wrpcap

    from systems.runtime.real_wire import Kind

    run_dir.mkdir(parents=True, exist_ok=True)
    plan = {"bridge_ip": f"{HARNESS_IP}/24", "nodes": {"n1": {"ip": N1_IP}, "n2": {"ip": N2_IP}}}
    (run_dir / "netns-plan.json").write_text(json.dumps(plan))
    (run_dir / "test.json").write_text(json.dumps({"system": "raft", "nodes": ["n1", "n2"]}))
    (run_dir / "clock.json").write_text(json.dumps({"t0_s": 123.0, "wall_s": 1000.0}))
    h, n1, n1b, n2 = (HARNESS_IP, 40000), (N1_IP, 7000), (N1_IP, 45000), (N2_IP, 7000)
    request = frame(Kind.REQUEST, 1, "client", "client", {"f": "put", "key": "k", "value": 1})
    reply = frame(Kind.RESPONSE, 1, "n1", "", {"ok": True})
    append = frame(Kind.ONEWAY, 0, "n1", "raft", {"t": "append", "term": 2, "entries": []})
    vote = frame(Kind.ONEWAY, 0, "n1", "raft", {"t": "vote", "term": 3})
    a, b = request[:7], request[7:]
    pkts = [
        segment(1000.0, h, n1, 100, None, "S"),
        segment(1000.0001, n1, h, 500, 101, "S"),
        segment(1000.0002, h, n1, 101, 501, ""),
        segment(1000.0100, h, n1, 101, 501, "P", a),  # the request's first 7 bytes
        segment(1000.0101, h, n1, 101, 501, "P", a),  # ... retransmitted
        segment(1000.0103, h, n1, 108, 501, "P", b),  # ... the rest
        segment(1000.0110, n1, h, 501, 101 + len(request), ""),  # n1 acknowledges the whole request
        segment(1000.0200, n1, h, 501, 101 + len(request), "P", reply),
        segment(1000.0210, h, n1, 101 + len(request), 501 + len(reply), ""),
        # n1 -> n2 on n1's own connection, handshake not captured; the second frame arrives first
        segment(1000.0305, n1b, n2, 9000 + len(append), 7000, "P", vote),
        segment(1000.0300, n1b, n2, 9000, 7000, "P", append),
        segment(1000.0320, n2, n1b, 7000, 9000 + len(append), ""),  # only the append is acknowledged
    ]
    wrpcap(str(run_dir / "capture.pcap"), pkts)


def test_a_capture_is_reassembled_and_decoded_into_our_messages(tmp_path: Path) -> None:
    from harness.lamport_capture import address_names, capture_messages

    run = tmp_path / "run"
    write_capture(run)
    names = address_names(run)
    assert names == {N1_IP: "n1", N2_IP: "n2", HARNESS_IP: "harness"}
    msgs, broken, gaps = capture_messages(run / "capture.pcap", names)
    assert broken == 0 and gaps == 0
    got = [(m.src, m.dst, m.kind, m.method, m.fate, round(m.sent_s - 1000, 4),
            None if m.recv_s is None else round(m.recv_s - 1000, 4)) for m in msgs]
    assert got == [
        ("harness", "n1", "request", "client put", "delivered", 0.0100, 0.0110),  # first byte's first copy
        ("n1", "harness", "response", "client", "delivered", 0.0200, 0.0210),  # the method of its request
        ("n1", "n2", "oneway", "raft append", "delivered", 0.0300, 0.0320),
        ("n1", "n2", "oneway", "raft vote", "dropped", 0.0305, None),  # never acknowledged
    ]
    assert '"key":"k"' in msgs[0].note and msgs[3].note.startswith("never acknowledged")


def test_a_captures_flow_is_on_history_time_from_clock_json(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_capture(run)
    flow, _, nodes = load_flow(run)
    assert flow.source == "capture" and flow.endpoints == ["harness", "n1", "n2"] and nodes == ["n1", "n2"]
    assert [round(m.sent_s, 4) for m in flow.messages] == [0.01, 0.02, 0.03, 0.0305]


def test_bytes_that_are_not_our_frames_end_that_stream_and_are_counted(tmp_path: Path) -> None:
    from scapy.utils import wrpcap

    from harness.lamport_capture import capture_messages

    pkts = [segment(1.0, (N1_IP, 5000), (N2_IP, 7000), 1, None, "P", b"\x00\x00\x00\x05not msgpack!"),
            segment(1.1, (N2_IP, 7000), (N1_IP, 5000), 9, 30, "")]
    wrpcap(str(tmp_path / "c.pcap"), pkts)
    msgs, broken, _ = capture_messages(tmp_path / "c.pcap", {N1_IP: "n1", N2_IP: "n2"})
    assert msgs == [] and broken == 1


def test_bytes_the_capture_missed_cost_the_frame_they_cut_and_no_more(tmp_path: Path) -> None:
    from scapy.utils import wrpcap

    from harness.lamport_capture import capture_messages
    from systems.runtime.real_wire import Kind

    frames = [frame(Kind.ONEWAY, 0, "n1", "raft", {"t": "append", "i": i}) for i in range(4)]
    seqs = [1000]
    for f in frames:
        seqs.append(seqs[-1] + len(f))
    src, dst = (N1_IP, 5000), (N2_IP, 7000)
    kept = [0, 2, 3]  # the capture missed the segment carrying frame 1
    pkts = [segment(1.0 + i / 100, src, dst, seqs[i], None, "P", frames[i]) for i in kept]
    pkts.append(segment(1.1, dst, src, 1, seqs[4], ""))
    wrpcap(str(tmp_path / "c.pcap"), pkts)
    msgs, broken, gaps = capture_messages(tmp_path / "c.pcap", {N1_IP: "n1", N2_IP: "n2"})
    assert [m.note for m in msgs] == ['{"t":"append","i":0}', '{"t":"append","i":2}', '{"t":"append","i":3}']
    assert broken == 0 and gaps == 1 and all(m.fate == "delivered" for m in msgs)


@pytest.mark.root
@needs_root(why="network namespaces and a bridge to capture")
def test_a_netns_capture_decodes_into_raft_messages_lined_up_with_the_history(tmp_path: Path) -> None:
    from harness.session import execute, prepare

    spec = TestSpec(system="raft", workload="register", nemesis=("partition",), backend="netns", node_count=3,
                    concurrency=3, time_limit_s=5.0, nemesis_interval_s=1.0, quiet_s=1.0, seed=5)
    spec = prepare(spec, tmp_path)
    os.environ["PICLUSTER_CAPTURE"] = "1"
    try:
        execute(spec)
    finally:
        del os.environ["PICLUSTER_CAPTURE"]
    flow, _history, nodes = load_flow(spec.path)
    assert flow.source == "capture" and "clock.json" in flow.alignment
    kinds = {(m.src in nodes, m.dst in nodes, m.method) for m in flow.messages}
    # node to node: Raft's own message types, decoded from the frames' bodies
    assert (True, True, "raft append") in kinds and (True, True, "raft append-resp") in kinds
    # each client op that completed ok was sent to some node between its invocation and its completion
    requests = [m for m in flow.messages if m.src == "harness" and m.kind == "request"]  # client ops, status reads
    done = [p for p in pairs(read_history(spec.path / "history.jsonl").ops)
            if p.invoke["process"] != "nemesis" and p.complete and p.complete["type"] == "ok"]
    assert done and requests
    for p in done:
        start, end = p.invoke["time"] / 1e9, p.complete["time"] / 1e9
        # (0.5 ms for the two float wall clocks: the kernel's timestamp and clock.json's time.time())
        assert any(start - 5e-4 <= m.sent_s <= end for m in requests), (p.invoke, start, end)
