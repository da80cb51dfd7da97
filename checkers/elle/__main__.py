"""Command line: check one transactional history file and print the result as JSON.

    python -m checkers.elle FILE [--workload list-append|rw-register]
        [--consistency strict-serializable[,MODEL...]] [--anomalies G0,G1c,...]
        [--format jsonl|edn] [--time-limit S] [--html OUT.html]
        rw-register only: [--initial JSON] [--initial-key KEY=JSON ...]
                          [--linearizable-keys] [--sequential-keys] [--no-wfr-keys]

FILE is a picluster history.jsonl or a Jepsen history.edn (the format is
guessed from the name unless --format says). Exit status, as the
linearizability checker's: 0 valid, 1 not valid, 2 unknown (nothing to
check, search cut short, no proof found), 3 the input could not be used
(missing or malformed file, a bad history, bad arguments). Errors are one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from checkers.elle.check import WORKLOADS, check
from checkers.elle.explain import render_html
from checkers.elle.files import FORMATS, FileError, load

EXIT = {True: 0, False: 1}
EXIT_UNKNOWN = 2
EXIT_BAD_INPUT = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"{what} must be JSON, got {text!r}") from None


def _options(a: argparse.Namespace) -> dict[str, Any]:
    if a.workload != "rw-register":
        used = [flag for flag, on in (("--initial", a.initial is not None), ("--initial-key", a.initial_key),
                                      ("--linearizable-keys", a.linearizable_keys),
                                      ("--sequential-keys", a.sequential_keys), ("--no-wfr-keys", a.no_wfr_keys))
                if on]
        if used:
            raise ValueError(f"{', '.join(used)} only apply to --workload rw-register")
        return {}
    by_key = {}
    for item in a.initial_key or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--initial-key needs KEY=JSON, got {item!r}")
        by_key[_json_arg(key, "the key of --initial-key") if key[:1] in "[{\"0123456789-" else key] = \
            _json_arg(value, "--initial-key's value")
    return {
        "initial": None if a.initial is None else _json_arg(a.initial, "--initial"),
        "initial_by_key": by_key,
        "wfr_keys": not a.no_wfr_keys,
        "sequential_keys": a.sequential_keys,
        "linearizable_keys": a.linearizable_keys,
    }


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m checkers.elle", description="Check a transactional history as Elle does.")
    p.add_argument("file")
    p.add_argument("--workload", choices=WORKLOADS, default="list-append")
    p.add_argument("--consistency", default=None, metavar="MODELS",
                   help="comma-separated models (default strict-serializable unless --anomalies is given)")
    p.add_argument("--anomalies", default=None, help="comma-separated anomalies to look for, as well")
    p.add_argument("--format", choices=FORMATS, default=None, help="default: edn for *.edn, else jsonl")
    p.add_argument("--time-limit", type=float, default=120.0, metavar="S")
    p.add_argument("--html", metavar="OUT", help="also write the explanation as an HTML file")
    p.add_argument("--initial", metavar="JSON", help="rw-register: every key's initial value (default null)")
    p.add_argument("--initial-key", action="append", metavar="KEY=JSON", help="rw-register: one key's initial value")
    p.add_argument("--linearizable-keys", action="store_true", help="rw-register: assume each key is linearizable")
    p.add_argument("--sequential-keys", action="store_true", help="rw-register: assume each key is sequential")
    p.add_argument("--no-wfr-keys", action="store_true",
                   help="rw-register: do not assume a txn's writes follow its reads")
    a = p.parse_args(argv)
    notes: list[str] = []
    try:
        options = _options(a)
        consistency = a.consistency if a.consistency is not None or a.anomalies else "strict-serializable"
        ops, lines = load(a.file, a.format, notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        result = check(ops, a.workload, consistency=consistency, anomalies=a.anomalies,
                       time_limit_s=a.time_limit, lines=lines, **options)
    except (FileError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if "error" in result:
        print(f"error: {a.file}: {result['error']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if a.html:
        try:
            with open(a.html, "w", encoding="utf-8") as f:
                f.write("<!doctype html><meta charset='utf-8'>\n" + render_html(result))
        except OSError as e:
            print(f"error: cannot write {a.html}: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        print(json.dumps(result, indent=1, default=repr))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
    valid = result["valid"]
    return EXIT[valid] if isinstance(valid, bool) else EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
