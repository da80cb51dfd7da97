"""The linearizability checker agrees with every verdict Porcupine's test suite asserts on its histories.

Data: ../shared/reference-histories/porcupine (README.md there: formats, model
semantics, the verdict table and the per-key verdicts of the kv files).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from checkers.linearizable import check_operations
from checkers.linearizable.models import CasRegisterModel, KvModel, Operation
from checkers.linearizable.parse import parse_porcupine_etcd, parse_porcupine_kv

DATA = Path(__file__).resolve().parents[2] / "shared" / "reference-histories" / "porcupine"
pytestmark = pytest.mark.skipif(not (DATA / "README.md").exists(), reason=f"reference histories not found at {DATA}")
ROW = re.compile(r"^\| ((?:etcd|kv)/\S+) \| (\d+) \| (\d+) \| (\d+) \| (yes|no) \|")


def _table() -> dict[str, tuple[int, bool]]:
    if not (DATA / "README.md").exists():
        return {}
    out = {}
    for line in (DATA / "README.md").read_text().splitlines():
        m = ROW.match(line)
        if m:
            out[m[1]] = (int(m[2]), m[5] == "yes")
    return out


TABLE = _table()

# README "Per-key verdicts": True linearizable, False not; keys left out get no assertion.
KV_KEYS: dict[str, dict[str, bool]] = {
    "c01-ok": {k: True for k in "0123456789"},
    "c10-ok": {k: True for k in "0123456789"},
    "c50-ok": {k: True for k in "0123456789"},
    "c01-bad": {**{k: True for k in "0123456"}, "7": False},
    "c10-bad": {k: k in "48" for k in "0123456789"},
    "c50-bad": {k: False for k in "12345678"},
}


def _load(name: str) -> tuple[list[Operation], CasRegisterModel | KvModel]:
    text = (DATA / name).read_text()
    if name.startswith("etcd/"):
        m: CasRegisterModel | KvModel = CasRegisterModel()
        return parse_porcupine_etcd(text, m, name), m
    m = KvModel(initial="")
    return parse_porcupine_kv(text, m, name), m


def test_every_file_is_in_the_table_and_every_row_has_a_file() -> None:
    files = {f"{p.parent.name}/{p.name}" for p in DATA.glob("*/*") if p.suffix in (".log", ".txt")}
    assert len(TABLE) == 108
    assert files == set(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_verdict_matches_porcupine(name: str) -> None:
    ops, model = _load(name)
    n_ops, expected = TABLE[name]
    result = check_operations(ops, model, time_limit_s=60.0)
    assert result["valid"] is expected, result["summary"]
    # every invocation was read: the table's op count includes dropped timed-out reads
    assert len(ops) <= n_ops


@pytest.mark.parametrize("name", sorted(KV_KEYS))
def test_kv_per_key_verdicts(name: str) -> None:
    ops, model = _load(f"kv/{name}.txt")
    parts = model.partition(ops)
    assert set(parts) >= set(KV_KEYS[name])
    for key, expected in KV_KEYS[name].items():
        r = check_operations(parts[key], model, time_limit_s=60.0)
        assert r["keys"][key]["valid"] is expected, (name, key, r["summary"])


def test_c50_bad_stops_at_the_first_failing_key() -> None:
    ops, model = _load("kv/c50-bad.txt")
    r = check_operations(ops, model, time_limit_s=60.0)
    assert r["valid"] is False
    assert all(r["keys"][k]["valid"] is False for k in r["failures"])
    assert all(r["keys"][k]["valid"] in (False, "unknown") for k in ("0", "9"))


def test_invalid_etcd_history_comes_with_evidence() -> None:
    ops, model = _load("etcd/etcd_000.log")
    r = check_operations(ops, model)
    key = r["keys"]["null"]
    assert r["valid"] is False
    assert 0 < key["longest_prefix"] < len(ops)
    assert key["stuck"] and any(not s["legal_here"] for s in key["stuck"])
    assert "longest linearizable prefix" in r["summary"]


JIT_FILES = sorted(n for n in TABLE if n.startswith("etcd/") or n.startswith(("kv/c01", "kv/c10")))


def test_frontier_engine_alone_agrees_with_porcupine() -> None:
    """The JIT engine (which the portfolio runs beside the DFS on hard parts) on its own, on every file it
    can do quickly (not the 50-client kv files: too many ops pending at once for it)."""
    from checkers.linearizable.jit import JitSearch

    for name in JIT_FILES:
        ops, model = _load(name)
        verdicts = [JitSearch(model, part).run(2_000_000) for part in model.partition(ops).values()]
        got = False if False in verdicts else (True if all(v is True for v in verdicts) else "unknown")
        assert got is TABLE[name][1], name


def test_every_file_through_the_frontier_engine_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no DFS warm-up the portfolio alternates from the start; the verdicts stay the same."""
    import checkers.linearizable.portfolio as portfolio

    monkeypatch.setattr(portfolio, "WARMUP_STEPS", 0)
    for name in JIT_FILES:
        ops, model = _load(name)
        assert check_operations(ops, model)["valid"] is TABLE[name][1], name
