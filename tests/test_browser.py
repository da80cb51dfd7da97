"""The results browser in a real browser: Debian's chromium, driven through chromium-driver by Selenium.

Real runs (the sim backend: Raft with the stale-read bug caught by the linearizability checker, the same
seed without the bug, and an echo run) are served by `harness serve`'s server; the tests load the index,
filter it, open a run, open the message-flow diagram from an anomaly's offending op in the report, zoom
it, and compare two runs. Each view is saved as a screenshot under the test's temporary folder (and, when
PICLUSTER_SCREENSHOTS names a folder, copied there: that is how docs/screenshots/ is made). Without
chromium, chromium-driver or selenium the tests skip, saying which is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support import needs_root

from base.spec import TestSpec

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 60.0

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.sim]


def missing() -> str:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: install Debian's {package} (apt-get install chromium chromium-driver)"
    return ""


if missing():
    pytest.skip(missing(), allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def sim_run(root: Path, **changes: Any) -> Path:
    from harness.session import check, execute, prepare

    base = {"system": "raft", "workload": "register", "nemesis": ("leader-isolate",), "backend": "sim",
            "node_count": 5, "concurrency": 5, "time_limit_s": 30.0, "nemesis_interval_s": 10.0, "quiet_s": 3.0,
            "seed": 2}
    spec = prepare(TestSpec(**{**base, **changes}), root)
    execute(spec)
    check(spec.path)
    return spec.path


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("results")
    # seed 2 is one of tests/test_raft_harness_bugs.py's stale-read seeds that the checker catches
    buggy = sim_run(root, bugs=("stale-read",))
    clean = sim_run(root)
    echo = sim_run(root, system="echo", workload="echo", nemesis=("kill",), node_count=3, concurrency=3,
                   time_limit_s=3.0, nemesis_interval_s=1.0, quiet_s=0.5)
    return {"root": root, "buggy": buggy.relative_to(root).as_posix(), "clean": clean.relative_to(root).as_posix(),
            "echo": echo.relative_to(root).as_posix()}


@pytest.fixture(scope="module")
def site(results: dict[str, Any]) -> Iterator[str]:
    from harness.serve import make_server

    server = make_server(results["root"], "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-extensions", "--disable-sync", "--no-first-run", "--disable-gpu",
                "--disable-component-update", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    folder = tmp_path_factory.mktemp("screenshots")
    copy_to = os.environ.get("PICLUSTER_SCREENSHOTS")

    def save(driver: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), name
        assert path.stat().st_size > 10_000  # a page, not a blank
        if copy_to:
            Path(copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copy_to) / path.name)
        return path

    return save


def wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition, message=f"waited for {what}")


def loaded(driver: Any, since: str = "") -> str:
    """Wait until the page's script has drawn (it stamps body[data-loaded]) after `since`; the new stamp."""
    return wait(driver, lambda d: (d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") or "") not in
                ("", since) and d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"), "the page to load")


def arrived(driver: Any, path: str, params: dict[str, str]) -> str:
    """Wait until a navigation has reached `path` with `params` and that page has drawn; its stamp. (A click
    that navigates may return before the new page is there; the old page's stamp must not count.)"""
    wait(driver, lambda d: query(d) == (path, params), f"the browser to reach {path} {params}")
    return loaded(driver)


def rows(driver: Any) -> list[str]:
    return [r.get_attribute("data-path") for r in driver.find_elements(By.CSS_SELECTOR, "tr.run")]


def query(driver: Any) -> tuple[str, dict[str, str]]:
    """The page's path and its query parameters (decoded)."""
    url = urlsplit(driver.current_url)
    return url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}


def script_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_the_index_lists_every_run_and_filters_them(browser: Any, site: str, results: dict[str, Any],
                                                    shots: Any) -> None:
    browser.get(site + "/")
    stamp = loaded(browser)
    assert set(rows(browser)) == {results["buggy"], results["clean"], results["echo"]}
    verdicts = {r.get_attribute("data-path"): r.find_element(By.CSS_SELECTOR, "td.verdict").text
                for r in browser.find_elements(By.CSS_SELECTOR, "tr.run")}
    assert verdicts[results["buggy"]] == "INVALID"
    shots(browser, "index")
    Select(browser.find_element(By.ID, "f-verdict")).select_by_value("invalid")
    stamp = loaded(browser, stamp)
    assert rows(browser) == [results["buggy"]]
    assert "verdict=invalid" in browser.current_url  # the filter is in the address, to share it
    Select(browser.find_element(By.ID, "f-verdict")).select_by_value("")
    stamp = loaded(browser, stamp)
    Select(browser.find_element(By.ID, "f-system")).select_by_value("echo")
    stamp = loaded(browser, stamp)
    assert rows(browser) == [results["echo"]]
    browser.find_element(By.ID, "clear").click()
    stamp = loaded(browser, stamp)
    browser.find_element(By.ID, "q").send_keys("stale-read")  # drawn as typed, after a pause in the typing
    wait(browser, lambda d: parse_qs(d.find_element(By.TAG_NAME, "body").get_attribute("data-shows")).get("q")
         == ["stale-read"], "the table to show the whole search")
    assert rows(browser) == [results["buggy"]]
    shots(browser, "index-filtered")
    assert script_errors(browser) == []


def test_a_run_page_holds_the_report_and_the_raw_files(browser: Any, site: str, results: dict[str, Any],
                                                       shots: Any) -> None:
    browser.get(site + "/")
    loaded(browser)
    browser.find_element(By.CSS_SELECTOR, f'tr.run[data-path="{results["buggy"]}"] a.run-link').click()
    arrived(browser, "/run", {"path": results["buggy"]})
    assert "raft / register under leader-isolate" in browser.find_element(By.ID, "title").text
    checkers = {r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[1].text
                for r in browser.find_elements(By.CSS_SELECTOR, "#checkers tbody tr")}
    assert checkers["linearizable"] == "INVALID"
    browser.switch_to.frame(browser.find_element(By.ID, "report"))
    wait(browser, lambda d: "What went wrong" in d.find_element(By.TAG_NAME, "body").text, "the report")
    browser.switch_to.default_content()
    shots(browser, "run")
    browser.find_element(By.ID, "tab-files").click()
    files = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#files a")]
    assert {"test.json", "history.jsonl", "results.json", "journal.jsonl", "report.html"} <= set(files)
    browser.find_element(By.LINK_TEXT, "history.jsonl").click()
    wait(browser, lambda d: '"type": "invoke"' in d.find_element(By.TAG_NAME, "body").text, "the raw history")


def test_clicking_an_offending_op_opens_the_diagram_around_it(browser: Any, site: str, results: dict[str, Any],
                                                             shots: Any) -> None:
    browser.get(f"{site}/run?path={results['buggy']}")
    loaded(browser)
    browser.switch_to.frame(browser.find_element(By.ID, "report"))
    link = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "a.flow"), "an op's diagram link")[0]
    sentence = link.find_element(By.XPATH, "..").text
    op = int(link.get_attribute("href").rsplit("op=", 1)[1])
    assert sentence.startswith(f"op {op} ")
    link.click()  # target=_top: the whole page goes to the diagram
    browser.switch_to.default_content()
    arrived(browser, "/diagram", {"run": results["buggy"], "op": str(op)})
    assert browser.find_element(By.ID, "title").text.startswith(f"Message flow around op {op}:")
    svg = browser.find_element(By.ID, "flow-svg")
    assert svg.find_element(By.ID, "focus")  # the op's time span, marked across the diagram
    assert svg.find_element(By.CSS_SELECTOR, f'rect.op[data-op="{op}"]')
    lanes = [t.text for t in svg.find_elements(By.CSS_SELECTOR, "text.lane")]
    assert lanes == ["client", "n1", "n2", "n3", "n4", "n5"]
    assert len(svg.find_elements(By.CSS_SELECTOR, "g.msg")) > 0
    assert svg.find_elements(By.CSS_SELECTOR, "rect.fault")  # the partition that isolated the stale leader
    shots(browser, "diagram")
    # zoom out: the window doubles around its middle (cut where the run begins)
    before = float(browser.find_element(By.ID, "from").get_attribute("value")), float(
        browser.find_element(By.ID, "to").get_attribute("value"))
    stamp = browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
    browser.find_element(By.ID, "zoom-out").click()
    loaded(browser, stamp)
    after = float(browser.find_element(By.ID, "from").get_attribute("value")), float(
        browser.find_element(By.ID, "to").get_attribute("value"))
    assert after[1] - after[0] > 1.9 * (before[1] - before[0]) or after[0] <= 0
    assert "from" in query(browser)[1]
    assert script_errors(browser) == []


def test_two_runs_side_by_side_with_the_first_divergence(browser: Any, site: str, results: dict[str, Any],
                                                         shots: Any) -> None:
    browser.get(site + "/?system=raft")
    loaded(browser)
    for path in (results["buggy"], results["clean"]):
        browser.find_element(By.CSS_SELECTOR, f'tr.run[data-path="{path}"] input.pick').click()
    browser.find_element(By.ID, "compare").click()
    arrived(browser, "/compare", {"a": results["buggy"], "b": results["clean"]})
    line = browser.find_element(By.ID, "verdict-line").text
    assert line.startswith("First divergence at line ")
    diffs = [r.find_elements(By.TAG_NAME, "td")[0].text
             for r in browser.find_elements(By.CSS_SELECTOR, "#diffs tbody tr")]
    assert "bugs" in diffs
    assert browser.find_elements(By.CSS_SELECTOR, "pre.ops .hit")  # the op where they part, in each history
    shots(browser, "compare")
    assert script_errors(browser) == []


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """Serve another results directory for one test; its address."""
    from harness.serve import make_server

    servers: list[Any] = []

    def start(root: Path) -> str:
        server = make_server(root, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_sweeps_are_listed_with_their_runs_and_pages(browser: Any, results: dict[str, Any], tmp_path: Path,
                                                    served: Callable[[Path], str], shots: Any) -> None:
    """A sweep as `harness sweep` leaves it (results/<system>/sweeps/<stamp>/: sweep.json, its page, the runs it
    kept under runs/<seed>/), beside a plain run: the index lists the sweep with its counts, lists its runs on
    request, and opens its page."""
    root = tmp_path / "results"
    plain = root / results["clean"]
    shutil.copytree(results["root"] / results["clean"], plain)
    sweep = root / "raft" / "sweeps" / "20261201T120000"
    kept = sweep / "runs" / "2"
    shutil.copytree(results["root"] / results["buggy"], kept)
    (sweep / "sweep.json").write_text(json.dumps({"system": "raft", "seeds": 40, "done": 40,
                                                  "counts": {"valid": 39, "invalid": 1}}))
    (sweep / "index.html").write_text("<!doctype html><title>sweep</title><h1>sweep of raft: 40 of 40 seeds</h1>"
                                      '<p><a href="runs/2/report.html">seed 2</a></p>')
    site = served(root)
    browser.get(site + "/")
    stamp = loaded(browser)
    wait(browser, lambda d: d.find_element(By.ID, "sweeps").is_displayed(), "the sweeps table")
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#sweep-rows tr td")]
    assert cells[:3] == ["raft/sweeps/20261201T120000", "raft", "40/40"], cells
    assert "valid 39" in cells[3] and "INVALID 1" in cells[3], cells
    sweep_path = "raft/sweeps/20261201T120000"
    assert set(rows(browser)) == {results["clean"], f"{sweep_path}/runs/2"}
    shots(browser, "index-sweeps")
    browser.find_element(By.LINK_TEXT, "list them").click()
    stamp = arrived(browser, "/", {"sweep": sweep_path})
    assert rows(browser) == [f"{sweep_path}/runs/2"]
    Select(browser.find_element(By.ID, "f-sweep")).select_by_value("none")
    loaded(browser, stamp)
    assert rows(browser) == [results["clean"]]
    browser.find_element(By.LINK_TEXT, sweep_path).click()
    wait(browser, lambda d: "sweep of raft: 40 of 40 seeds" in d.find_element(By.TAG_NAME, "body").text,
         "the sweep's page")
    browser.find_element(By.LINK_TEXT, "seed 2").click()  # the page's own link to the run it kept
    wait(browser, lambda d: "What went wrong" in d.find_element(By.TAG_NAME, "body").text, "the kept run's report")
    assert script_errors(browser) == []


@pytest.mark.root
@needs_root(why="a netns run with its bridge captured")
def test_a_netns_runs_diagram_comes_from_its_bridge_capture(browser: Any, tmp_path: Path, shots: Any) -> None:
    from harness.serve import make_server
    from harness.session import check, execute, prepare

    spec = prepare(TestSpec(system="raft", workload="register", nemesis=("partition",), backend="netns",
                            node_count=3, concurrency=3, time_limit_s=5.0, nemesis_interval_s=1.0, quiet_s=1.0,
                            seed=5), tmp_path)
    os.environ["PICLUSTER_CAPTURE"] = "1"
    try:
        execute(spec)
    finally:
        del os.environ["PICLUSTER_CAPTURE"]
    check(spec.path)
    from harness.lamport import load_flow

    flow, _, nodes = load_flow(spec.path)  # where Raft's traffic is (a loaded machine may take seconds to elect)
    started = next(m.sent_s for m in flow.messages if m.src in nodes and m.dst in nodes)
    server = make_server(tmp_path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        run = spec.path.relative_to(tmp_path).as_posix()
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/diagram?run={run}&from={started - 0.05:.3f}"
                    f"&to={started + 0.45:.3f}")
        loaded(browser)
        assert "bridge capture" in browser.find_element(By.ID, "info").text
        svg = browser.find_element(By.ID, "flow-svg")
        assert [t.text for t in svg.find_elements(By.CSS_SELECTOR, "text.lane")] == ["harness", "n1", "n2", "n3"]
        titles = [t.get_attribute("textContent") for t in svg.find_elements(By.CSS_SELECTOR, "g.msg > title")]
        # Raft's own message types, decoded from the frames' bodies (appends, or votes while electing)
        assert any(t.split("  ")[1].split(" [")[0] in ("raft append", "raft append-resp", "raft vote",
                                                         "raft vote-resp") for t in titles), titles[:20]
        shots(browser, "diagram-capture")
        assert script_errors(browser) == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
