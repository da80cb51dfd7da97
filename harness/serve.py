"""`harness serve`: browse results/ in a web page.

Serves the results directory read-only on loopback by default, with an index
page listing every run (system, time, nemesis, verdict) newest first, each
linking to its report.html. A run that was never checked (no results.json,
or no report) links to its directory instead and shows the `harness check`
command that checks it; an interrupted run (interrupted.json, or
results.json's `interrupted`) says so next to its verdict. Nothing is
written.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERDICT = {True: ("valid", "#1a7f37"), False: ("INVALID", "#cf222e")}


def list_runs(root: Path) -> list[dict[str, Any]]:
    runs = []
    for test_json in root.glob("*/*/test.json"):
        run_dir = test_json.parent
        try:
            test = json.loads(test_json.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        valid: Any = "never checked"
        interrupted = (run_dir / "interrupted.json").exists()
        results = run_dir / "results.json"
        if results.exists():
            try:
                data = json.loads(results.read_text(encoding="utf-8"))
                valid = data.get("valid", "unknown")
                interrupted = interrupted or bool(data.get("interrupted"))
            except (OSError, json.JSONDecodeError, AttributeError):
                valid = "unreadable"
        checked = valid != "never checked" and (run_dir / "report.html").exists()
        runs.append({"path": run_dir.relative_to(root).as_posix(), "name": run_dir.name, "test": test,
                     "valid": valid, "checked": checked, "interrupted": interrupted, "dir": str(run_dir)})
    return sorted(runs, key=lambda r: r["name"], reverse=True)


def index_html(root: Path) -> str:
    rows = []
    for run in list_runs(root):
        word, colour = VERDICT.get(run["valid"], (str(run["valid"]), "#9a6700"))
        t = run["test"]
        path = html.escape(run["path"])
        link = f'<a href="{path}/report.html">{path}</a>' if run["checked"] else f'<a href="{path}/">{path}</a>'
        notes = []
        if run["interrupted"]:
            notes.append('<span class="tag">interrupted: partial history</span>')
        if not run["checked"]:
            notes.append(f"<code>harness check {html.escape(run['dir'])}</code>")
        rows.append(
            f"<tr><td>{link}</td>"
            f"<td>{html.escape(str(t.get('backend')))}</td><td>{html.escape(str(t.get('seed')))}</td>"
            f"<td>{html.escape(', '.join(t.get('bugs', [])) or '-')}</td>"
            f'<td><span style="color:{colour};font-weight:600">{html.escape(word)}</span> {" ".join(notes)}</td></tr>'
        )
    return (
        "<!doctype html><meta charset='utf-8'><title>picluster results</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px}td,th{padding:4px 10px;text-align:left}"
        ".tag{background:#fff8c5;border:1px solid #d4a72c;border-radius:4px;padding:0 6px}"
        "code{background:#f6f8fa;padding:1px 4px}</style>"
        "<h1>picluster results</h1><table><tr><th>run</th><th>backend</th><th>seed</th><th>bugs</th>"
        f"<th>verdict</th></tr>{''.join(rows)}</table>"
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
