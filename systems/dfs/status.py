"""The DFS's status view: chunkservers, chunks that need care, and leases in force (base.status explains views).

Every node answers `status` (systems/dfs/node.py) with its chunkserver's
account; the master's answer also carries `master_state`, the master's own
view (files, chunk versions, replica locations, leases, fsck).

Rules:

- The chunkservers table has one row per node from its own reply: its role,
  whether the master counts it alive (from the master's reply; "?" when the
  master did not answer), the replicas it holds and their bytes, replicas it
  found damaged, the leases it holds as primary now, and bytes pushed to it
  and not yet applied. A node that did not answer is shown unreachable with
  the reason.
- The chunks table is the master's view, listing only chunks that need care
  (under-replicated, lost, stale or corrupt replicas) or hold a lease now,
  at most `MAX_CHUNK_ROWS` of them (a note counts the rest). A lease is "in
  force" while the master believes it unexpired; when the master holds
  several for a chunk (history), the newest counts.
- Notes: the master and what fsck says (healthy, or how many chunks are
  under-replicated, lost, stale, corrupt), the master's grace period after
  a restart, chunkservers the master counts dead, and every silent node.
  With the master silent, the chunks table is empty and a note says that
  placement and leases are unknown.
- Pure: a function of the replies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from base.status import BAD, DIM, GOOD, WARN, Cell, NodeReply, Table, row, silent_note, unreachable_row

METHOD = "status"
REQUEST: Any = {}

SERVER_COLUMNS = ("node", "role", "master sees it", "replicas", "bytes", "damaged", "primary for", "buffered")
CHUNK_COLUMNS = ("chunk", "file", "version", "current on", "state", "lease")
MAX_CHUNK_ROWS = 12


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    x = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        x /= 1024
        if x < 1024 or unit == "GiB":
            break
    return f"{x:.1f} {unit}"


def _master_state(answered: Mapping[str, Mapping[str, Any]]) -> tuple[str | None, Mapping[str, Any] | None]:
    """(the master's id, its own view) from whichever node answered as master; else the id the others name."""
    for n, st in sorted(answered.items()):
        ms = st.get("master_state")
        if isinstance(ms, Mapping):
            return n, ms
    named = sorted({str(st["master"]) for st in answered.values() if st.get("master")})
    return (named[0] if named else None), None


def tables(replies: Mapping[str, NodeReply]) -> list[Table]:
    answered = {n: r.reply for n, r in replies.items() if r.ok and isinstance(r.reply, Mapping)}
    master, ms = _master_state(answered)
    return [_servers(replies, answered, master, ms), _chunks(replies, answered, master, ms)]


def _servers(replies: Mapping[str, NodeReply], answered: Mapping[str, Mapping[str, Any]], master: str | None,
             ms: Mapping[str, Any] | None) -> Table:
    alive = set(ms.get("alive", [])) if ms is not None else None
    rows = []
    for node in sorted(replies):
        st = answered.get(node)
        if st is None:
            rows.append(unreachable_row(replies[node], len(SERVER_COLUMNS)))
            continue
        cs = st.get("chunkserver") if isinstance(st.get("chunkserver"), Mapping) else {}
        replicas = cs.get("replicas") if isinstance(cs.get("replicas"), Mapping) else {}
        held = sum(int(r.get("length", 0) or 0) for r in replicas.values() if isinstance(r, Mapping))
        damaged = sum(1 for r in replicas.values() if isinstance(r, Mapping) and r.get("damaged"))
        primary = sorted({int(x["handle"]) for x in cs.get("leases", []) if isinstance(x, Mapping)
                          and isinstance(x.get("expires_in_s"), int | float) and x["expires_in_s"] > 0})
        role = str(st.get("role", "?"))
        seen = Cell("?", DIM) if alive is None else (Cell("alive", GOOD) if node in alive else Cell("dead", BAD))
        buffered = int(cs.get("buffered_bytes", 0) or 0)
        rows.append(row(
            node,
            Cell(role, GOOD if role == "master" else ""),
            seen,
            str(len(replicas)),
            _size(held),
            Cell(str(damaged), BAD if damaged else DIM),
            Cell(" ".join(f"#{h}" for h in primary) or "-", "" if primary else DIM),
            Cell(_size(buffered), WARN if buffered else DIM),
        ))
    notes = []
    if alive is not None:
        dead = sorted(n for n in answered if n not in alive)
        if dead:
            notes.append(Cell(f"the master counts {' '.join(dead)} dead (no heartbeat lately)", BAD))
    notes += silent_note({n: r for n, r in replies.items() if n not in answered})
    return Table("dfs: chunkservers, each from its own account", SERVER_COLUMNS, tuple(rows), tuple(notes))


def _chunk_state(handle: str, chunk: Mapping[str, Any], fsck: Mapping[str, Any], goal: int) -> Cell:
    def listed(key: str) -> list[Mapping[str, Any]]:
        return [x for x in fsck.get(key, []) if isinstance(x, Mapping) and str(x.get("handle")) == handle]

    if listed("lost"):
        return Cell("lost: no current replica", BAD)
    corrupt = [str(x.get("node")) for x in listed("corrupt")]
    if corrupt:
        return Cell(f"corrupt on {' '.join(corrupt)}", BAD)
    if listed("under_replicated"):
        return Cell(f"under-replicated {len(chunk.get('current', []))}/{goal}", WARN)
    stale = [str(x.get("node")) for x in listed("stale")]
    if stale:
        return Cell(f"stale on {' '.join(stale)}", WARN)
    return Cell("ok", GOOD)


def _leases(ms: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """handle -> the newest lease the master believes unexpired."""
    out: dict[str, Mapping[str, Any]] = {}
    for lease in ms.get("leases", []):
        if not isinstance(lease, Mapping):
            continue
        left = lease.get("expires_in_s")
        if isinstance(left, int | float) and left > 0:
            h = str(lease.get("handle"))
            if h not in out or lease.get("granted_ago_s", 0) < out[h].get("granted_ago_s", 0):
                out[h] = lease
    return out


def _chunks(replies: Mapping[str, NodeReply], answered: Mapping[str, Mapping[str, Any]], master: str | None,
            ms: Mapping[str, Any] | None) -> Table:
    title = "dfs: chunks that need care or hold a lease (the master's view)"
    if ms is None:
        silent = master is not None and master in replies and not replies[master].ok
        who = f"master {master}" if master else "the master"
        note = Cell(f"{who} {'did not answer' if silent or not master else 'sent no account'}: chunk placement "
                    f"and leases are unknown", BAD)
        return Table(title, CHUNK_COLUMNS, (), (note,))
    fsck = ms.get("fsck") if isinstance(ms.get("fsck"), Mapping) else {}
    goal = int(ms.get("goal", 0) or 0)
    chunks = ms.get("chunks") if isinstance(ms.get("chunks"), Mapping) else {}
    leases = _leases(ms)
    rows = []
    for h in sorted(chunks, key=lambda x: int(x) if str(x).isdigit() else 0):
        c = chunks[h]
        if not isinstance(c, Mapping):
            continue
        state = _chunk_state(str(h), c, fsck, goal)
        lease = leases.get(str(h))
        if state.tone == GOOD and lease is None:
            continue
        lease_cell = (Cell(f"{lease.get('primary')} primary, {float(lease['expires_in_s']):.1f} s left", GOOD)
                      if lease is not None else Cell("-", DIM))
        rows.append(row(f"#{h}", str(c.get("file") or "(deleted)"), str(c.get("version", "?")),
                        " ".join(str(n) for n in c.get("current", [])) or "-", state, lease_cell))
    notes = [_health(master, ms, fsck, goal, len(chunks))]
    if ms.get("grace"):
        notes.append(Cell("the master restarted lately: no leases are granted until its grace period ends", WARN))
    if len(rows) > MAX_CHUNK_ROWS:
        notes.append(Cell(f"and {len(rows) - MAX_CHUNK_ROWS} more chunk(s) not shown", DIM))
    return Table(title, CHUNK_COLUMNS, tuple(rows[:MAX_CHUNK_ROWS]), tuple(notes))


def _health(master: str | None, ms: Mapping[str, Any], fsck: Mapping[str, Any], goal: int, chunks: int) -> Cell:
    files = len(ms.get("files", {}) or {})
    head = f"master {master}: {files} file(s), {chunks} chunk(s), goal {goal}"
    counts = [(len(fsck.get(k, []) or []), word) for k, word in
              (("lost", "lost"), ("corrupt", "corrupt replica(s)"), ("under_replicated", "under-replicated"),
               ("stale", "stale replica(s)"))]
    trouble = [f"{n} {word}" for n, word in counts if n]
    if not trouble:
        return Cell(f"{head}; every chunk at its goal", GOOD)
    bad = bool(fsck.get("lost")) or bool(fsck.get("corrupt"))
    return Cell(f"{head}; {', '.join(trouble)}", BAD if bad else WARN)
