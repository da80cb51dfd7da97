"""`harness serve`: browse results/ in a web page.

Serves the results directory read-only on loopback by default, with an index
page listing every run (system, time, nemesis, verdict) newest first, each
linking to its report.html, then every sweep (harness/sweep_page.py). Nothing is written.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.sweep_page import sweeps_section

VERDICT = {True: ("valid", "#1a7f37"), False: ("INVALID", "#cf222e")}


def list_runs(root: Path) -> list[dict[str, Any]]:
    runs = []
    for test_json in root.glob("*/*/test.json"):
        run_dir = test_json.parent
        try:
            test = json.loads(test_json.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        valid: Any = "not checked"
        results = run_dir / "results.json"
        if results.exists():
            try:
                valid = json.loads(results.read_text(encoding="utf-8")).get("valid", "unknown")
            except (OSError, json.JSONDecodeError):
                valid = "unreadable"
        runs.append({"path": run_dir.relative_to(root).as_posix(), "name": run_dir.name, "test": test, "valid": valid})
    return sorted(runs, key=lambda r: r["name"], reverse=True)


def index_html(root: Path) -> str:
    rows = []
    for run in list_runs(root):
        word, colour = VERDICT.get(run["valid"], (str(run["valid"]), "#9a6700"))
        t = run["test"]
        rows.append(
            f'<tr><td><a href="{html.escape(run["path"])}/report.html">{html.escape(run["path"])}</a></td>'
            f"<td>{html.escape(str(t.get('backend')))}</td><td>{html.escape(str(t.get('seed')))}</td>"
            f"<td>{html.escape(', '.join(t.get('bugs', [])) or '-')}</td>"
            f'<td style="color:{colour};font-weight:600">{html.escape(word)}</td></tr>'
        )
    return (
        "<!doctype html><meta charset='utf-8'><title>picluster results</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px}td,th{padding:4px 10px;text-align:left}</style>"
        "<h1>picluster results</h1><table><tr><th>run</th><th>backend</th><th>seed</th><th>bugs</th>"
        f"<th>verdict</th></tr>{''.join(rows)}</table>" + sweeps_section(root)
    )


class ResultsHandler(SimpleHTTPRequestHandler):
    root: Path

    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            body = index_html(self.root).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


def serve(root: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    handler = functools.partial(ResultsHandler, directory=str(root))
    ResultsHandler.root = root
    with ThreadingHTTPServer((host, port), handler) as server:
        print(f"serving {root} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
