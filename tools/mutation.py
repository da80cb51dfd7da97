"""Mutation testing of the checkers and the nemesis schedule: run mutmut, then write the survivors report.

Usage (from the repository root, in the dev venv; slow, so not part of the default test run):

    .venv/bin/python tools/mutation.py              # run what is not judged yet, re-judge survivors, report
    .venv/bin/python tools/mutation.py --report     # only rewrite the report from the last run
    .venv/bin/python tools/mutation.py --fresh      # forget every cached result first
    .venv/bin/python tools/mutation.py --only 'checkers.raft_safety.*'   # only some modules (mutmut name globs):
                                                    # their mutants not judged yet, and their survivors

Rules this tool keeps:

- What is mutated and which tests judge it is mutmut's configuration, `[tool.mutmut]` in
  pyproject.toml (the fast tier of the checkers' tests). mutmut caches each mutant's result and
  re-judges only mutants of functions whose source changed; since a survivor may be killed by a
  test added since, each run also re-judges the survivors of earlier runs (by name).
- A mutant is killed when one of its tests fails or it runs out of time (SIGXCPU, or SIGKILL after
  it); it survives when they all pass; "no tests" (no selected test reaches the function) counts as surviving.
- Equivalent mutants are listed in tools/mutation_equivalents.toml, each with a one-line reason,
  matched by module, function and the changed lines (never by mutmut's number, which shifts when a
  function changes). A mark that matches no mutant is reported as stale.
- The score of a module is (killed + timed out) / (mutants - marked equivalents).
- The report (results/mutation/report.md unless --out) lists every unmarked survivor with its change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKS = ROOT / "tools" / "mutation_equivalents.toml"
# A failing test, pytest's internal error, or a timeout (mutmut's codes). -9 is SIGKILL: mutmut's CPU limit sends
# SIGXCPU, then SIGKILL one second later to a mutant that runs on (an endless loop; mutmut calls it "segfault").
KILLED = {1, 3, 36, 24, -24, 152, 255, -9}
SURVIVED = {0, 5, 33}  # every test passed, or no test reached it


@dataclass(frozen=True)
class Mutant:
    name: str  # mutmut's key, e.g. checkers.raft_safety.x__runs__mutmut_6
    module: str  # checkers/raft_safety.py
    function: str  # _runs, or Search.run for a method
    exit_code: int | None
    before: str = ""  # the changed source lines, stripped, joined by " / "
    after: str = ""

    @property
    def killed(self) -> bool:
        return self.exit_code in KILLED


def function_of(name: str) -> str:
    """mutmut's mangled name -> the function as written: `x__runs` -> `_runs`, `xǁSearchǁrun` -> `Search.run`."""
    mangled = name.rsplit(".", 1)[1].rsplit("__mutmut_", 1)[0]
    if mangled.startswith("xǁ"):
        return ".".join(mangled[2:].split("ǁ"))
    return mangled[2:]


def load_mutants(*, with_diffs: bool) -> list[Mutant]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    out = []
    for module in config["only_mutate"]:
        meta = ROOT / "mutants" / (module + ".meta")
        if not meta.exists():
            continue
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            m = Mutant(name, module, function_of(name), code)
            if with_diffs and code in SURVIVED:
                m = Mutant(name, module, m.function, code, *changed_lines(name, module))
            out.append(m)
    return out


def changed_lines(name: str, module: str) -> tuple[str, str]:
    from mutmut.mutation.diff_apply import get_diff_for_mutant  # needs the cwd at the root, as main() sets

    diff = get_diff_for_mutant(name, path=module).splitlines()
    before = [line[1:].strip() for line in diff if line.startswith("-") and not line.startswith("---")]
    after = [line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(before), " / ".join(after)


def load_marks() -> list[dict[str, str]]:
    marks = tomllib.loads(MARKS.read_text()).get("equivalent", []) if MARKS.exists() else []
    for m in marks:
        missing = {"module", "function", "reason"} - set(m)
        if missing:
            raise SystemExit(f"{MARKS.name}: a mark lacks {', '.join(sorted(missing))}: {m}")
    return marks


def mark_for(m: Mutant, marks: list[dict[str, str]]) -> dict[str, str] | None:
    """The mark that says this mutant is equivalent: same module and function, same change (or any change
    when the mark names none: for functions that only format text)."""
    for mark in marks:
        if mark["module"] != m.module or mark["function"] != m.function:
            continue
        if "before" not in mark and "after" not in mark:
            return mark
        if mark.get("before") == m.before and mark.get("after") == m.after:
            return mark
    return None


def refresh_copies() -> None:
    """Bring mutmut's copies of the files it does not mutate up to date (it copies them only once),
    and drop copies whose source is gone: after a merge, stale copies would shadow the real modules."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    mutated = set(config["only_mutate"])
    for src in config["source_paths"]:
        copies = ROOT / "mutants" / src
        if not copies.is_dir():
            continue
        for copy in copies.rglob("*.py"):
            rel = copy.relative_to(ROOT / "mutants")
            if str(rel) in mutated:
                continue
            source = ROOT / rel
            if not source.exists():
                copy.unlink()
            elif source.read_bytes() != copy.read_bytes():
                shutil.copy2(source, copy)


def mutmut(*args: str) -> int:
    exe = Path(sys.executable).with_name("mutmut")
    with open(ROOT / "mutants" / "mutmut.log", "a") as log:
        return subprocess.run([str(exe), "run", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode


def report(mutants: list[Mutant], marks: list[dict[str, str]], elapsed_s: float | None) -> str:
    lines = ["# Mutation testing report", ""]
    if elapsed_s is not None:
        lines.append(f"Run took {elapsed_s / 60:.1f} min.")
    lines += ["", "| module | mutants | killed | equivalent | surviving | score |", "|---|---|---|---|---|---|"]
    used: set[int] = set()
    survivors: list[Mutant] = []
    for module in dict.fromkeys(m.module for m in mutants):
        ms = [m for m in mutants if m.module == module]
        killed = sum(m.killed for m in ms)
        equivalent = 0
        for m in ms:
            if m.killed or m.exit_code is None:
                continue
            mark = mark_for(m, marks)
            if mark is None:
                survivors.append(m)
            else:
                used.add(id(mark))
                equivalent += 1
        judged = sum(m.exit_code is not None for m in ms)
        live = judged - killed - equivalent
        score = f"{killed / (judged - equivalent):.1%}" if judged > equivalent else "-"
        pending = f" ({len(ms) - judged} not run)" if judged < len(ms) else ""
        lines.append(f"| {module} | {len(ms)}{pending} | {killed} | {equivalent} | {live} | {score} |")
    lines += ["", f"## Surviving mutants not marked equivalent ({len(survivors)})", ""]
    for m in survivors:
        how = "no test reaches it" if m.exit_code in (5, 33) else "survived"
        lines.append(f"- `{m.name}` ({m.module} {m.function}, {how}): `{m.before}` → `{m.after}`")
    stale = [mk for mk in marks if id(mk) not in used]
    if stale:
        lines += ["", f"## Marks that matched no surviving mutant ({len(stale)})", ""]
        lines += [f"- {mk['module']} {mk['function']}: `{mk.get('before', '*')}` → `{mk.get('after', '*')}`"
                  for mk in stale]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", action="store_true", help="only rewrite the report from the last run")
    ap.add_argument("--fresh", action="store_true", help="forget every cached result first")
    ap.add_argument("--max-children", type=int, default=2, help="mutants judged at once (default 2)")
    ap.add_argument("--only", nargs="+", default=[], metavar="GLOB",
                    help="judge only mutants whose names match, e.g. 'checkers.linearizable.search.*'")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "mutation" / "report.md")
    args = ap.parse_args()
    os.chdir(ROOT)
    elapsed = None
    if not args.report:
        if args.fresh:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        (ROOT / "mutants").mkdir(exist_ok=True)
        refresh_copies()
        started = time.monotonic()
        known = load_mutants(with_diffs=False)
        # Survivors judged by an earlier run: a test added since may kill them now.
        again = [m.name for m in known if m.exit_code in SURVIVED]
        if args.only:
            todo = [m.name for m in known if m.exit_code is None or m.exit_code in SURVIVED]
            todo = [n for n in todo if any(fnmatch(n, g) for g in args.only)] if known else args.only
            code = mutmut("--max-children", str(args.max_children), *todo) if todo else 0
        else:
            code = mutmut("--max-children", str(args.max_children))
            if code == 0 and again:
                code = mutmut("--max-children", str(args.max_children), *again)
        if code != 0:
            print(f"mutmut failed: see {ROOT / 'mutants' / 'mutmut.log'}", file=sys.stderr)
            return 1
        elapsed = time.monotonic() - started
    text = report(load_mutants(with_diffs=True), load_marks(), elapsed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text.split("\n## ")[0])
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
