"""SQLite store: WAL journal, one writer, batched commits.

Durability policy (see spec/durability.md): `append()` assigns the seq in memory and
queues the row; `flush()` commits every queued row in one transaction on a worker thread.
The daemon flushes before it writes any batch to a client, so a client never sees a
message that is not committed. `synchronous=NORMAL` in WAL mode: a commit survives the
daemon being killed (SIGKILL) — it is in the WAL file — and is fsynced at the next
checkpoint; only a power loss may lose the last commits.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson

from bridge.errors import StoreError
from bridge.store.base import Direction, Event, SessionRecord

log = logging.getLogger(__name__)
WRITE_ATTEMPTS = 6
# Batches up to this many rows are committed on the event loop; larger ones on a worker thread.
INLINE_ROWS = 32
BUSY_TIMEOUT_MS = 5000

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


_INSERT_ONE = "INSERT INTO events (session_id, seq, at, direction, message) VALUES (?,?,?,?,?)"
_ROWS_PER_INSERT = 199  # 5 parameters a row: stays under SQLite's historical 999-variable limit
_INSERT_MANY = _INSERT_ONE.replace("(?,?,?,?,?)", ",".join(["(?,?,?,?,?)"] * _ROWS_PER_INSERT))

_iso_cache: tuple[int, str] = (-1, "")


def now_iso() -> str:
    # Runs for every logged message (thousands per turn): format only when the millisecond
    # changes; formatting a datetime costs ~2 µs, the clock read ~0.1 µs.
    global _iso_cache
    ms = time.time_ns() // 1_000_000
    cached_ms, iso = _iso_cache
    if ms != cached_ms:
        stamp = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
        iso = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        _iso_cache = (ms, iso)
    return iso


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            if path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Deleted rows (session/delete) are overwritten, not left in free pages.
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the session store {path}: {exc}; move it aside or run `agent-bridge doctor`"
            ) from exc
        # One connection, guarded: reads happen on the event loop, batch writes on a worker.
        self._lock = threading.Lock()
        self._seq: dict[str, int] = {}
        self._queue: list[tuple[str, int, str, str, bytes]] = []
        # fast_acquire: an uncontended flush (every client write) takes it without a yield.
        self._flush_lock = anyio.Lock(fast_acquire=True)
        self.failed: StoreError | None = None
        self.dropped = 0

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

    def update_session(self, session_id: str, *, touch: bool = True, **fields: Any) -> None:
        """`touch=False` for bookkeeping (status on restart or close) that must not reorder
        `session/list`, which is by last activity."""
        if not fields:
            return
        if touch:
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
        if self.failed is not None:
            # Degraded: the log can no longer be written. Say so where it is read
            # (`events`, `info`, doctor) instead of stopping the user's turn.
            self.dropped += 1
            return 0
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
            if len(batch) <= INLINE_ROWS:
                # A few rows commit in ~0.1 ms: cheaper than the two thread switches of a
                # worker hop, which every request/answer pays before its client write.
                # Never wait for a lock on the event loop: locked means the worker retries.
                self._db.execute("PRAGMA busy_timeout = 0")
                try:
                    self._write(batch)
                    return
                except sqlite3.OperationalError as exc:
                    log.warning("event log write failed (%s); retrying", exc)
                except sqlite3.Error as exc:
                    self._degrade(exc, batch)
                    return
                finally:
                    self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            delay = 0.05
            for _attempt in range(WRITE_ATTEMPTS):
                try:
                    await anyio.to_thread.run_sync(self._write, batch)
                    return
                except sqlite3.OperationalError as exc:
                    # Locked by another process, or a transient I/O error: retry with backoff.
                    log.warning("event log write failed (%s); retrying", exc)
                    await anyio.sleep(delay)
                    delay = min(1.0, delay * 2)
                except sqlite3.Error as exc:
                    self._degrade(exc, batch)
                    return
            self._degrade(sqlite3.OperationalError("write kept failing"), batch)

    def _degrade(self, exc: Exception, batch: list[tuple[str, int, str, str, bytes]]) -> None:
        self.failed = StoreError(
            f"the event log in {self.path} could not be written ({exc}); sessions keep running but their "
            "history is incomplete from here on — check free disk space and run `agent-bridge doctor`"
        )
        self.dropped += len(batch)
        self._queue.clear()
        log.error("%s", self.failed.message)

    def flush_sync(self) -> None:
        batch, self._queue = self._queue, []
        if batch and self.failed is None:
            try:
                self._write(batch)
            except sqlite3.Error as exc:
                self._degrade(exc, batch)

    def _write(self, batch: list[tuple[str, int, str, str, bytes]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                # Rows go in _ROWS_PER_INSERT at a time: sqlite3 drops and retakes the GIL
                # around every statement step, so one row per step (executemany) makes the
                # event loop and this thread trade the GIL thousands of times per batch.
                full = len(batch) - len(batch) % _ROWS_PER_INSERT
                for i in range(0, full, _ROWS_PER_INSERT):
                    self._db.execute(_INSERT_MANY, [v for row in batch[i : i + _ROWS_PER_INSERT] for v in row])
                if full < len(batch):
                    self._db.executemany(_INSERT_ONE, batch[full:])
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @classmethod
    def open_or_degrade(cls, path: str) -> SqliteStore:
        """The store at `path`, or — when it cannot be opened (corrupt, unreadable) — an
        in-memory one marked failed, so the daemon still serves and says why."""
        try:
            return cls(path)
        except StoreError as exc:
            log.error("%s", exc.message)
            store = cls(":memory:")
            store.failed = exc
            return store

    def events(self, session_id: str, after: int, limit: int) -> list[Event]:
        rows = self._exec(
            "SELECT seq, at, direction, message FROM events WHERE session_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (session_id, after, limit),
        )
        return [Event(int(r[0]), r[1], r[2], bytes(r[3])) for r in rows]

    async def purge_session(self, session_id: str) -> None:
        # Rows still queued for this session must not be written after the delete.
        await self.flush()
        self._queue = [row for row in self._queue if row[0] != session_id]
        self._seq.pop(session_id, None)
        try:
            await anyio.to_thread.run_sync(self._purge, session_id)
        except sqlite3.Error as exc:
            raise StoreError(f"session store error: {exc}") from exc

    def _purge(self, session_id: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
                self._db.execute("UPDATE sessions SET mcp_servers = '[]', deleted = 1 WHERE id = ?", (session_id,))
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            # The old pages live on in the WAL until a checkpoint: copy them over (zeroed,
            # secure_delete) and truncate it, so the erased rows are gone from the files too.
            # Best effort: a reader of another process may hold the WAL back for now.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._db.close()
