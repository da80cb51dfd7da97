"""The supervisor's control socket: one JSON request line in, one JSON reply line out.

Requests are frozen dataclasses (`Ping`, `Restart`, `Fault`, `Heal`, `Down`);
`decode` turns a wire dict into one, or raises `BadRequest`. A reply is
{"ok": true, "said": [lines]} or {"ok": false, "error": "one line"}.

Rules this module keeps:

- The socket is a Unix socket in the cluster directory (or under /tmp when
  that path is too long), so only who may read the directory may command
  the cluster.
- `ask(path, request, timeout_s)` is the command line's side: it connects,
  sends, waits for the reply within the bound and raises `Unanswered`
  (one line: no supervisor listening, or no reply in time) otherwise.
- `serve(path, handle)` is the supervisor's side: each connection carries
  one request; a request that cannot be decoded is answered with its error,
  and a handler that raises answers {"ok": false} with the error's text, so
  one bad command never stops the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MAX_LINE = 1 << 20


class BadRequest(ValueError):
    pass


class Unanswered(RuntimeError):
    """The supervisor did not answer (not running, or not in time); the message is one line."""


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Restart:
    node: str


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    node: str | None = None
    shape: str | None = None


@dataclass(frozen=True, slots=True)
class Heal:
    pass


@dataclass(frozen=True, slots=True)
class Down:
    pass


Request = Ping | Restart | Fault | Heal | Down
KINDS: dict[str, type[Any]] = {"ping": Ping, "restart": Restart, "fault": Fault, "heal": Heal, "down": Down}


def encode(req: Request) -> dict[str, Any]:
    kind = next(k for k, t in KINDS.items() if isinstance(req, t))
    return {"kind": kind, **asdict(req)}


def decode(doc: Any) -> Request:
    if not isinstance(doc, dict) or doc.get("kind") not in KINDS:
        raise BadRequest(f"not a control request: {str(doc)[:100]}")
    cls = KINDS[doc["kind"]]
    fields = {k: v for k, v in doc.items() if k != "kind"}
    try:
        req = cls(**fields)
    except TypeError as e:
        raise BadRequest(f"bad {doc['kind']} request: {e}") from None
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"bad {doc['kind']} request: {name} must be a string")
    return req


def ask(path: Path, req: Request, timeout_s: float) -> dict[str, Any]:
    """Send one request to the supervisor listening at `path` and return its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise Unanswered(f"no supervisor is listening at {path}") from None
        except OSError as e:
            raise Unanswered(f"cannot reach the supervisor at {path}: {e}") from None
        try:
            s.sendall((json.dumps(encode(req)) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise Unanswered(f"the supervisor did not answer within {timeout_s:g} s") from None
        except OSError as e:
            raise Unanswered(f"the supervisor's connection failed: {e}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise Unanswered(f"the supervisor closed the connection without a reply ({data[:80]!r})") from None
    if not isinstance(reply, dict):
        raise Unanswered(f"the supervisor answered {reply!r}")
    return reply


Handler = Callable[[Request], Awaitable[dict[str, Any]]]


async def serve(path: Path, handle: Handler) -> asyncio.Server:
    """Listen at `path` (a stale socket file is replaced) and answer each request with `handle`."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                reply = await handle(decode(json.loads(line)))
            except (BadRequest, ValueError) as e:
                reply = {"ok": False, "error": str(e)}
            except Exception as e:  # one bad command never stops the supervisor
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            writer.write((json.dumps(reply) + "\n").encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_unix_server(one, str(path), limit=MAX_LINE)
    path.chmod(0o600)
    return server
