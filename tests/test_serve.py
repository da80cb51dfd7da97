"""`harness serve`'s JSON and files: the run index (filters, search, sort, pages, 5,000 runs), run pages,
comparison of two histories, sweeps, and the rules (read-only, results/ only, one-line errors).

Runs here are run directories written the way the harness writes them (test.json, results.json,
history.jsonl, ...), made small on purpose; the browser tests (tests/test_browser.py) use real runs.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.serve import make_server
from harness.serve_compare import first_divergence
from harness.serve_index import Query, RunIndex

SYSTEMS = ("raft", "kv", "heartbeat", "echo")
NEMESES = (("partition",), ("kill",), ("partition", "kill"), ())


def write_run(root: Path, system: str, name: str, *, seed: int, valid: Any = True, nemesis: tuple[str, ...] = ("kill",),
              bugs: tuple[str, ...] = (), backend: str = "sim", interrupted: bool = False, checked: bool = True,
              history: list[dict[str, Any]] | None = None, sweep: str = "") -> Path:
    run = (root / system / "sweeps" / sweep / "runs" / name) if sweep else root / system / name
    run.mkdir(parents=True)
    test = {"system": system, "workload": "register", "nemesis": list(nemesis), "backend": backend, "seed": seed,
            "bugs": list(bugs), "nodes": ["n1", "n2", "n3"], "node_count": 3, "time_limit_s": 10.0,
            "command_line": f"harness run {system} --seed {seed}", "run_dir": str(run)}
    (run / "test.json").write_text(json.dumps(test))
    if checked:
        checkers = {"linearizable": {"valid": valid, "summary": f"seed {seed} said {valid}"}}
        results: dict[str, Any] = {"valid": valid, "checkers": checkers}
        if interrupted:
            results.update(interrupted={"signal": "SIGINT"}, partial="the history is partial: the run was interrupted")
        (run / "results.json").write_text(json.dumps(results))
        (run / "report.html").write_text("<!doctype html><p>report</p>")
    if interrupted:
        (run / "interrupted.json").write_text('{"signal": "SIGINT"}')
    ops = history if history is not None else [
        {"index": 0, "time": 1000, "process": 0, "type": "invoke", "f": "read", "key": "r1", "value": None},
        {"index": 1, "time": 2000, "process": 0, "type": "ok", "f": "read", "key": "r1", "value": seed},
    ]
    (run / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in ops))
    return run


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_run(root, "raft", "20260101T000001-partition", seed=1, valid=False, nemesis=("partition",),
              bugs=("stale-read",))
    write_run(root, "raft", "20260101T000002-partition", seed=1, valid=True, nemesis=("partition",))
    write_run(root, "kv", "20260101T000003-kill", seed=7, valid="unknown", backend="netns", interrupted=True)
    write_run(root, "echo", "20260101T000004-none", seed=9, nemesis=(), checked=False)
    write_run(root, "raft", "3", seed=3, valid=False, sweep="20260102T000000", bugs=("commit-old-term",))
    sweep = root / "raft" / "sweeps" / "20260102T000000"
    (sweep / "sweep.json").write_text(json.dumps({"seeds": 10, "done": 10, "counts": {"valid": 9, "invalid": 1}}))
    (sweep / "index.html").write_text("<!doctype html><p>sweep page</p>")
    (root / "raft" / "not-a-run").mkdir()
    (root / "raft" / "broken").mkdir()
    (root / "raft" / "broken" / "test.json").write_text("{not json")
    return root


def paths(answer: dict[str, Any]) -> list[str]:
    return [r["path"] for r in answer["runs"]]


def test_every_run_is_listed_with_its_verdict_newest_first(results: Path) -> None:
    answer = RunIndex(results).query(Query())
    assert answer["total"] == 5  # the directory without test.json and the unreadable one are not runs
    rows = {r["path"]: r for r in answer["runs"]}
    assert rows["raft/20260101T000001-partition"]["verdict"] == "invalid"
    assert rows["raft/20260101T000002-partition"]["verdict"] == "valid"
    assert rows["kv/20260101T000003-kill"]["verdict"] == "unknown"
    assert rows["kv/20260101T000003-kill"]["interrupted"] is True
    assert rows["echo/20260101T000004-none"]["verdict"] == "unchecked"
    assert rows["echo/20260101T000004-none"]["checked"] is False
    swept = rows["raft/sweeps/20260102T000000/runs/3"]
    assert swept["sweep"] == "raft/sweeps/20260102T000000" and swept["name"] == "20260102T000000/3"
    names = [r["name"] for r in answer["runs"]]
    assert names == sorted(names, reverse=True)


@pytest.mark.parametrize(("params", "expected"), [
    ({"system": "raft"}, {"raft/20260101T000001-partition", "raft/20260101T000002-partition",
                          "raft/sweeps/20260102T000000/runs/3"}),
    ({"verdict": "invalid"}, {"raft/20260101T000001-partition", "raft/sweeps/20260102T000000/runs/3"}),
    ({"bug": "stale-read"}, {"raft/20260101T000001-partition"}),
    ({"bug": "none", "system": "raft"}, {"raft/20260101T000002-partition"}),
    ({"nemesis": "kill"}, {"kv/20260101T000003-kill", "raft/sweeps/20260102T000000/runs/3"}),
    ({"nemesis": "none"}, {"echo/20260101T000004-none"}),
    ({"backend": "netns"}, {"kv/20260101T000003-kill"}),
    ({"interrupted": "yes"}, {"kv/20260101T000003-kill"}),
    ({"verdict": "unchecked"}, {"echo/20260101T000004-none"}),
    ({"sweep": "any"}, {"raft/sweeps/20260102T000000/runs/3"}),
    ({"workload": "register", "system": "echo"}, {"echo/20260101T000004-none"}),
    ({"q": "SEED 7 SAID"}, {"kv/20260101T000003-kill"}),  # a failing checker's summary, any case
    ({"q": "commit-old"}, {"raft/sweeps/20260102T000000/runs/3"}),
    ({"system": "raft", "verdict": "valid", "bug": "stale-read"}, set()),
])
def test_filters_and_search(results: Path, params: dict[str, str], expected: set[str]) -> None:
    answer = RunIndex(results).query(Query.from_params(params))
    assert set(paths(answer)) == expected
    assert answer["matched"] == len(expected) and answer["total"] == 5
    # facets count over every run, so a filter can be widened again
    assert dict(map(tuple, answer["facets"]["system"])) == {"raft": 3, "kv": 1, "echo": 1}


def test_sort_by_seed_both_ways(results: Path) -> None:
    index = RunIndex(results)
    up = [r["seed"] for r in index.query(Query.from_params({"sort": "seed", "order": "asc"}))["runs"]]
    assert up == [1, 1, 3, 7, 9]
    down = [r["seed"] for r in index.query(Query.from_params({"sort": "seed"}))["runs"]]
    assert down == [9, 7, 3, 1, 1]
    verdicts = [r["verdict"] for r in index.query(Query.from_params({"sort": "verdict", "order": "asc"}))["runs"]]
    assert verdicts == sorted(verdicts)


def test_five_thousand_runs_page_filter_and_stay_cached(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for i in range(5000):
        system = SYSTEMS[i % 4]
        write_run(root, system, f"2026{i:06d}T000000-x", seed=i, valid=(i % 7 != 0), nemesis=NEMESES[i % 4],
                  checked=i % 50 != 0, history=[])
    index = RunIndex(root, rescan_s=3600)
    first = index.query(Query.from_params({"per_page": "100"}))
    assert first["total"] == 5000 and first["pages"] == 50 and len(first["runs"]) == 100
    assert first["runs"][0]["seed"] == 4999
    seen: list[int] = []
    for page in range(1, 51):
        seen += [r["seed"] for r in index.query(Query.from_params({"per_page": "100", "page": str(page)}))["runs"]]
    assert sorted(seen) == list(range(5000))  # every run once, across the pages
    last = index.query(Query.from_params({"per_page": "100", "page": "999"}))
    assert last["page"] == 50  # a page past the end is the last page
    invalid_raft = index.query(Query.from_params({"system": "raft", "verdict": "invalid", "per_page": "500"}))
    assert {r["seed"] for r in invalid_raft["runs"]} == {i for i in range(0, 5000, 4) if i % 7 == 0 and i % 50}
    # a walk parses nothing again: rows come from the cache while their files are unchanged
    cached = {row.path: row for row in index.rows()}
    index.refresh()
    assert all(cached[row.path] is row for row in index.rows())
    # ...and a run checked since is read again
    run = root / "raft" / "2026000000T000000-x"
    (run / "results.json").write_text(json.dumps({"valid": True, "checkers": {}}))
    (run / "report.html").write_text("report")
    index.refresh()
    row = index.find("raft/2026000000T000000-x")
    assert row is not None and row.verdict == "valid" and row.checked


# -- the comparison of two histories -------------------------------------------------------------------------


def op(index: int, time: int, process: int, typ: str, f: str = "read", value: Any = None) -> dict[str, Any]:
    return {"index": index, "time": time, "process": process, "type": typ, "f": f, "key": "r1", "value": value}


def test_the_first_divergence_ignores_times_but_reports_them() -> None:
    a = [op(0, 10, 0, "invoke"), op(1, 20, 0, "ok", value=1), op(2, 30, 1, "invoke", "write", 2),
         op(3, 40, 1, "ok", "write", 2), op(4, 50, 0, "invoke"), op(5, 60, 0, "ok", value=2)]
    b = [*a[:1], {**a[1], "time": 25}, *a[2:5], op(5, 60, 0, "ok", value=1)]
    d = first_divergence(a, b)
    assert d["index"] == 5 and d["fields"] == ["value"] and d["time_index"] == 1
    assert d["a"]["value"] == 2 and d["b"]["value"] == 1
    assert d["a_op"] == 4 and d["b_op"] == 4  # the invocation of the op whose completion differs
    assert d["context_from"] == 1 and d["a_context"][-1] == a[5]
    same = first_divergence(a, [dict(x) for x in a])
    assert same == {"index": None, "time_index": None, "a_ops": 6, "b_ops": 6, "identical": True}
    prefix = first_divergence(a, a[:4])
    assert prefix["index"] == 4 and prefix["b"] is None and prefix["a"] == a[4]


# -- over HTTP -----------------------------------------------------------------------------------------------


@pytest.fixture
def server(results: Path) -> Iterator[str]:
    srv = make_server(results, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


def get_json(url: str) -> Any:
    status, _, body = get(url)
    assert status == 200, body
    return json.loads(body)


def test_pages_and_json_over_http(server: str, results: Path) -> None:
    for page in ("/", "/run", "/compare", "/diagram", "/web/app.css", "/web/diagram.js"):
        status, headers, body = get(server + page)
        assert status == 200 and body, page
    listing = get_json(server + "/api/runs?system=raft&verdict=invalid&sort=seed&order=asc")
    assert paths(listing) == ["raft/20260101T000001-partition", "raft/sweeps/20260102T000000/runs/3"]
    run = get_json(server + "/api/run?path=kv/20260101T000003-kill")
    assert run["valid"] == "unknown" and run["partial"].startswith("the history is partial")
    assert {f["name"] for f in run["files"]} >= {"test.json", "results.json", "history.jsonl", "interrupted.json"}
    assert run["checkers"]["linearizable"]["summary"] == "seed 7 said unknown"
    status, headers, body = get(server + "/files/kv/20260101T000003-kill/history.jsonl")
    assert status == 200 and headers["Content-Type"].startswith("text/plain") and b'"f": "read"' in body
    sweeps = get_json(server + "/api/sweeps")["sweeps"]
    assert [s["path"] for s in sweeps] == ["raft/sweeps/20260102T000000"] and sweeps[0]["page"] is True
    status, _, body = get(server + "/files/raft/sweeps/20260102T000000/")
    assert status == 200 and b"sweep page" in body
    both = get_json(server + "/api/compare?a=raft/20260101T000001-partition&b=raft/20260101T000002-partition")
    assert [d["field"] for d in both["test_differences"]] == ["bugs"]  # run_dir is not a difference
    assert both["divergence"]["identical"] is True and both["a"]["valid"] is False and both["b"]["valid"] is True
    plain = get(server + "/plain")[2].decode()
    assert "interrupted: partial history" in plain and "harness check" in plain
    assert '<a href="/files/raft/sweeps/20260102T000000/index.html">raft/sweeps/20260102T000000</a>' in plain
    assert "invalid 1" in plain  # the sweep's counts, without scripts too


def test_links_made_for_results_served_at_the_root_still_open(server: str) -> None:
    """The old serve served results/ at /, and a sweep's own listing links `<sweep>/index.html` from the root."""
    status, headers, body = get(server + "/raft/20260101T000001-partition/report.html")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<p>report</p>" in body
    status, _, body = get(server + "/raft/sweeps/20260102T000000/index.html")
    assert status == 200 and b"sweep page" in body
    status, _, body = get(server + "/raft/sweeps/20260102T000000/")
    assert status == 200 and b"sweep page" in body
    status, headers, _ = get(server + "/raft/20260101T000001-partition/diagram.html?op=3")
    assert status == 302 and headers["Location"] == "/diagram?run=raft/20260101T000001-partition&op=3"
    for missing in ("/raft", "/raft/nope/report.html", "/raft/not-a-run/diagram.html", "/%2e%2e/%2e%2e/etc/passwd"):
        status, _, body = get(server + missing)
        assert status == 404 and json.loads(body)["error"].startswith("nothing at "), missing


def test_a_reports_diagram_link_opens_the_diagram_of_that_run(server: str) -> None:
    status, headers, _ = get(server + "/files/raft/20260101T000001-partition/diagram.html?op=706")
    assert status == 302
    assert headers["Location"] == "/diagram?run=raft/20260101T000001-partition&op=706"
    answer = get(server + "/api/diagram?run=raft/20260101T000001-partition&op=1")
    assert answer[0] == 404 and "no message source" in json.loads(answer[2])["error"]


@pytest.mark.parametrize(("url", "status", "error"), [
    ("/files/../../../etc/passwd", 404, ""),
    ("/files/%2e%2e/%2e%2e/etc/passwd", 404, "not under the results directory"),
    ("/web/../serve.py", 404, ""),
    ("/api/run?path=raft/nope", 404, "no run at raft/nope"),
    ("/api/run", 400, "which run?"),
    ("/api/diagram?run=raft/20260101T000002-partition&from=abc", 400, "bad number"),
    ("/api/compare?a=raft/20260101T000002-partition&b=../..", 404, "not under the results directory"),
    ("/api/nothing", 404, "no API"),
    ("/elsewhere", 404, "nothing at /elsewhere"),
])
def test_bad_requests_are_one_line_and_never_leave_results(server: str, url: str, status: int, error: str) -> None:
    code, _headers, body = get(server + url)
    assert code == status
    assert b"root:" not in body and b"def " not in body
    if error:
        message = json.loads(body)["error"]
        assert error in message and "\n" not in message and "Traceback" not in message


def test_nothing_is_written(results: Path, server: str) -> None:
    before = sorted((p, p.stat().st_mtime_ns) for p in results.rglob("*"))
    for url in ("/", "/api/runs", "/api/run?path=raft/20260101T000001-partition", "/plain",
                "/api/compare?a=raft/20260101T000001-partition&b=kv/20260101T000003-kill"):
        get(server + url)
    assert sorted((p, p.stat().st_mtime_ns) for p in results.rglob("*")) == before


def test_serve_binds_loopback_by_default() -> None:
    import inspect

    from harness import serve
    from harness.cli import serve_cmd

    assert inspect.signature(serve.serve).parameters["host"].default == "127.0.0.1"
    host = next(p for p in serve_cmd.params if p.name == "host")
    assert host.default == "127.0.0.1"
