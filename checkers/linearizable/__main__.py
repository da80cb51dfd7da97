"""Command line: check one history file and print the verdict as JSON.

    python -m checkers.linearizable FILE [--model register|cas-register|kv]
        [--format jsonl|porcupine-etcd|porcupine-kv] [--time-limit S] [--memory-limit MB]
        [--all-keys] [--html OUT.html]

Exit status: 0 linearizable, 1 not linearizable, 2 unknown (budget
exhausted, or no operation to check), 3 the input could not be used
(missing or malformed file, bad arguments). Errors are one line on stderr,
never a traceback, and name the file's line; so do the op numbers in the
result (its "numbering" is "line"). A harness history.jsonl checks as the
harness checks it: ops the model does not know (status) are left out with a
note, a cas that failed with cas-mismatch is a failed compare.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from checkers.linearizable.check import check_operations
from checkers.linearizable.explain import render_html
from checkers.linearizable.models import MODELS, KvModel, Model, ModelError, make_model
from checkers.linearizable.parse import FORMATS, ParseError, load, plain

EXIT = {True: 0, False: 1}
EXIT_UNKNOWN = 2
EXIT_BAD_INPUT = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def model_for(name: str, fmt: str) -> Model:
    """Porcupine's kv files start every key as "" (picluster's start as null)."""
    if name == "kv" and fmt == "porcupine-kv":
        return KvModel(initial="")
    return make_model(name)


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m checkers.linearizable", description="Check a history for linearizability.")
    p.add_argument("file")
    p.add_argument("--model", choices=sorted(MODELS), help="default: kv for porcupine-kv, else cas-register")
    p.add_argument("--format", choices=FORMATS, default="jsonl")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="S")
    p.add_argument("--memory-limit", type=int, default=1024, metavar="MB")
    p.add_argument("--all-keys", action="store_true", help="keep checking the other keys after one fails")
    p.add_argument("--html", metavar="OUT", help="also write the explanation as an HTML file")
    a = p.parse_args(argv)
    try:
        model = model_for(a.model or ("kv" if a.format == "porcupine-kv" else "cas-register"), a.format)
        notes: list[str] = []
        ops = load(a.file, a.format, model, notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    except (ParseError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result = check_operations(ops, model, time_limit_s=a.time_limit, memory_limit_mb=a.memory_limit,
                              stop_on_failure=not a.all_keys, notes=notes, numbering="line")
    if a.html:
        try:
            with open(a.html, "w", encoding="utf-8") as f:
                f.write("<!doctype html><meta charset='utf-8'>\n" + render_html(result))
        except OSError as e:
            print(f"error: cannot write {a.html}: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        print(json.dumps(result, default=_jsonable, indent=1))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
    return EXIT.get(result["valid"], EXIT_UNKNOWN) if isinstance(result["valid"], bool) else EXIT_UNKNOWN


def _jsonable(v: Any) -> Any:
    return plain(v) if isinstance(v, tuple) else repr(v)


if __name__ == "__main__":
    sys.exit(main())
