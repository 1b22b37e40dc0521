"""The PostgreSQL schema and its versioned migrations.

Version 1 is the catalog and the log as the first SQLite store had them. Version 2 moves the
allocation of `seq` into the database (`log_heads`, one row per session, bumped in the same
statement that inserts the rows) and adds session leases. A daemon opening an older database
applies the missing steps in one transaction under an advisory lock (two daemons starting at
once migrate once); a newer one is refused, so an old daemon never writes a schema it does
not know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.store.pg_url import StoreUnavailable

if TYPE_CHECKING:
    import psycopg

# Any constant shared by every agent-bridge: serializes migrations across daemons.
MIGRATION_LOCK = 0x61676272  # "agbr"

V1 = """
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  agent TEXT NOT NULL,
  agent_session_id TEXT,
  cwd TEXT NOT NULL,
  additional_directories JSONB,
  mcp_servers JSONB NOT NULL DEFAULT '[]',
  title TEXT,
  archived BOOLEAN NOT NULL DEFAULT false,
  status TEXT NOT NULL DEFAULT 'idle',
  parent_id TEXT,
  deleted BOOLEAN NOT NULL DEFAULT false,
  agent_path TEXT,
  agent_version TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX sessions_by_update ON sessions (updated_at DESC, id);
CREATE TABLE events (
  session_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  at TEXT NOT NULL,
  direction TEXT NOT NULL,
  message BYTEA NOT NULL,
  PRIMARY KEY (session_id, seq)
);
"""

V2 = """
CREATE TABLE log_heads (
  session_id TEXT PRIMARY KEY,
  last_seq BIGINT NOT NULL
);
INSERT INTO log_heads (session_id, last_seq) SELECT session_id, MAX(seq) FROM events GROUP BY session_id;
CREATE TABLE leases (
  session_id TEXT PRIMARY KEY,
  instance TEXT NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  transport TEXT,
  url TEXT,
  acquired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX leases_by_instance ON leases (instance);
"""

MIGRATIONS: tuple[str, ...] = (V1, V2)
LATEST = len(MIGRATIONS)


async def migrate(conn: psycopg.AsyncConnection[tuple[object, ...]], where: str, upto: int = LATEST) -> int:
    """Bring the database to schema version `upto` (the latest by default; tests stop
    earlier to make an old database). Returns the version found before."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS bridge_schema (version INTEGER NOT NULL)")
        row = await (await conn.execute("SELECT version FROM bridge_schema")).fetchone()
        found = int(str(row[0])) if row else 0
        if found > LATEST:
            raise StoreUnavailable(
                f"the session store {where} has schema version {found}, newer than this agent-bridge "
                f"knows ({LATEST}): upgrade agent-bridge, or use another database"
            )
        for version in range(found + 1, upto + 1):
            await conn.execute(MIGRATIONS[version - 1].encode())
        if row is None:
            await conn.execute("INSERT INTO bridge_schema (version) VALUES (%s)", (max(found, upto),))
        elif upto > found:
            await conn.execute("UPDATE bridge_schema SET version = %s", (upto,))
        return found
