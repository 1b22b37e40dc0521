"""The SQLite schema, its versions (`PRAGMA user_version`) and the migrations between them.

Version 1 is the wave-1 layout (sessions + events), written without a `user_version` (0):
a file with a `sessions` table and version 0 is version 1. Version 2 adds the lease owner
column and the `instances` table, version 3 each session's `metrics`, version 4 packs several
messages into one log row (`events.n`). Each migration runs in its own `BEGIN IMMEDIATE`
transaction, so two daemons opening an old file at once upgrade it once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

import orjson

from bridge.store.base import (
    SCHEMA_VERSION,
    Instance,
    SchemaTooNew,
    SessionRecord,
    owner_gone,
    upgrade_blocked,
)

V1 = """
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

V2 = """
ALTER TABLE sessions ADD COLUMN owner TEXT;
CREATE INDEX sessions_by_owner ON sessions(owner) WHERE owner IS NOT NULL;
CREATE TABLE instances (
  id TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  transport TEXT NOT NULL,
  ws_url TEXT,
  pid_started_at REAL NOT NULL,
  started_at TEXT NOT NULL,
  heartbeat_at REAL NOT NULL,
  expires_at REAL NOT NULL
);
"""

# Version 3: each session's usage counters (JSON), so they outlive the daemon that counted.
V3 = """
ALTER TABLE sessions ADD COLUMN metrics TEXT;
"""

# Version 4: several messages per log row (bridge/store/packing.py): `n` is how many, the
# row's `seq` its last one's. Older rows are one message each; the default says so, and
# SQLite adds such a column without rewriting the table.
V4 = """
ALTER TABLE events ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
"""

# MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: dict[int, str] = {0: V1, 1: V2, 2: V3, 3: V4}
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(db: sqlite3.Connection, path: str) -> int:
    """Bring the file to SCHEMA_VERSION; returns the version it had. Refuses a newer one."""
    found = _version(db)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the session store {path} has schema version {found}, newer than this agent-bridge "
            f"understands ({SCHEMA_VERSION}): upgrade agent-bridge, or use another --state-dir"
        )
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _version(db)  # another daemon may have migrated meanwhile
            if version >= SCHEMA_VERSION:
                db.execute("COMMIT")
                return found
            if version >= 2 and (live := _live_instances(db)):
                raise upgrade_blocked(path, live, version)
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _live_instances(db: sqlite3.Connection) -> list[Instance]:
    # Registered daemons (version 2 added the table) that still hold their registration.
    rows = db.execute(f"SELECT {INSTANCE_COLUMNS} FROM instances").fetchall()
    return [inst for inst in map(decode_instance, rows) if not owner_gone(inst)]


def _version(db: sqlite3.Connection) -> int:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sessions'").fetchone():
        return 1  # wave 1 wrote no version
    return version


JSON_FIELDS = {"additional_directories", "mcp_servers", "metrics"}
COLUMNS = [
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
    "owner",
    "metrics",
]
SESSION_COLUMNS = ",".join(COLUMNS)
INSTANCE_COLUMNS = "id,pid,host,transport,ws_url,pid_started_at,started_at,heartbeat_at,expires_at"


def encode(col: str, value: Any) -> Any:
    if col not in COLUMNS:
        raise ValueError(f"unknown session column {col!r}")
    if col in JSON_FIELDS:
        return None if value is None else orjson.dumps(value).decode()
    if isinstance(value, bool):
        return int(value)
    return value


def decode(row: tuple[Any, ...]) -> SessionRecord:
    data = dict(zip(COLUMNS, row, strict=True))
    for col in JSON_FIELDS:
        if data[col] is not None:
            data[col] = orjson.loads(data[col])
    data["mcp_servers"] = data["mcp_servers"] or []
    data["archived"] = bool(data["archived"])
    data["deleted"] = bool(data["deleted"])
    return SessionRecord(**data)


def decode_instance(row: tuple[Any, ...]) -> Instance:
    i, pid, host, transport, ws_url, pid_started, started, beat, expires = row
    return Instance(
        i, int(pid), host, transport, ws_url, float(pid_started), started, float(beat), float(expires)
    )


def instance_values(inst: Instance) -> tuple[Any, ...]:
    return (
        inst.id,
        inst.pid,
        inst.host,
        inst.transport,
        inst.ws_url,
        inst.pid_started_at,
        inst.started_at,
        inst.heartbeat_at,
        inst.expires_at,
    )


Txn = Callable[[sqlite3.Connection], Any]


def purge_events(db: sqlite3.Connection, session_id: str) -> int:
    """Delete a session's log rows (in the caller's transaction); returns how many messages
    they held. Counted first: `DELETE … RETURNING` needs SQLite 3.35, newer than the
    libsqlite3 some Pythons are linked with."""
    (count,) = db.execute("SELECT COALESCE(SUM(n), 0) FROM events WHERE session_id = ?", (session_id,)).fetchone()
    db.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
    return int(count)


def wal_mode(db: sqlite3.Connection, timeout: float) -> None:
    """`PRAGMA journal_mode=WAL`, retried while the file is locked (up to `timeout` seconds).

    Two daemons creating one new file at once: SQLite answers the switch to WAL with
    "database is locked" at once, without calling the busy handler, while the other process
    holds its lock for the same switch (seen: 36 failures in 200 paired opens)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(0.05, delay * 2)
