"""What the README states about fault colours and exit codes is what the code does."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from harness import cli
from nemesis.catalog import VOCABULARY

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_fault_colour_table_is_the_vocabulary() -> None:
    rows = re.findall(r"^\| `([a-z-]+)` \| `([a-z-]+)`.*\| `(#[0-9a-f]{6})` \|", README, re.MULTILINE)
    assert {kind: colour for kind, _start, colour in rows} == {k.name: k.colour for k in VOCABULARY}
    assert all(VOCABULARY.kinds[kind].start == start for kind, start, _ in rows)


def test_the_exit_codes_stated_are_the_clis() -> None:
    assert cli.EXIT_INTERRUPTED == 130 and "130 interrupted by Ctrl-C" in README
    assert cli.EXIT_TERMINATED == 128 + signal.SIGTERM == 143 and "143 terminated by SIGTERM" in README
