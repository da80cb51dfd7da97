"""The mutual-exclusion checker (checkers/lock.py): what counts as holding, and that it rejects two holders."""

from __future__ import annotations

from typing import Any

from checkers import lock

S = 1_000_000_000


class History:
    """Builds a lock history op by op, with times in seconds."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def add(self, t: float, process: Any, type_: str, f: str, value: Any = None, **extra: Any) -> History:
        self.ops.append({"index": len(self.ops), "time": round(t * S), "process": process, "type": type_, "f": f,
                         "value": value, "node": "n1", **extra})
        return self

    def acquire(self, t0: float, t1: float, p: int, outcome: str = "ok", lease: str = "a") -> History:
        self.add(t0, p, "invoke", "acquire")
        value = {"lease": lease, "key": f"lock/{lease}", "rev": len(self.ops), "ttl": 2} if outcome == "ok" else None
        return self.add(t1, p, outcome, "acquire", value)

    def hold(self, t0: float, t1: float, p: int, lost: bool = False) -> History:
        self.add(t0, p, "invoke", "hold", {"hold_s": t1 - t0})
        return self.add(t1, p, "ok", "hold", {"hold_s": t1 - t0, "held_s": t1 - t0, "lost": lost})

    def release(self, t0: float, t1: float, p: int, outcome: str = "ok", lapsed: bool = False) -> History:
        self.add(t0, p, "invoke", "release")
        return self.add(t1, p, outcome, "release", {"lease_lapsed": lapsed})

    def nemesis(self, t: float, f: str, value: Any) -> History:
        return self.add(t, "nemesis", "info", f, value)


def test_clients_taking_turns_are_valid() -> None:
    h = History()
    h.acquire(0.0, 0.1, 0).hold(0.1, 0.5, 0).release(0.5, 0.6, 0)
    h.acquire(0.2, 0.55, 1, lease="b").hold(0.55, 0.9, 1).release(0.9, 1.0, 1)  # acquired after 0 began to release
    result = lock.check(h.ops)
    assert result["valid"] is True, result
    assert result["holds"] == 2 and result["processes"] == 2


def test_two_holders_at_once_are_rejected_with_the_evidence() -> None:
    h = History()
    h.acquire(0.0, 0.1, 0).hold(0.1, 3.0, 0)
    h.nemesis(1.0, "pause", ["n2"])
    h.acquire(0.5, 2.0, 1, lease="b").hold(2.0, 2.5, 1).release(2.5, 2.6, 1)
    h.release(3.0, 3.1, 0, lapsed=True)
    result = lock.check(h.ops)
    assert result["valid"] is False
    assert result["violation_count"] == 1
    v = result["violations"][0]
    assert v["overlap_s"] == [2.0, 2.5]  # from 1's acquisition until 1 began to release (0 held on)
    assert [x["process"] for x in v["holders"]] == [0, 1]
    assert v["earlier_lease_lapsed"] is True
    assert v["nemesis"] == [{"time_s": 1.0, "f": "pause", "value": ["n2"]}]
    assert "two clients both believed they held the lock" in result["summary"]


def test_a_hold_that_saw_its_session_lost_ends_the_belief_there() -> None:
    h = History()
    h.acquire(0.0, 0.1, 0).hold(0.1, 1.0, 0, lost=True)
    h.acquire(0.5, 1.2, 1, lease="b")  # after 0 gave up, before 0 released
    h.release(1.5, 1.6, 0)
    result = lock.check(h.ops)
    assert result["valid"] is True, result
    h2 = History()
    h2.acquire(0.0, 0.1, 0).hold(0.1, 1.0, 0, lost=False)  # the same, but 0 never noticed
    h2.acquire(0.5, 1.2, 1, lease="b")
    h2.release(1.5, 1.6, 0)
    assert lock.check(h2.ops)["valid"] is False


def test_a_holder_that_never_let_go_holds_to_the_end() -> None:
    h = History()
    h.acquire(0.0, 0.1, 0)
    h.acquire(0.2, 5.0, 1, lease="b")
    result = lock.check(h.ops)
    assert result["valid"] is False
    assert result["violations"][0]["holders"][0]["ended_by"] == "end of history"


def test_failed_and_unknown_acquisitions_give_no_belief() -> None:
    h = History()
    h.acquire(0.0, 0.1, 0).hold(0.1, 2.0, 0)
    h.acquire(0.2, 1.0, 1, outcome="fail")
    h.acquire(0.3, 1.5, 2, outcome="info")
    h.release(2.0, 2.1, 0)
    result = lock.check(h.ops)
    assert result["valid"] is True, result
    assert result["holds"] == 1


def test_one_process_acquiring_again_is_not_two_holders() -> None:
    h = History()
    h.acquire(0.0, 0.1, 0).release(0.2, 0.3, 0, outcome="info")
    h.acquire(0.4, 0.5, 0, lease="b").release(0.6, 0.7, 0)
    assert lock.check(h.ops)["valid"] is True


def test_nothing_acquired_is_unknown_not_valid() -> None:
    h = History()
    h.acquire(0.0, 4.0, 0, outcome="fail")
    result = lock.check(h.ops)
    assert result["valid"] == "unknown"
    assert "nothing was tested" in result["summary"]


def test_the_picture_marks_the_overlap() -> None:
    h = History()
    h.acquire(0.0, 0.1, 0).hold(0.1, 3.0, 0)
    h.acquire(0.5, 2.0, 1, lease="b").release(2.5, 2.6, 1)
    svg = lock.render_html(lock.check(h.ops))
    assert svg.count("<rect") == 3  # two holds and one overlap
    assert "two holders 2.000-2.500 s" in svg
