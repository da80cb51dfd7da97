"""Who is on the other end of a connection: per-cluster keys and the HMAC handshake of the real runtime.

Rules this module keeps:

- An identity is a name and a role. `node`: a cluster node, its name its
  node id. `harness`: the test harness, the only role whose control frames
  (filters, faults) a node obeys. `client`: command lines, benchmarks, any
  safe name that is not a node id. The name a handler sees as `src` is the
  name its connection proved, never a field of a frame.
- Keys: the harness draws one random 32-byte master per cluster and never
  writes it down. From it (HMAC-SHA256) come one key per pair of nodes, one
  per (harness, node) and one per (clients, node). A key file holds only
  what its owner needs: a node's file its pair keys (with itself too: a
  node's roles talk to each other over its own socket, as the DFS's
  chunkserver does to a master on the same node) and its harness and
  client keys; the harness's file its key for every node; the clients' file
  theirs. A node can prove only its own name, a client can pass neither for
  a node nor for the harness, and the harness's key opens no node's place.
- Key files are JSON in the cluster's key directory (the cluster file's
  `auth.keys`, relative to it), written 0600 in a 0700 directory; a key
  file that others may read is refused with one line (like ssh does).
- The handshake, before any frame, on every connection, proves both ends:

      C -> S  hello      {"v": 1, "role", "name", "to", "nonce": 16 random bytes}
      S -> C  challenge  {"nonce": 16 random bytes, "proof": MAC(K, "server", T)}
      C -> S  proof      {"proof": MAC(K, "client", T)}

  K is the key the two share, T the transcript (version, role, name, to,
  both nonces). Each side checks the other's proof (constant-time compare);
  fresh nonces on both sides make every session's keys new, so a recorded
  handshake or frame cannot be replayed.
- After it every frame carries a 16-byte tag after its body: keyed BLAKE2b
  over (the frame's sequence number in its direction, its body), with one
  key per direction derived from K and T. A wrong tag (forged, replayed,
  reordered, spliced) is a `ProtocolError`: the connection is closed.
  Frames are authenticated, not encrypted.
- Handshake messages are framed like frames (4-byte length, msgpack) and at
  most `HANDSHAKE_MAX_BYTES`; anything else is an `AuthError`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from systems.runtime.api import ProtocolError, check_node_id

ROLES = ("node", "harness", "client")
VERSION = 1
NONCE_BYTES = 16
KEY_BYTES = 32
TAG_BYTES = 16
HANDSHAKE_MAX_BYTES = 512
"""Largest handshake message: an unauthenticated peer can make a node buffer no more than this."""
_HEADER = struct.Struct(">I")
_SEQ = struct.Struct(">Q")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AuthError(ProtocolError):
    """The peer did not prove who it is (or sent something that is not a handshake)."""


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names it and says why."""


# -- keys -----------------------------------------------------------------------------------------

def _derive(master: bytes, *parts: str) -> bytes:
    return hmac.digest(master, "\x00".join(("picluster-key", *parts)).encode(), "sha256")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one party holds: its role, its name (nodes only: the others name their endpoint) and keys.

    `peers`: node -> the key shared with it (used to connect to it, and, on a node, to check a
    node that connects). `roles`: on a node, "harness" and "client" -> the key those roles use."""

    role: str
    name: str = ""
    peers: dict[str, bytes] = field(default_factory=dict)
    roles: dict[str, bytes] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "version": VERSION, "role": self.role, "name": self.name,
            "peers": {n: k.hex() for n, k in sorted(self.peers.items())},
            "roles": {r: k.hex() for r, k in sorted(self.roles.items())},
        }, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> Credentials:
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("version") != VERSION or doc.get("role") not in ROLES:
                raise ValueError("not a version-1 key file")
            peers = {str(n): bytes.fromhex(k) for n, k in dict(doc.get("peers", {})).items()}
            roles = {str(r): bytes.fromhex(k) for r, k in dict(doc.get("roles", {})).items()}
            name = str(doc.get("name", ""))
        except (ValueError, TypeError, AttributeError) as e:
            raise KeyFileError(f"key file {source} is not valid: {e}") from None
        if any(len(k) != KEY_BYTES for k in (*peers.values(), *roles.values())):
            raise KeyFileError(f"key file {source} holds a key that is not {KEY_BYTES} bytes")
        if doc["role"] == "node" and not name:
            raise KeyFileError(f"key file {source} is a node's but names no node")
        return cls(doc["role"], name, peers, roles)


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    """Every key file of one cluster, made from one master that is then forgotten."""

    nodes: dict[str, Credentials]
    harness: Credentials
    client: Credentials

    @classmethod
    def generate(cls, nodes: Iterable[str], master: bytes | None = None) -> ClusterKeys:
        names = sorted(set(nodes))
        for n in names:
            check_node_id(n)
        m = master if master is not None else secrets.token_bytes(KEY_BYTES)

        def pair(a: str, b: str) -> bytes:
            lo, hi = sorted((a, b))
            return _derive(m, "pair", lo, hi)

        per_node = {
            n: Credentials("node", n, {p: pair(n, p) for p in names},
                           {"harness": _derive(m, "harness", n), "client": _derive(m, "client", n)})
            for n in names
        }
        harness = Credentials("harness", "", {n: _derive(m, "harness", n) for n in names})
        client = Credentials("client", "", {n: _derive(m, "client", n) for n in names})
        return cls(per_node, harness, client)

    def files(self) -> dict[str, str]:
        """Key file name (in the key directory) -> its text."""
        out = {node_key_file(n): c.to_json() for n, c in self.nodes.items()}
        out[HARNESS_KEY_FILE] = self.harness.to_json()
        out[CLIENT_KEY_FILE] = self.client.to_json()
        return out


HARNESS_KEY_FILE = "harness.key"
CLIENT_KEY_FILE = "client.key"


def node_key_file(node: str) -> str:
    return f"node-{check_node_id(node)}.key"


def write_key_files(key_dir: Path, files: dict[str, str]) -> None:
    """Write key files owner-only (0600) into `key_dir` (made or tightened to 0700)."""
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)
    for name, text in files.items():
        path = key_dir / name
        tmp = key_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)


def load_key_file(path: Path) -> Credentials:
    """Read a key file, refusing one that anybody but its owner may read or write. Raises KeyFileError."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077:
            raise KeyFileError(f"key file {path} is open to others (mode {stat.filemode(st.st_mode)}); "
                               f"run: chmod 600 {path}")
        text = os.read(fd, 1 << 20).decode("utf-8", errors="replace")
    finally:
        os.close(fd)
    return Credentials.from_json(text, str(path))


def check_client_name(name: str, nodes: Iterable[str]) -> str:
    """A harness or client endpoint's name: safe characters, and no node's id."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"endpoint name {name!r} must be 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)")
    if name in set(nodes):
        raise ValueError(f"endpoint name {name!r} is a node's id")
    return name


# -- sessions ---------------------------------------------------------------------------------------

class Session:
    """An authenticated connection's frame sealing: the peer's proven name and role, keys per direction."""

    __slots__ = ("_rx_key", "_rx_seq", "_tx_key", "_tx_seq", "name", "role")

    def __init__(self, name: str, role: str, tx_key: bytes, rx_key: bytes) -> None:
        self.name = name
        self.role = role
        self._tx_key, self._rx_key = tx_key, rx_key
        self._tx_seq = 0
        self._rx_seq = 0

    def seal(self, frame: bytes) -> bytes:
        """An encoded frame (4-byte length + body) -> the same frame with its tag after the body."""
        body = memoryview(frame)[4:]
        h = hashlib.blake2b(_SEQ.pack(self._tx_seq), key=self._tx_key, digest_size=TAG_BYTES)
        h.update(body)
        self._tx_seq += 1
        return b"".join((_HEADER.pack(len(body) + TAG_BYTES), body, h.digest()))

    def open(self, payload: bytes) -> memoryview:
        """A received frame's body with its tag -> the body (a view: no copy), or ProtocolError when the
        tag is wrong."""
        if len(payload) <= TAG_BYTES:
            raise ProtocolError("authenticated frame too short for its tag")
        body = memoryview(payload)[:-TAG_BYTES]
        h = hashlib.blake2b(_SEQ.pack(self._rx_seq), key=self._rx_key, digest_size=TAG_BYTES)
        h.update(body)
        if not hmac.compare_digest(h.digest(), payload[-TAG_BYTES:]):
            raise ProtocolError("frame tag does not verify (forged, replayed or damaged)")
        self._rx_seq += 1
        return body


# -- the handshake ----------------------------------------------------------------------------------

def _frame(obj: Any) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


def _transcript(role: str, name: str, to: str, nonce_c: bytes, nonce_s: bytes) -> bytes:
    return msgpack.packb(["picluster-auth", VERSION, role, name, to, nonce_c, nonce_s], use_bin_type=True)


def _mac(key: bytes, label: str, transcript: bytes) -> bytes:
    return hmac.digest(key, label.encode() + b"\x00" + transcript, "sha256")


def _session(key: bytes, transcript: bytes, name: str, role: str, *, client_side: bool) -> Session:
    c2s, s2c = _mac(key, "c2s", transcript), _mac(key, "s2c", transcript)
    return Session(name, role, c2s, s2c) if client_side else Session(name, role, s2c, c2s)


class Handshake:
    """One side's handshake as a state machine: feed it bytes, get bytes to send; it ends in a Session.

    The connecting side (`to` = the node it dials) starts with `hello()`; the accepting side
    (`to` = None) only answers. `feed` returns (bytes to send, the session once proven, bytes
    that came after the handshake: the first frames). Anything wrong raises AuthError."""

    def __init__(self, creds: Credentials, *, name: str, to: str | None, nodes: Iterable[str],
                 nonce: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.creds = creds
        self.name = name
        self.to = to
        self.nodes = frozenset(nodes)
        self._nonce = nonce
        self._buf = bytearray()
        self._state = "start"
        self._key = b""
        self._transcript = b""
        self._peer: tuple[str, str] = ("", "")
        self._nonce_c = b""

    @property
    def client_side(self) -> bool:
        return self.to is not None

    def hello(self) -> bytes:
        assert self.to is not None and self._state == "start"
        key = self.creds.peers.get(self.to)
        if key is None:
            raise AuthError(f"no key for node {self.to!r} in this endpoint's key file")
        self._key = key
        self._nonce_c = self._nonce(NONCE_BYTES)
        self._state = "await-challenge"
        return _frame({"v": VERSION, "role": self.creds.role, "name": self.name, "to": self.to,
                       "nonce": self._nonce_c})

    def feed(self, data: bytes) -> tuple[bytes, Session | None, bytes]:
        self._buf += data
        out = b""
        while True:
            if len(self._buf) < 4:
                return out, None, b""
            (n,) = _HEADER.unpack_from(self._buf)
            if n == 0 or n > HANDSHAKE_MAX_BYTES:
                raise AuthError(f"handshake message of {n} bytes (expected 1..{HANDSHAKE_MAX_BYTES}): "
                                f"the peer does not speak the authenticated protocol")
            if len(self._buf) < 4 + n:
                if len(self._buf) > 4 + HANDSHAKE_MAX_BYTES:
                    raise AuthError("handshake too long")
                return out, None, b""
            msg = self._decode(bytes(self._buf[4 : 4 + n]))
            del self._buf[: 4 + n]
            reply, session = self._step(msg)
            out += reply
            if session is not None:
                rest, self._buf = bytes(self._buf), bytearray()
                return out, session, rest

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        try:
            msg = msgpack.unpackb(body, raw=False)
        except Exception as e:  # msgpack raises several unrelated types
            raise AuthError(f"undecodable handshake message: {type(e).__name__}") from None
        if not isinstance(msg, dict):
            raise AuthError("handshake message is not a map")
        return msg

    def _step(self, msg: dict[str, Any]) -> tuple[bytes, Session | None]:
        match self._state:
            case "start" if not self.client_side:
                return self._on_hello(msg), None
            case "await-challenge":
                return self._on_challenge(msg)
            case "await-proof":
                return b"", self._on_proof(msg)
        raise AuthError(f"unexpected handshake message in state {self._state}")

    def _on_hello(self, msg: dict[str, Any]) -> bytes:
        v, role, name, to, nonce_c = (msg.get(k) for k in ("v", "role", "name", "to", "nonce"))
        if v != VERSION:
            raise AuthError(f"handshake version {v!r} (this node speaks {VERSION})")
        if not (isinstance(role, str) and isinstance(name, str) and isinstance(to, str)
                and isinstance(nonce_c, bytes) and len(nonce_c) == NONCE_BYTES):
            raise AuthError("malformed hello")
        if to != self.name:
            raise AuthError(f"hello is for {to!r}, this is {self.name!r}")
        key = self._key_for(role, name)
        nonce_s = self._nonce(NONCE_BYTES)
        self._key = key
        self._peer = (name, role)
        self._transcript = _transcript(role, name, to, nonce_c, nonce_s)
        self._state = "await-proof"
        return _frame({"nonce": nonce_s, "proof": _mac(key, "server", self._transcript)})

    def _key_for(self, role: str, name: str) -> bytes:
        if role == "node":
            if name not in self.nodes:
                raise AuthError(f"{name!r} is not a node of this cluster")
            key = self.creds.peers.get(name)
        elif role in ("harness", "client"):
            try:
                check_client_name(name, self.nodes)
            except ValueError as e:
                raise AuthError(str(e)) from None
            key = self.creds.roles.get(role)
        else:
            raise AuthError(f"unknown role {role!r}")
        if key is None:
            raise AuthError(f"no key for role {role} name {name!r}")
        return key

    def _on_challenge(self, msg: dict[str, Any]) -> tuple[bytes, Session]:
        nonce_s, proof = msg.get("nonce"), msg.get("proof")
        if not (isinstance(nonce_s, bytes) and len(nonce_s) == NONCE_BYTES and isinstance(proof, bytes)):
            raise AuthError("malformed challenge")
        assert self.to is not None
        t = _transcript(self.creds.role, self.name, self.to, self._nonce_c, nonce_s)
        if not hmac.compare_digest(proof, _mac(self._key, "server", t)):
            raise AuthError(f"{self.to} did not prove it holds our shared key (an impostor, or another cluster's)")
        self._state = "done"
        session = _session(self._key, t, self.to, "node", client_side=True)
        return _frame({"proof": _mac(self._key, "client", t)}), session

    def _on_proof(self, msg: dict[str, Any]) -> Session:
        proof = msg.get("proof")
        if not isinstance(proof, bytes) or not hmac.compare_digest(proof, _mac(self._key, "client", self._transcript)):
            name, role = self._peer
            raise AuthError(f"{role} {name!r} did not prove it holds its key")
        self._state = "done"
        name, role = self._peer
        return _session(self._key, self._transcript, name, role, client_side=False)


def main(argv: list[str] | None = None) -> None:
    """`python -m systems.runtime.real_auth DIR NODE...`: fresh keys for a cluster, written owner-only into DIR."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m systems.runtime.real_auth",
                                 description="Make a cluster's key files (then add \"auth\": {\"keys\": DIR} "
                                             "to the cluster file, DIR relative to it).")
    ap.add_argument("dir", help="the key directory (made 0700; files 0600)")
    ap.add_argument("nodes", nargs="+", help="every node id of the cluster")
    args = ap.parse_args(argv)
    try:
        keys = ClusterKeys.generate(args.nodes)
    except ValueError as e:
        sys.stderr.write(f"keys: error: {e}\n")
        raise SystemExit(2) from None
    write_key_files(Path(args.dir), keys.files())
    print(f"wrote {len(keys.files())} key files to {args.dir}: give each node only its node-<id>.key; "
          f"{HARNESS_KEY_FILE} controls faults, {CLIENT_KEY_FILE} is for command lines")


if __name__ == "__main__":
    main()
