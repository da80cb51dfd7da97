"""The history format: canonical lines, torn tails tolerated, everything else a clear error."""

from __future__ import annotations

import json

import pytest

from base.history import HistoryError, HistoryWriter, pairs, parse_lines, read_history


def test_writer_assigns_indices_and_orders_keys(tmp_path):
    w = HistoryWriter(tmp_path / "h.jsonl")
    w.append({"type": "invoke", "f": "read", "process": 0, "time": 5, "value": None})
    w.append({"value": 3, "f": "read", "process": 0, "type": "ok", "time": 9})
    w.close()
    lines = (tmp_path / "h.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1]
    assert list(json.loads(lines[1])) == ["index", "time", "process", "type", "f", "value"]


def test_writer_rejects_unknown_type(tmp_path):
    w = HistoryWriter(tmp_path / "h.jsonl")
    with pytest.raises(ValueError, match="bad op type"):
        w.append({"type": "done", "process": 0})
    w.close()


def test_torn_last_line_is_skipped_and_reported():
    lines = ['{"index": 0, "process": 0, "type": "invoke", "f": "read"}\n', '{"index": 1, "proc']
    read = parse_lines(lines)
    assert read.torn_tail and len(read.ops) == 1


def test_garbage_in_the_middle_is_an_error_naming_the_line():
    lines = ['{"index": 0, "process": 0, "type": "invoke"}\n', "not json\n", '{"process": 0, "type": "ok"}\n']
    with pytest.raises(HistoryError, match=":2:"):
        parse_lines(lines)


@pytest.mark.parametrize(
    "line, message",
    [('[1, 2]\n', "expected a JSON object"), ('{"process": 1, "type": "maybe"}\n', "'type' must be"),
     ('{"type": "ok"}\n', "missing 'process'")],
)
def test_bad_ops_are_rejected(line, message):
    with pytest.raises(HistoryError, match=message):
        parse_lines([line])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(HistoryError, match="no such history file"):
        read_history(tmp_path / "nope.jsonl")


def test_pairs_match_completions_to_the_latest_invoke_and_leave_open_ones_open():
    h = [
        {"index": 0, "process": 0, "type": "invoke", "f": "w"},
        {"index": 1, "process": 1, "type": "invoke", "f": "r"},
        {"index": 2, "process": "nemesis", "type": "info", "f": "kill"},
        {"index": 3, "process": 0, "type": "ok", "f": "w"},
    ]
    ps = pairs(h)
    assert [p.invoke["index"] for p in ps] == [0, 1]
    assert ps[0].complete["index"] == 3 and ps[1].complete is None and ps[1].type == "info"


def test_pairs_reject_double_invoke_and_orphan_completion():
    with pytest.raises(HistoryError, match="while an op was open"):
        pairs([{"process": 0, "type": "invoke"}, {"process": 0, "type": "invoke"}])
    with pytest.raises(HistoryError, match="no open invoke"):
        pairs([{"process": 0, "type": "ok"}])
