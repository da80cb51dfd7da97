"""The sweeps `harness serve` lists: results/<system>/sweeps/<sweep>/ with its sweep.json and its page.

Rules: a sweep is a directory holding sweep.json (written by `harness
sweep`); its row is that file's figures plus its path, newest first. Its own
page is its index.html, served as /files/<path>/; the runs it kept
(runs/<seed>/) are listed among the runs, marked with their sweep
(harness/serve_index.py). When harness/sweep_page.py is installed its
`list_sweeps` is the one reader of sweep directories; otherwise this module
reads them the same way. An unreadable sweep.json is skipped. `sweeps_table`
is the same list as plain HTML, every value escaped (for /plain).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _read_sweeps(root: Path) -> list[dict[str, Any]]:
    out = []
    for meta_path in root.glob("*/sweeps/*/sweep.json"):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(meta, dict):
            out.append({**meta, "path": meta_path.parent.relative_to(root).as_posix(), "name": meta_path.parent.name})
    return sorted(out, key=lambda s: s["name"], reverse=True)


def _reader() -> Callable[[Path], list[dict[str, Any]]]:
    try:
        from harness.sweep_page import list_sweeps as theirs  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return _read_sweeps
    return theirs  # type: ignore[no-any-return, unused-ignore]


def list_sweeps(root: Path) -> list[dict[str, Any]]:
    """Every sweep under root, newest first, each with `path` (under root), `name`, and sweep.json's figures."""
    rows = _reader()(root)
    return [{**s, "page": (root / s["path"] / "index.html").is_file()} for s in rows]


def sweeps_table(root: Path) -> str:
    """The sweeps as a plain table: each linking to its page, with its seeds and verdict counts ('' when none)."""
    rows = []
    for s in list_sweeps(root):
        path = html.escape(s["path"])
        name = f'<a href="/files/{path}/index.html">{path}</a>' if s["page"] else path
        counts = s.get("counts") if isinstance(s.get("counts"), dict) else {}
        verdicts = ", ".join(f"{html.escape(str(k))} {html.escape(str(n))}" for k, n in counts.items() if n)
        rows.append(f"<tr><td>{name}</td><td>{html.escape(str(s.get('done', '?')))}/"
                    f"{html.escape(str(s.get('seeds', '?')))}</td><td>{verdicts or 'running'}</td></tr>")
    if not rows:
        return ""
    return ("<h2>sweeps</h2><table><tr><th>sweep</th><th>seeds</th><th>verdicts</th></tr>"
            f"{''.join(rows)}</table>")

