"""The run index behind `harness serve`: every run under results/, as rows to filter, search, sort and page.

Rules this module keeps:

- A run is a directory holding test.json: results/<system>/<run>/ (plain
  runs) and results/<system>/sweeps/<sweep>/runs/<seed>/ (runs a sweep
  kept, marked with their sweep). Nothing else is read to find them.
- A row is built from test.json, results.json (its verdict, `interrupted`,
  `partial`) and the presence of interrupted.json, report.html,
  journal.jsonl and capture.pcap. A file that cannot be read gives the row
  a verdict of "unreadable" or drops the run (no test.json), never an error.
- Rows are cached by the modification times of the run directory (a file
  created, removed or replaced) and of results.json; the directory tree is
  walked again at most every `RESCAN_S` seconds (or on `refresh()`), so
  a listing of thousands of runs costs a walk of directory entries, not a
  parse of every file (a run's files are parsed again only when they
  change).
- Verdicts are words: valid, invalid, unknown, unchecked (no results.json
  yet), unreadable. Filters match exactly (a nemesis or bug filter matches a
  run that has it among others); the search matches a substring of the
  path, command line, seed, bugs and failing checkers' summaries,
  case-insensitively. Nothing here writes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESCAN_S = 1.0
"""A listing walks the tree again only when the last walk is older than this."""
MAX_PER_PAGE = 500
SORT_KEYS = ("name", "system", "workload", "backend", "seed", "verdict", "nemesis")
FILTERS = ("system", "workload", "nemesis", "bug", "backend", "verdict", "interrupted", "sweep")


@dataclass(frozen=True, slots=True)
class RunRow:
    path: str
    """The run directory relative to results/ (with '/')."""
    name: str
    system: str
    workload: str
    nemesis: tuple[str, ...]
    bugs: tuple[str, ...]
    backend: str
    seed: int | None
    nodes: int | None
    verdict: str
    interrupted: bool
    partial: str
    checked: bool
    sweep: str
    """The sweep's path relative to results/, or "" for a plain run."""
    command: str
    failing: tuple[str, ...] = field(default=())
    """"checker: summary" of each checker that did not find the run valid."""
    flow: str = ""
    """Where a message-flow diagram comes from: "journal" (sim), "capture" (netns) or ""."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        return " ".join([self.path, self.command, str(self.seed), *self.bugs, *self.failing]).lower()


def verdict_word(valid: Any) -> str:
    return {True: "valid", False: "invalid"}.get(valid, "unknown") if isinstance(valid, bool | str) else "unknown"


def read_row(root: Path, run_dir: Path, sweep: str = "") -> RunRow | None:
    """The row of one run directory, or None when it has no readable test.json."""
    try:
        test = json.loads((run_dir / "test.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(test, dict):
        return None
    verdict, interrupted, partial, failing = "unchecked", (run_dir / "interrupted.json").exists(), "", ()
    results_path = run_dir / "results.json"
    if results_path.exists():
        try:
            results = json.loads(results_path.read_text(encoding="utf-8"))
            verdict = verdict_word(results.get("valid", "unknown"))
            interrupted = interrupted or bool(results.get("interrupted"))
            partial = str(results.get("partial") or "")
            failing = tuple(f"{name}: {r.get('summary', '')}" for name, r in (results.get("checkers") or {}).items()
                            if isinstance(r, dict) and r.get("valid") is not True)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            verdict = "unreadable"
    flow = next((name for name, file in (("journal", "journal.jsonl"), ("capture", "capture.pcap"))
                 if (run_dir / file).exists()), "")
    seed = test.get("seed")
    nodes = test.get("nodes")
    return RunRow(
        path=run_dir.relative_to(root).as_posix(),
        name=run_dir.name if not sweep else f"{Path(sweep).name}/{run_dir.name}",
        system=str(test.get("system", "?")),
        workload=str(test.get("workload", "")),
        nemesis=tuple(str(n) for n in test.get("nemesis") or ()),
        bugs=tuple(str(b) for b in test.get("bugs") or ()),
        backend=str(test.get("backend", "")),
        seed=seed if isinstance(seed, int) else None,
        nodes=len(nodes) if isinstance(nodes, list) else test.get("node_count"),
        verdict=verdict,
        interrupted=interrupted,
        partial=partial,
        checked=verdict not in ("unchecked", "unreadable") and (run_dir / "report.html").exists(),
        sweep=sweep,
        command=str(test.get("command_line", "")),
        failing=failing,
        flow=flow,
    )


def _signature(run_dir: Path) -> tuple[int, ...]:
    """The run directory's mtime (a file created, removed or replaced: results.json is replaced whole) and
    results.json's (in case it was rewritten in place)."""
    sig = []
    for path in (run_dir, run_dir / "results.json"):
        try:
            sig.append(os.stat(path).st_mtime_ns)
        except OSError:
            sig.append(0)
    return tuple(sig)


def _subdirs(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return [e for e in it if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except OSError:
        return []


def run_dirs(root: Path) -> list[tuple[Path, str]]:
    """(run directory, sweep path or "") for every run under root, in no particular order."""
    out = []
    for system in _subdirs(root):
        for entry in _subdirs(Path(system.path)):
            if entry.name == "sweeps":
                for sweep in _subdirs(Path(entry.path)):
                    sweep_rel = f"{system.name}/sweeps/{sweep.name}"
                    out += [(Path(r.path), sweep_rel) for r in _subdirs(Path(sweep.path) / "runs")]
            elif os.path.exists(os.path.join(entry.path, "test.json")):
                out.append((Path(entry.path), ""))
    return out


@dataclass
class Query:
    """What a listing asks for (all optional): the filters, a search, a sort and a page."""

    filters: dict[str, str] = field(default_factory=dict)
    q: str = ""
    sort: str = "name"
    descending: bool = True
    page: int = 1
    per_page: int = 50

    @classmethod
    def from_params(cls, params: dict[str, str]) -> Query:
        sort = params.get("sort", "name")
        try:
            page = max(1, int(params.get("page", "1")))
            per_page = min(MAX_PER_PAGE, max(1, int(params.get("per_page", "50"))))
        except ValueError:
            page, per_page = 1, 50
        return cls(
            filters={k: params[k] for k in FILTERS if params.get(k)},
            q=params.get("q", "").strip().lower(),
            sort=sort if sort in SORT_KEYS else "name",
            descending=params.get("order", "desc") != "asc",
            page=page,
            per_page=per_page,
        )


def matches(row: RunRow, filters: dict[str, str], q: str) -> bool:
    for key, want in filters.items():
        if key == "nemesis":
            ok = want in row.nemesis or (want == "none" and not row.nemesis)
        elif key == "bug":
            ok = want in row.bugs or (want == "none" and not row.bugs)
        elif key == "interrupted":
            ok = row.interrupted == (want in ("yes", "true", "1"))
        elif key == "sweep":
            ok = (row.sweep == "") if want == "none" else (row.sweep != "") if want == "any" else row.sweep == want
        else:
            ok = str(getattr(row, key)) == want
        if not ok:
            return False
    return not q or q in row.text()


def _sort_key(sort: str) -> Any:
    if sort == "seed":
        return lambda r: (r.seed is None, r.seed or 0, r.name)
    if sort == "nemesis":
        return lambda r: (",".join(r.nemesis), r.name)
    if sort == "name":
        return lambda r: (r.name, r.path)
    return lambda r: (str(getattr(r, sort)), r.name)


def facets(rows: list[RunRow]) -> dict[str, list[tuple[str, int]]]:
    """Each filter's values with how many runs have them (over every run, so a filter can be widened)."""
    counts: dict[str, Counter[str]] = {k: Counter() for k in FILTERS}
    for r in rows:
        counts["system"][r.system] += 1
        counts["workload"][r.workload] += 1
        counts["backend"][r.backend] += 1
        counts["verdict"][r.verdict] += 1
        counts["interrupted"]["yes" if r.interrupted else "no"] += 1
        counts["sweep"][r.sweep or "none"] += 1
        for n in r.nemesis or ("none",):
            counts["nemesis"][n] += 1
        for b in r.bugs or ("none",):
            counts["bug"][b] += 1
    return {k: sorted(c.items()) for k, c in counts.items()}


class RunIndex:
    """Rows for every run under `root`, kept fresh cheaply (see the module's rules). Thread-safe."""

    def __init__(self, root: Path, rescan_s: float = RESCAN_S) -> None:
        self.root = root
        self.rescan_s = rescan_s
        self._rows: dict[Path, tuple[tuple[int, ...], RunRow]] = {}
        self._scanned_at = -1e18
        self._lock = threading.Lock()

    def rows(self) -> list[RunRow]:
        with self._lock:
            if time.monotonic() - self._scanned_at >= self.rescan_s:
                self._rescan()
            return [row for _, row in self._rows.values()]

    def _rescan(self) -> None:
        fresh: dict[Path, tuple[tuple[int, ...], RunRow]] = {}
        for run_dir, sweep in run_dirs(self.root):
            sig = _signature(run_dir)
            cached = self._rows.get(run_dir)
            if cached is not None and cached[0] == sig:
                fresh[run_dir] = cached
                continue
            row = read_row(self.root, run_dir, sweep)
            if row is not None:
                fresh[run_dir] = (sig, row)
        self._rows = fresh
        self._scanned_at = time.monotonic()

    def refresh(self) -> None:
        """Walk the tree again at the next listing, whenever the last walk was."""
        with self._lock:
            self._scanned_at = -1e18

    def find(self, path: str) -> RunRow | None:
        return next((r for r in self.rows() if r.path == path), None)

    def query(self, query: Query) -> dict[str, Any]:
        rows = self.rows()
        chosen = [r for r in rows if matches(r, query.filters, query.q)]
        chosen.sort(key=_sort_key(query.sort), reverse=query.descending)
        pages = max(1, -(-len(chosen) // query.per_page))
        page = min(query.page, pages)
        start = (page - 1) * query.per_page
        return {
            "total": len(rows),
            "matched": len(chosen),
            "page": page,
            "pages": pages,
            "per_page": query.per_page,
            "runs": [r.to_json() for r in chosen[start:start + query.per_page]],
            "facets": facets(rows),
        }
