"""The DFS checkers on hand-made histories: each rule proven by a case it must reject, and the
behaviour GFS allows (duplicates, padding, operations in doubt) proven accepted.

Also the append workload's record format, which is what lets a reader tell records, padding and garbage apart.
"""

from __future__ import annotations

import itertools
from typing import Any

from checkers import dfs_append, dfs_files, dfs_state
from workloads.dfs import encode_record, parse_records

F = "/append/f0"


class H:
    """A history builder: ops get indexes and times (1 ms apart) in the order written."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []
        self.t = itertools.count(0, 1_000_000)

    def op(self, process: Any, type_: str, f: str, **kw: Any) -> dict[str, Any]:
        o = {"index": len(self.ops), "time": next(self.t), "process": process, "type": type_, "f": f, **kw}
        self.ops.append(o)
        return o

    def call(self, process: Any, f: str, outcome: str, key: Any = None, value: Any = None, result: Any = None,
             **kw: Any) -> None:
        self.op(process, "invoke", f, key=key, value=value, **kw)
        self.op(process, outcome, f, key=key, value=value if result is None else result, **kw)


def read_value(records: list[str], garbage: int = 0, corrupt: int = 0, pad: int = 0) -> dict[str, Any]:
    return {"records": records, "pad_bytes": pad, "garbage": [[0, garbage]] if garbage else [],
            "garbage_bytes": garbage, "corrupt_records": corrupt, "length": 100}


# ---------------------------------------------------------------- records


def test_records_padding_and_garbage_are_told_apart() -> None:
    a, b = encode_record("1:1", 40), encode_record("2:7", 3)
    data = a + bytes(10) + b + a  # a duplicate and some padding: allowed
    seen = parse_records(data)
    assert seen["records"] == ["1:1", "2:7", "1:1"] and seen["pad_bytes"] == 10 and seen["garbage_bytes"] == 0
    flipped = bytearray(a + b)
    flipped[12] ^= 0x01  # inside record 1:1's payload
    seen = parse_records(bytes(flipped))
    assert seen["records"] == ["2:7"] and seen["corrupt_records"] == 1 and seen["garbage_bytes"] == len(a)
    torn = b[: len(b) // 2] + a  # a fragment followed by a whole record
    seen = parse_records(torn)
    assert seen["records"] == ["1:1"] and seen["garbage_bytes"] == len(b) // 2
    assert parse_records(bytes(5) + b"\x07" + bytes(5))["garbage"] == [[5, 1]]


# ---------------------------------------------------------------- append


def appends_history() -> H:
    h = H()
    h.call(1, "append", "ok", F, "1:1")
    h.call(1, "append", "ok", F, "1:2")
    h.call(2, "append", "info", F, "2:1")
    h.call(3, "append", "fail", F, "3:1")
    return h


def test_append_accepts_duplicates_padding_and_appends_in_doubt() -> None:
    h = appends_history()
    h.call(4, "read", "ok", F, None, read_value(["1:1", "2:1", "1:1", "1:2"], pad=300), final=True)
    r = dfs_append.check(h.ops, {})
    assert r["valid"] is True, r
    assert r["stats"]["duplicate_records"] == 1 and r["stats"]["pad_bytes"] == 300


def test_append_rejects_a_lost_acknowledged_append() -> None:
    h = appends_history()
    h.call(4, "read", "ok", F, None, read_value(["1:1"]), final=True, node="n3")
    r = dfs_append.check(h.ops, {})
    assert r["valid"] is False and r["lost"][0]["missing"] == ["1:2"]


def test_append_rejects_a_record_whose_append_failed_or_never_happened() -> None:
    for rid in ("3:1", "9:9"):
        h = appends_history()
        h.call(4, "read", "ok", F, None, read_value(["1:1", "1:2", rid]))
        r = dfs_append.check(h.ops, {})
        assert r["valid"] is False and r["phantom"][0]["record"] == rid


def test_append_rejects_torn_or_corrupt_data() -> None:
    for kw in ({"garbage": 17}, {"corrupt": 1, "garbage": 40}):
        h = appends_history()
        h.call(4, "read", "ok", F, None, read_value(["1:1", "1:2"], **kw))
        assert dfs_append.check(h.ops, {})["valid"] is False


def test_append_rejects_a_writers_acknowledged_appends_out_of_order() -> None:
    h = appends_history()
    h.call(4, "read", "ok", F, None, read_value(["1:2", "1:1"]))
    r = dfs_append.check(h.ops, {})
    assert r["valid"] is False and r["disorder"][0]["earlier"] == "1:1"


def test_append_does_not_ask_a_read_for_appends_still_in_flight() -> None:
    h = H()
    h.op(1, "invoke", "append", key=F, value="1:1")
    h.call(4, "read", "ok", F, None, read_value([]))
    h.op(1, "ok", "append", key=F, value="1:1")
    assert dfs_append.check(h.ops, {})["valid"] is True


def test_append_is_unknown_without_reads() -> None:
    assert dfs_append.check(appends_history().ops, {})["valid"] == "unknown"


# ---------------------------------------------------------------- files


def files_history() -> H:
    h = H()
    h.call(1, "create", "ok", "/files/f1", {"size": 10}, {"size": 10, "digest": "aa"})
    h.call(1, "create", "ok", "/files/f2", {"size": 20}, {"size": 20, "digest": "bb"})
    h.call(1, "create", "info", "/files/f3", {"size": 30})
    h.call(1, "create", "fail", "/files/f4", {"size": 30})
    h.call(2, "rename", "ok", "/files/f2", "/files/f2.r5")
    h.call(2, "delete", "ok", "/files/f1")
    return h


def test_files_accepts_exact_reads_and_a_listing_that_keeps_every_acknowledged_change() -> None:
    h = files_history()
    h.call(3, "read", "ok", "/files/f2.r5", None, {"size": 20, "digest": "bb"})
    h.call(3, "read", "fail", "/files/f1", None)  # a clear error is fine
    h.call(3, "ls", "ok", "/files", None, ["/files/f2.r5", "/files/f3"], final=True)
    assert dfs_files.check(h.ops, {})["valid"] is True
    h2 = files_history()
    h2.call(3, "ls", "ok", "/files", None, ["/files/f2.r5"], final=True)  # a create in doubt may be absent too
    assert dfs_files.check(h2.ops, {})["valid"] is True


def test_files_rejects_partial_or_different_content() -> None:
    for got, kind in (({"size": 12, "digest": "xx"}, "partial"), ({"size": 20, "digest": "cc"}, "different content")):
        h = files_history()
        h.call(3, "read", "ok", "/files/f2.r5", None, got)
        h.call(3, "ls", "ok", "/files", None, ["/files/f2.r5"], final=True)
        r = dfs_files.check(h.ops, {})
        assert r["valid"] is False and r["wrong_content"][0]["kind"] == kind


def test_files_rejects_reading_a_name_after_it_was_deleted_or_renamed_away() -> None:
    for path in ("/files/f1", "/files/f2"):
        h = files_history()
        h.call(3, "read", "ok", path, None, {"size": 10, "digest": "aa"})
        h.call(3, "ls", "ok", "/files", None, ["/files/f2.r5"], final=True)
        r = dfs_files.check(h.ops, {})
        assert r["valid"] is False and r["read_after_gone"][0]["path"] == path


def test_files_rejects_a_lost_create_rename_or_delete_and_phantoms() -> None:
    listings = {
        "lost create+rename": [],
        "lost rename": ["/files/f2"],
        "lost delete": ["/files/f1", "/files/f2.r5"],
        "failed create listed": ["/files/f2.r5", "/files/f4"],
        "never created": ["/files/f2.r5", "/files/zz"],
    }
    for why, listing in listings.items():
        h = files_history()
        h.call(3, "ls", "ok", "/files", None, listing, final=True)
        assert dfs_files.check(h.ops, {})["valid"] is False, why


def test_files_is_unknown_without_a_final_listing() -> None:
    assert dfs_files.check(files_history().ops, {})["valid"] == "unknown"


# ---------------------------------------------------------------- state


def status(h: H, node: str, value: dict[str, Any], final: bool = False) -> None:
    h.call(f"s{node}", "status", "ok", None, None, {"node": node, **value}, final=final)


def master_state(leases: list[dict[str, Any]] | None = None, version: int = 3,
                 chunks: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"incarnation": "m1", "goal": 2, "files": {"/f": [1]},
            "chunks": chunks or {"1": {"version": version}}, "leases": leases or [], "events": []}


def replicas(version: int = 3, ok: bool | None = True) -> dict[str, Any]:
    return {"incarnation": "c1", "replicas": {"1": {"version": version, "length": 5, "ok": ok}}, "leases": []}


def healthy_end(h: H) -> None:
    status(h, "n1", {"master_state": master_state(), "chunkserver": replicas()}, final=True)
    status(h, "n2", {"chunkserver": replicas()}, final=True)


def lease(primary: str, version: int, ago: float, left: float) -> dict[str, Any]:
    return {"handle": 1, "primary": primary, "version": version, "granted_ago_s": ago, "expires_in_s": left}


def test_state_accepts_leases_one_after_another_and_a_healthy_end() -> None:
    h = H()
    status(h, "n1", {"master_state": master_state([lease("n2", 2, 10.0, -5.0), lease("n3", 3, 4.0, 1.0)])})
    healthy_end(h)
    r = dfs_state.check(h.ops, {})
    assert r["valid"] is True, r
    assert len(r["leases"]) == 2 and r["final"]["placement"]["1"]["good"] == ["n1", "n2"]


def test_state_rejects_two_leases_at_once() -> None:
    h = H()
    status(h, "n1", {"master_state": master_state([lease("n2", 2, 3.0, 2.0), lease("n3", 3, 1.0, 3.0)])})
    healthy_end(h)
    r = dfs_state.check(h.ops, {})
    assert r["valid"] is False and r["overlapping_leases"][0]["handle"] == 1


def test_state_rejects_overlap_seen_only_by_the_primaries_themselves() -> None:
    h = H()
    status(h, "n2", {"chunkserver": {**replicas(), "leases": [lease("n2", 2, 1.0, 2.0)]}})
    status(h, "n3", {"chunkserver": {**replicas(), "leases": [lease("n3", 3, 0.5, 2.0)]}})
    healthy_end(h)
    assert dfs_state.check(h.ops, {})["valid"] is False


def test_state_rejects_a_version_going_backwards() -> None:
    for where in ("replica", "master"):
        h = H()
        if where == "replica":
            status(h, "n2", {"chunkserver": replicas(version=4)})
        else:
            status(h, "n1", {"master_state": master_state(version=4)})
        healthy_end(h)
        r = dfs_state.check(h.ops, {})
        assert r["valid"] is False and r["version_regressions"], where


def test_state_rejects_an_unhealthy_end() -> None:
    cases = {
        "too few replicas": {"n2": replicas(version=2)},
        "corrupt replica": {"n2": replicas(ok=False)},
    }
    for why, others in cases.items():
        h = H()
        status(h, "n1", {"master_state": master_state(), "chunkserver": replicas()}, final=True)
        for node, cs in others.items():
            status(h, node, {"chunkserver": cs}, final=True)
        r = dfs_state.check(h.ops, {})
        assert r["valid"] is False and r["unhealthy_at_end"], why


def test_state_is_unknown_without_a_final_master_report() -> None:
    h = H()
    status(h, "n2", {"chunkserver": replicas()}, final=True)
    assert dfs_state.check(h.ops, {})["valid"] == "unknown"


def settle(h: H, outcome: str) -> None:
    h.call("settle", "settle", "ok", None, None,
           {"healthy": outcome == "healthy", "outcome": outcome, "waited_s": 120.0, "stall_s": 9.0,
            "problems_first": 400, "problems_last": 1 if outcome != "healthy" else 0,
            "last_progress_ago_s": 0.2 if outcome == "still-repairing" else 9.0}, final=True)


def short_end(h: H, *, corrupt: bool = False) -> None:
    """n2 lags behind (still to be re-cloned); with `corrupt`, n3's current replica also fails its checksums."""
    status(h, "n1", {"master_state": master_state(), "chunkserver": replicas()}, final=True)
    status(h, "n2", {"chunkserver": replicas(version=2)}, final=True)
    if corrupt:
        status(h, "n3", {"chunkserver": replicas(ok=False)}, final=True)


def test_state_says_unknown_while_re_replication_is_still_progressing() -> None:
    h = H()
    settle(h, "still-repairing")
    short_end(h)
    r = dfs_state.check(h.ops, {})
    assert r["valid"] == "unknown" and r["still_repairing"], r
    assert r["unhealthy_at_end"] and "still repairing" in r["summary"] and r["settle"]["problems_first"] == 400


def test_state_rejects_a_chunk_stuck_under_its_goal_while_nothing_repairs_it() -> None:
    for outcome in ("stalled", "healthy", None):  # no progress; healthy then broken; no settle to tell
        h = H()
        if outcome:
            settle(h, outcome)
        short_end(h)
        r = dfs_state.check(h.ops, {})
        assert r["valid"] is False and not r["still_repairing"] and r["unhealthy_at_end"], outcome


def test_state_rejects_a_corrupt_replica_even_while_still_repairing() -> None:
    h = H()
    settle(h, "still-repairing")
    short_end(h, corrupt=True)
    assert dfs_state.check(h.ops, {})["valid"] is False


def test_state_still_rejects_unsafe_histories_while_still_repairing() -> None:
    h = H()
    settle(h, "still-repairing")
    status(h, "n1", {"master_state": master_state([lease("n2", 2, 3.0, 2.0), lease("n3", 3, 1.0, 3.0)])})
    short_end(h)
    assert dfs_state.check(h.ops, {})["valid"] is False


def test_state_leaves_out_lease_views_measured_with_a_moved_clock_and_only_those() -> None:
    """The overlap seen only by the primaries is evidence when their clocks ran true; when n3's clock was
    moved from before its lease to after its report, n3's own view proves nothing, and n2's alone shows one
    lease."""
    from nemesis.catalog import VOCABULARY

    def history(clock_on: str | None, reset: bool = True) -> list[dict[str, Any]]:
        h = H()
        if clock_on:
            h.op("nemesis", "info", "clock-skew", value={clock_on: {"rate": 4.0, "offset_s": 0.0}})
        status(h, "n2", {"chunkserver": {**replicas(), "leases": [lease("n2", 2, 0.001, 2.0)]}})
        status(h, "n3", {"chunkserver": {**replicas(), "leases": [lease("n3", 3, 0.001, 2.0)]}})
        if clock_on and reset:
            h.op("nemesis", "info", "clock-reset", value=[clock_on])
        healthy_end(h)
        return h.ops

    assert dfs_state.check(history(None), {}, VOCABULARY)["valid"] is False
    moved = dfs_state.check(history("n3"), {}, VOCABULARY)
    assert moved["valid"] is True and moved["stats"]["clock_moved_views"] == 1, moved["summary"]
    assert "moved clock" in moved["summary"]
    assert dfs_state.check(history("n3", reset=False), {}, VOCABULARY)["valid"] is True  # uncured: still moved
    assert dfs_state.check(history("n4"), {}, VOCABULARY)["valid"] is False  # another node's clock excuses nothing
    assert dfs_state.check(history("n3"), {})["valid"] is False  # no vocabulary: no fault is read
    # The master's (n1's) clock: it decided when the earlier lease was over, so a lease it granted meanwhile is
    # no evidence, whoever reports it (seed 1114: a master 6.8 s ahead granted a new lease inside the old one).
    on_master = dfs_state.check(history("n1"), {}, VOCABULARY)
    assert on_master["valid"] is True and on_master["stats"]["clock_moved_views"] == 2, on_master["summary"]


def test_state_leaves_out_a_lease_timed_on_a_clock_that_was_ahead_until_it_could_have_run_out() -> None:
    """Seed 2022's shape: n3's clock jumped 9 s ahead and was put back; a lease granted meanwhile is still
    timed on the jumped clock after the reset and looks like it runs seconds past its real end. Its views
    are left out for how far the clock was off plus a lease plus the settle; later views count again."""
    from nemesis.catalog import VOCABULARY

    def history(report_at_s: float) -> list[dict[str, Any]]:
        h = H()
        h.op("nemesis", "info", "clock-skew", value={"n3": {"jump_s": 9.0, "offset_s": 9.0, "rate": 1.0}})
        h.op("nemesis", "info", "clock-reset", value=["n3"])
        h.t = itertools.count(int(report_at_s * 1e9), 1_000_000)
        status(h, "n2", {"chunkserver": {**replicas(), "leases": [lease("n2", 4, 0.001, 2.0)]}})
        status(h, "n3", {"chunkserver": {**replicas(), "leases": [lease("n3", 3, -1.6, 4.6)]}})
        healthy_end(h)
        return h.ops

    soon = dfs_state.check(history(10.0), {"options": {"lease_s": 3.0}}, VOCABULARY)
    assert soon["valid"] is True and soon["stats"]["clock_moved_views"] == 1, soon["summary"]
    late = dfs_state.check(history(20.0), {"options": {"lease_s": 3.0}}, VOCABULARY)  # past 9 + 3 + 2 s
    assert late["valid"] is False and late["stats"]["clock_moved_views"] == 0
