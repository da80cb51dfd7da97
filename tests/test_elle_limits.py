"""The Elle checker at its limits (issue 20): a huge strongly connected component searched with no time
left must come out "unknown", never valid; and a read of a key nobody wrote (null) is an ordinary read
of the empty list, not a garbage read, while a null read after a committed append is caught.
"""

from __future__ import annotations

from typing import Any

from test_elle import H, concurrent

from checkers.elle import check_list_append


def write_cycle(n: int) -> list[dict[str, Any]]:
    """n concurrent txns, T_i appending i to keys k_i and k_(i+1); a final read of each key shows
    T_i's append before T_(i-1)'s, so every key orders T_i before T_(i-1): one G0 cycle through all n."""
    txns = [[["append", f"k{i}", i], ["append", f"k{(i + 1) % n}", i]] for i in range(n)]
    h = concurrent(*txns)
    reads = [["r", f"k{i}", [i, (i - 1) % n]] for i in range(n)]
    return h + _final(h, n, reads)


def _final(h: list[dict[str, Any]], process: int, reads: list[list[Any]]) -> list[dict[str, Any]]:
    base = len(h)
    return [
        {"index": base, "time": base, "process": process, "type": "invoke", "f": "txn",
         "value": [[f, k, None] for f, k, _ in reads]},
        {"index": base + 1, "time": base + 1, "process": process, "type": "ok", "f": "txn", "value": reads},
    ]


def test_a_small_write_cycle_is_found() -> None:
    r = check_list_append(write_cycle(5))
    assert r["valid"] is False and "G0" in r["anomalies"], r["summary"]


def test_a_huge_component_with_no_time_left_is_unknown_never_valid() -> None:
    r = check_list_append(write_cycle(5000), time_limit_s=0.0)
    assert r["valid"] in ("unknown", False), r["summary"]
    assert r["valid"] is not True
    if r["valid"] == "unknown":
        assert not r["stats"]["search_complete"]


def test_a_huge_write_cycle_is_found_in_time() -> None:
    r = check_list_append(write_cycle(5000), time_limit_s=120.0)
    assert r["valid"] is False and "G0" in r["anomalies"], r["summary"]


def test_a_null_read_of_a_key_never_written_is_an_empty_read() -> None:
    h = H().txn(0, [["r", "x", None]]).txn(0, [["append", "y", 1]]).txn(1, [["r", "y", [1]], ["r", "z", None]])
    r = check_list_append(h.ops)
    assert r["valid"] is True, r["summary"]
    assert not r["anomalies"]


def test_a_null_read_after_a_committed_append_is_caught() -> None:
    h = H().txn(0, [["append", "x", 1]]).txn(1, [["r", "x", None]])
    r = check_list_append(h.ops)
    assert r["valid"] is False, r["summary"]
