"""Power and switch controllers that speak an interactive console (a PDU's or a managed switch's CLI), via pexpect.

In the cluster file (see ssh_config), a console is declared once and each
power, switch or link command may be a script on it instead of a program:

    [consoles.pdu]
    spawn = ["telnet", "192.168.1.60"]      # a program that opens the console (telnet, ssh, picocom /dev/ttyUSB0)
    # connect = "192.168.1.60:2323"         # ... or a raw TCP console (a terminal server's port)
    timeout_s = 10                          # for each expect (a step may set its own `timeout_s`)
    fail = "E[1-9][0-9]{2}:|Denied"         # optional: output that means the command failed
    login = [{expect = "User Name :", send = "apc"}, {expect = "Password  :", send = "apc"}, {expect = "apc>"}]
    logout = [{send = "quit"}]

    [nodes.n1]
    power_off = {console = "pdu", steps = [{send = "olOff 1"}, {expect = "E000: Success"}, {expect = "apc>"}]}

Rules this module keeps:

- A step is `expect` (a regular expression the console must print within
  the timeout), `send` (a line, ended by the console's `newline`, "\\r" by
  default), or both (expect, then send). `{node}` and `{host}` are replaced
  in both (escaped in `expect`); nothing else is interpreted.
- Every command is its own session: open (spawn the program in a
  pseudo-terminal, or connect), the login steps, the command's steps, the
  logout steps, close (the program is terminated if it lingers). Nothing is
  held open between faults.
- A step that times out, meets the end of the session, or sees the
  console's `fail` pattern raises `ConsoleError`, one line naming the
  console, the step and what it waited for, with the tail of what the
  console printed. The session is closed on every path.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any

TAIL_CHARS = 200


class ConsoleError(RuntimeError):
    """A console script did not go as written (one line)."""


@dataclass(frozen=True, slots=True)
class Step:
    expect: str | None = None
    send: str | None = None
    timeout_s: float | None = None

    def words(self) -> str:
        parts = ([f"expect {self.expect!r}"] if self.expect is not None else []) + (
            [f"send {self.send!r}"] if self.send is not None else [])
        return ", then ".join(parts)


@dataclass(frozen=True, slots=True)
class Console:
    name: str
    spawn: tuple[str, ...] | None = None
    connect: tuple[str, int] | None = None
    login: tuple[Step, ...] = ()
    logout: tuple[Step, ...] = ()
    timeout_s: float = 10.0
    newline: str = "\r"
    fail: str | None = None

    @property
    def program(self) -> str | None:
        """The program this machine must have to open the console (None for a TCP console)."""
        return self.spawn[0] if self.spawn else None


@dataclass(frozen=True, slots=True)
class ConsoleScript:
    """A power, switch or link command played on a console."""

    console: Console
    steps: tuple[Step, ...]

    def __str__(self) -> str:
        sent = "; ".join(s.send for s in self.steps if s.send is not None)
        return f"console {self.console.name}: {sent}"


# -- parsing (called by ssh_config; errors are ValueError with the field's path) -----------------------


def parse_steps(where: str, raw: Any) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: must be a list of steps like {{expect = \"apc>\", send = \"olOff 1\"}}")
    steps = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or not item or set(item) - {"expect", "send", "timeout_s"}:
            raise ValueError(f"{at}: a step is a table with expect and/or send (and optionally timeout_s)")
        expect, send, timeout = item.get("expect"), item.get("send"), item.get("timeout_s")
        if expect is None and send is None:
            raise ValueError(f"{at}: a step needs expect or send")
        if expect is not None:
            if not isinstance(expect, str) or not expect:
                raise ValueError(f"{at}.expect: must be a non-empty string (a regular expression)")
            try:
                re.compile(expect)
            except re.error as e:
                raise ValueError(f"{at}.expect: not a regular expression: {e}") from None
        if send is not None and not isinstance(send, str):
            raise ValueError(f"{at}.send: must be a string")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError(f"{at}.timeout_s: must be a positive number")
        steps.append(Step(expect, send, None if timeout is None else float(timeout)))
    return tuple(steps)


CONSOLE_KEYS = frozenset({"spawn", "connect", "login", "logout", "timeout_s", "newline", "fail"})


def parse_console(name: str, raw: Any) -> Console:
    where = f"consoles.{name}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a table")
    unknown = sorted(set(raw) - CONSOLE_KEYS)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(CONSOLE_KEYS))})")
    if ("spawn" in raw) == ("connect" in raw):
        raise ValueError(f"{where}: give either spawn (a program) or connect (\"host:port\"), not both or neither")
    spawn = connect = None
    if "spawn" in raw:
        import shlex

        value = raw["spawn"]
        argv = shlex.split(value) if isinstance(value, str) else value
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError(f"{where}.spawn: must be a non-empty command (a list of non-empty strings)")
        spawn = tuple(argv)
    else:
        host, _, port = str(raw["connect"]).rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{where}.connect: must be \"host:port\", got {raw['connect']!r}")
        connect = (host, int(port))
    timeout = raw.get("timeout_s", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"{where}.timeout_s: must be a positive number")
    fail = raw.get("fail")
    if fail is not None:
        try:
            re.compile(fail)
        except (re.error, TypeError) as e:
            raise ValueError(f"{where}.fail: not a regular expression: {e}") from None
    newline = raw.get("newline", "\r")
    if not isinstance(newline, str):
        raise ValueError(f"{where}.newline: must be a string")
    return Console(name, spawn, connect, parse_steps(f"{where}.login", raw.get("login", [])),
                   parse_steps(f"{where}.logout", raw.get("logout", [])), float(timeout), newline, fail)


def parse_script(where: str, raw: dict[str, Any], consoles: dict[str, Console]) -> ConsoleScript:
    if set(raw) != {"console", "steps"}:
        raise ValueError(f"{where}: a console command is {{console = \"NAME\", steps = [...]}}")
    name = raw["console"]
    if name not in consoles:
        known = ", ".join(sorted(consoles)) or "none declared"
        raise ValueError(f"{where}.console: no [consoles.{name}] in the file ({known})")
    return ConsoleScript(consoles[name], parse_steps(f"{where}.steps", raw["steps"]))


# -- playing a script ------------------------------------------------------------------------------------


def _fill(text: str, values: dict[str, str], escape: bool) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", re.escape(value) if escape else value)
    return text


def _open(console: Console) -> Any:
    import pexpect
    from pexpect.fdpexpect import fdspawn

    if console.spawn is not None:
        try:
            return pexpect.spawn(console.spawn[0], list(console.spawn[1:]), timeout=console.timeout_s,
                                 encoding="utf-8", codec_errors="replace", echo=False)
        except pexpect.ExceptionPexpect as e:
            raise ConsoleError(f"console {console.name}: cannot start {' '.join(console.spawn)}: {e}") from None
    assert console.connect is not None
    host, port = console.connect
    try:
        sock = socket.create_connection((host, port), timeout=console.timeout_s)
    except OSError as e:
        raise ConsoleError(f"console {console.name}: cannot connect to {host}:{port}: {e}") from None
    session = fdspawn(sock.fileno(), timeout=console.timeout_s, encoding="utf-8", codec_errors="replace")
    session.socket = sock  # owned by the session: closed with it
    return session


def _tail(session: Any) -> str:
    seen = "".join(x for x in (session.before, session.after) if isinstance(x, str))
    seen = " ".join(seen.split())
    return seen[-TAIL_CHARS:] or "nothing"


def play(script: ConsoleScript, what: str, values: dict[str, str] | None = None) -> str:
    """Run one command on its console (login, its steps, logout); returns what the console printed."""
    import pexpect

    console = script.console
    values = values or {}
    session = _open(console)
    transcript: list[str] = []
    plan = [("login", s) for s in console.login] + [(what, s) for s in script.steps] + [
        ("logout", s) for s in console.logout]
    try:
        for number, (part, step) in enumerate(plan, 1):
            if step.expect is not None:
                patterns = [_fill(step.expect, values, escape=True)]
                if console.fail:
                    patterns.append(console.fail)
                timeout = step.timeout_s or console.timeout_s
                try:
                    hit = session.expect(patterns, timeout=timeout)
                except pexpect.TIMEOUT:
                    raise ConsoleError(f"console {console.name}, {part} step {number}: waited {timeout:g} s for "
                                       f"{step.expect!r}; the console printed: {_tail(session)}") from None
                except pexpect.EOF:
                    if part == "logout":  # the console hung up on our goodbye: done
                        break
                    raise ConsoleError(f"console {console.name}, {part} step {number}: the session ended while "
                                       f"waiting for {step.expect!r}; it printed: {_tail(session)}") from None
                transcript.append(str(session.before) + str(session.after))
                if hit == 1:
                    raise ConsoleError(f"console {console.name}, {part} step {number}: the console said "
                                       f"{session.after!r} (matches fail {console.fail!r}): {_tail(session)}")
            if step.send is not None:
                try:
                    session.send(_fill(step.send, values, escape=False) + console.newline)
                except OSError as e:
                    if part == "logout":
                        break
                    raise ConsoleError(f"console {console.name}, {part} step {number}: cannot send: {e}") from None
    finally:
        _close(session)
    return "".join(transcript)


def _close(session: Any) -> None:
    import contextlib

    with contextlib.suppress(Exception):
        if hasattr(session, "terminate"):
            session.close(force=True)
        else:
            session.close()
    sock = getattr(session, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
