"""`harness serve`: a results browser over results/, from the standard library's http.server.

Pages (static files in harness/web/, filled in by their scripts from JSON):

    /                       every run and sweep: filters, search, sort, pages, pick two to compare
    /run?path=P             one run: verdict, checkers, its report, its raw files, links to the diagram
    /compare?a=P&b=Q        two runs side by side and the first divergence of their histories
    /diagram?run=P[&op=N][&from=S&to=S]   the message-flow (Lamport) diagram of a run's window
    /plain                  every run on one page without scripts

JSON: /api/runs (the listing; query parameters as harness/serve_index.py's
Query), /api/sweeps, /api/run?path=P, /api/compare?a=P&b=Q,
/api/diagram?run=P&op=N&from=S&to=S. Raw files: /files/<run path>/<file>; a
path that is none of the above is a file under results/ too (so links made
for the old serve, which served results/ at /, still open: `/<run>/report.html`,
a sweep page's `<sweep>/index.html`).

Rules this module keeps:

- Read-only: nothing under results/ is written. Bound to 127.0.0.1 unless
  told otherwise (`--host`).
- Only files under the results directory are served (a path that resolves
  outside it, or names a missing file, is 404), and only GET and HEAD.
- A report's link to the diagram around an op (`<run>/diagram.html?op=N`,
  relative to its report.html, see harness/explain.py) is redirected to the
  diagram page of that run.
- A bad request (a missing run, an unreadable file, a bad number) is a JSON
  `{"error": one line}` with status 400 or 404, never a traceback.
"""

from __future__ import annotations

import contextlib
import html
import json
import mimetypes
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from harness.lamport import FlowCache, FlowError, window
from harness.serve_compare import compare
from harness.serve_index import Query, RunIndex
from harness.serve_sweeps import list_sweeps, sweeps_table

WEB = Path(__file__).with_name("web")
PAGES = {"/": "index.html", "/index.html": "index.html", "/run": "run.html", "/compare": "compare.html",
         "/diagram": "diagram.html"}
TEXT_TYPES = {".jsonl": "text/plain", ".log": "text/plain", ".out": "text/plain", ".txt": "text/plain",
              ".json": "application/json", ".html": "text/html", ".css": "text/css", ".js": "text/javascript",
              ".svg": "image/svg+xml", ".edn": "text/plain", ".toml": "text/plain"}
RAW_FILES_SHOWN = 500


class BadRequest(ValueError):
    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


class Results:
    """What the handlers share: the results directory, its run index, the diagram cache."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve() if root.exists() else root.absolute()
        self.index = RunIndex(self.root)
        self.flows = FlowCache()

    def run_dir(self, path: str) -> Path:
        """A run directory named by its path under results/ (it must hold test.json)."""
        if not path:
            raise BadRequest("which run? (path=...)")
        target = self.inside(path)
        if not (target / "test.json").is_file():
            raise BadRequest(f"no run at {path}", HTTPStatus.NOT_FOUND)
        return target

    def inside(self, rel: str) -> Path:
        """`rel` under the results directory, or BadRequest (404) if it leads outside."""
        target = (self.root / rel.lstrip("/")).resolve()
        if target != self.root and self.root not in target.parents:
            raise BadRequest(f"{rel}: not under the results directory", HTTPStatus.NOT_FOUND)
        return target

    def holds(self, url_path: str) -> bool:
        """Whether `url_path` names something under results/ that /files/ would serve."""
        try:
            target = self.inside(url_path)
        except BadRequest:
            return False
        if url_path.endswith("/diagram.html"):
            return (target.parent / "test.json").is_file()
        return target != self.root and (target.is_file() or (target / "index.html").is_file())

    # -- JSON ---------------------------------------------------------------------------------------

    def run_info(self, path: str) -> dict[str, Any]:
        run_dir = self.run_dir(path)
        row = self.index.find(path)
        results: dict[str, Any] = {}
        with contextlib.suppress(OSError, json.JSONDecodeError, UnicodeDecodeError):
            loaded = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
            results = loaded if isinstance(loaded, dict) else {}
        files = []
        for f in sorted(run_dir.rglob("*")):
            if f.is_file() and len(files) < RAW_FILES_SHOWN:
                files.append({"name": f.relative_to(run_dir).as_posix(), "size": f.stat().st_size})
        checkers = {name: {"valid": r.get("valid"), "summary": str(r.get("summary", ""))}
                    for name, r in (results.get("checkers") or {}).items() if isinstance(r, dict)}
        return {
            "path": path,
            "row": row.to_json() if row is not None else None,
            "test": json.loads((run_dir / "test.json").read_text(encoding="utf-8")),
            "valid": results.get("valid", "unchecked"),
            "partial": results.get("partial"),
            "faults": (results.get("faults") or {}).get("headline"),
            "checkers": checkers,
            "files": files,
            "report": (run_dir / "report.html").is_file(),
            "flow": "journal" if (run_dir / "journal.jsonl").is_file()
            else "capture" if (run_dir / "capture.pcap").is_file() else "",
        }

    def diagram(self, params: dict[str, str]) -> dict[str, Any]:
        run_dir = self.run_dir(params.get("run", ""))
        try:
            start = float(params["from"]) if params.get("from") else None
            end = float(params["to"]) if params.get("to") else None
            op = int(params["op"]) if params.get("op") else None
        except ValueError as e:
            raise BadRequest(f"bad number: {e}") from None
        try:
            flow, history, nodes = self.flows.load(run_dir)
        except (FlowError, OSError) as e:
            raise BadRequest(str(e), HTTPStatus.NOT_FOUND) from None
        out = window(flow, history, nodes, start=start, end=end, op=op)
        out["run"] = params.get("run")
        return out


def index_html(root: Path) -> str:
    """Every run as one plain page without scripts (/plain): newest first, each linking to its report, or, for a
    run never checked, to its directory with the `harness check` command; an interrupted run says so. Then every
    sweep (harness/serve_sweeps.py), linking to its page."""
    rows = []
    for run in sorted(RunIndex(root, rescan_s=0).rows(), key=lambda r: (r.name, r.path), reverse=True):
        path = html.escape(run.path)
        href = f"/files/{path}/report.html" if run.checked else f"/run?path={path}"
        link = f'<a href="{href}">{path}</a>'
        notes = []
        if run.interrupted:
            notes.append('<span class="tag">interrupted: partial history</span>')
        if not run.checked:
            notes.append(f"<code>harness check {html.escape(str(root / run.path))}</code>")
        word = "never checked" if run.verdict == "unchecked" else run.verdict
        rows.append(f"<tr><td>{link}</td><td>{html.escape(run.backend)}</td><td>{run.seed}</td>"
                    f"<td>{html.escape(', '.join(run.bugs) or '-')}</td>"
                    f'<td><span class="badge v-{run.verdict}">{html.escape(word)}</span> {" ".join(notes)}</td></tr>')
    return ("<!doctype html><meta charset='utf-8'><title>picluster results</title>"
            "<link rel='stylesheet' href='/web/app.css'><main><h1>picluster results</h1>"
            "<table><tr><th>run</th><th>backend</th><th>seed</th><th>bugs</th><th>verdict</th></tr>"
            f"{''.join(rows)}</table>{sweeps_table(root)}</main>")


class Handler(BaseHTTPRequestHandler):
    results: Results
    server_version = "picluster-serve"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the terminal shows the one line serve() prints

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if path == "/favicon.ico":  # raw files and reports have no icon of their own; say so without a 404
                self._send(b"", "image/x-icon", HTTPStatus.NO_CONTENT)
            elif path == "/plain":
                self._send(index_html(self.results.root).encode(), "text/html; charset=utf-8")
            elif path in PAGES:
                self._file(WEB / PAGES[path])
            elif path.startswith("/web/"):
                self._file(self._web_asset(path[len("/web/"):]))
            elif path.startswith("/api/"):
                self._json(self._api(path[len("/api/"):], params))
            elif path.startswith("/files/"):
                self._raw(path[len("/files/"):], url.query)
            elif self.results.holds(path):
                self._raw(path[1:], url.query)
            else:
                raise BadRequest(f"nothing at {path}", HTTPStatus.NOT_FOUND)
        except BadRequest as e:
            self._json({"error": str(e)}, e.status)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _api(self, name: str, params: dict[str, str]) -> Any:
        r = self.results
        if name == "runs":
            return r.index.query(Query.from_params(params))
        if name == "sweeps":
            return {"sweeps": list_sweeps(r.root)}
        if name == "run":
            return r.run_info(params.get("path", ""))
        if name == "compare":
            for key in ("a", "b"):
                r.run_dir(params.get(key, ""))
            return compare(r.root, params["a"], params["b"])
        if name == "diagram":
            return r.diagram(params)
        raise BadRequest(f"no API {name!r}", HTTPStatus.NOT_FOUND)

    @staticmethod
    def _web_asset(name: str) -> Path:
        target = (WEB / name).resolve()
        if WEB.resolve() not in target.parents:
            raise BadRequest(f"no asset {name}", HTTPStatus.NOT_FOUND)
        return target

    def _raw(self, rel: str, query: str) -> None:
        if rel.endswith("/diagram.html"):  # a report's link to the diagram around an op
            run = rel[: -len("/diagram.html")]
            self.results.run_dir(run)
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", f"/diagram?run={quote(run)}" + (f"&{query}" if query else ""))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        target = self.results.inside(rel)
        if target.is_dir() and (target / "index.html").is_file():  # a sweep's page
            target = target / "index.html"
        self._file(target)

    def _file(self, path: Path) -> None:
        if not path.is_file():
            raise BadRequest(f"no file {path.name}", HTTPStatus.NOT_FOUND)
        kind = TEXT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind == "application/json":
            kind += "; charset=utf-8"
        size = path.stat().st_size
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if self.command == "HEAD":
            return
        with path.open("rb") as f:
            while chunk := f.read(1 << 16):
                self.wfile.write(chunk)

    def _json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(data, default=str, separators=(",", ":")).encode(), "application/json; charset=utf-8",
                   status)

    def _send(self, body: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """The server, bound but not serving (tests run `serve_forever` in a thread)."""
    handler = type("BoundHandler", (Handler,), {"results": Results(root)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(root: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    if not root.is_dir():
        print(f"warning: {root} does not exist yet; runs appear as they are made", file=sys.stderr)
    with make_server(root, host, port) as server:
        print(f"serving {root} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
