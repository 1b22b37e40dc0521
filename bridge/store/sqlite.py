"""SQLite store: WAL journal, one writer, batched commits.

Durability policy (see spec/durability.md): `append()` assigns the seq in memory and
queues the row; `flush()` commits every queued row in one transaction on a worker thread.
The daemon flushes before it writes any batch to a client, so a client never sees a
message that is not committed. `synchronous=NORMAL` in WAL mode: a commit survives the
daemon being killed (SIGKILL) — it is in the WAL file — and is fsynced at the next
checkpoint; only a power loss may lose the last commits.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson

from bridge.errors import StoreError
from bridge.store.base import Direction, Event, SessionRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  agent TEXT NOT NULL,
  agent_session_id TEXT,
  cwd TEXT NOT NULL,
  additional_directories TEXT,
  mcp_servers TEXT NOT NULL DEFAULT '[]',
  title TEXT,
  archived INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'idle',
  parent_id TEXT,
  deleted INTEGER NOT NULL DEFAULT 0,
  agent_path TEXT,
  agent_version TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions(updated_at DESC, id);
CREATE TABLE IF NOT EXISTS events (
  session_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  at TEXT NOT NULL,
  direction TEXT NOT NULL,
  message BLOB NOT NULL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
"""

_JSON_FIELDS = {"additional_directories", "mcp_servers"}
_COLUMNS = [
    "id",
    "agent",
    "agent_session_id",
    "cwd",
    "additional_directories",
    "mcp_servers",
    "title",
    "archived",
    "status",
    "parent_id",
    "deleted",
    "agent_path",
    "agent_version",
    "created_at",
    "updated_at",
]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the session store {path}: {exc}") from exc
        # One connection, guarded: reads happen on the event loop, batch writes on a worker.
        self._lock = threading.Lock()
        self._seq: dict[str, int] = {}
        self._queue: list[tuple[str, int, str, str, bytes]] = []
        self._flush_lock = anyio.Lock()
        self._failed: StoreError | None = None

    # -- catalog -----------------------------------------------------------------------------
    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"session store error: {exc}") from exc

    def create_session(self, rec: SessionRecord) -> None:
        values = [self._encode(c, getattr(rec, c)) for c in _COLUMNS]
        self._exec(
            f"INSERT INTO sessions ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})",
            tuple(values),
        )
        self._seq[rec.id] = 0

    def get_session(self, session_id: str) -> SessionRecord | None:
        rows = self._exec(f"SELECT {','.join(_COLUMNS)} FROM sessions WHERE id = ?", (session_id,))
        return self._decode(rows[0]) if rows else None

    def update_session(self, session_id: str, **fields: Any) -> None:
        if not fields:
            return
        fields.setdefault("updated_at", now_iso())
        sets = ",".join(f"{k} = ?" for k in fields)
        args = tuple(self._encode(k, v) for k, v in fields.items())
        self._exec(f"UPDATE sessions SET {sets} WHERE id = ?", (*args, session_id))

    def list_sessions(
        self, *, cwd: str | None, offset: int, limit: int, include_archived: bool = True
    ) -> list[SessionRecord]:
        where = ["deleted = 0"]
        args: list[Any] = []
        if cwd is not None:
            where.append("cwd = ?")
            args.append(cwd)
        if not include_archived:
            where.append("archived = 0")
        rows = self._exec(
            f"SELECT {','.join(_COLUMNS)} FROM sessions WHERE {' AND '.join(where)} "
            "ORDER BY updated_at DESC, id LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [self._decode(r) for r in rows]

    def sessions_with_status(self, statuses: tuple[str, ...]) -> list[SessionRecord]:
        marks = ",".join("?" * len(statuses))
        rows = self._exec(f"SELECT {','.join(_COLUMNS)} FROM sessions WHERE status IN ({marks})", statuses)
        return [self._decode(r) for r in rows]

    @staticmethod
    def _encode(col: str, value: Any) -> Any:
        if col in _JSON_FIELDS:
            return None if value is None else orjson.dumps(value).decode()
        if isinstance(value, bool):
            return int(value)
        return value

    @staticmethod
    def _decode(row: tuple[Any, ...]) -> SessionRecord:
        data = dict(zip(_COLUMNS, row, strict=True))
        for col in _JSON_FIELDS:
            if data[col] is not None:
                data[col] = orjson.loads(data[col])
        data["mcp_servers"] = data["mcp_servers"] or []
        data["archived"] = bool(data["archived"])
        data["deleted"] = bool(data["deleted"])
        return SessionRecord(**data)

    # -- event log -----------------------------------------------------------------------------
    def append(self, session_id: str, direction: Direction, message: bytes) -> int:
        if self._failed is not None:
            raise self._failed
        seq = self._seq.get(session_id)
        if seq is None:
            rows = self._exec("SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id = ?", (session_id,))
            seq = int(rows[0][0])
        seq += 1
        self._seq[session_id] = seq
        self._queue.append((session_id, seq, now_iso(), direction, message))
        return seq

    async def flush(self) -> None:
        if not self._queue:
            return
        async with self._flush_lock:
            if not self._queue:
                return
            batch, self._queue = self._queue, []
            await anyio.to_thread.run_sync(self._write, batch)

    def flush_sync(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            self._write(batch)

    def _write(self, batch: list[tuple[str, int, str, str, bytes]]) -> None:
        try:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO events (session_id, seq, at, direction, message) VALUES (?,?,?,?,?)", batch
                )
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with self._lock:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            # The seqs handed out are now unusable: forget them so they are re-read from disk,
            # and refuse further appends until the daemon is restarted on a healthy store.
            self._seq.clear()
            self._failed = StoreError(f"could not write the event log: {exc}")
            raise self._failed from exc

    def events(self, session_id: str, after: int, limit: int) -> list[Event]:
        rows = self._exec(
            "SELECT seq, at, direction, message FROM events WHERE session_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (session_id, after, limit),
        )
        return [Event(int(r[0]), r[1], r[2], bytes(r[3])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
