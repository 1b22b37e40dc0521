"""The PostgreSQL schema and its versioned migrations.

Version 1 is the catalog and the log as the first SQLite store had them. Version 2 moves the
allocation of `seq` into the database (`log_heads`, one row per session, bumped in the same
statement that inserts the rows) and adds the daemons' registrations (`instances`) and each
session's `owner` (its lease is its owner's registration); version 3 the sessions' `metrics`,
version 4 several messages per log row (`events.n`). A daemon opening an older database
applies the missing steps in one transaction under an advisory lock (two daemons starting at
once migrate once); a newer one is refused, so an old daemon never writes a schema it does
not know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.store.base import SCHEMA_VERSION, Instance, SchemaTooNew, owner_gone, upgrade_blocked

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
  additional_directories JSON,
  mcp_servers JSON NOT NULL DEFAULT '[]',
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
CREATE TABLE instances (
  id TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  transport TEXT NOT NULL,
  ws_url TEXT,
  pid_started_at DOUBLE PRECISION NOT NULL,
  started_at TEXT NOT NULL,
  heartbeat_at DOUBLE PRECISION NOT NULL,
  expires_at DOUBLE PRECISION NOT NULL
);
ALTER TABLE sessions ADD COLUMN owner TEXT;
CREATE INDEX sessions_by_owner ON sessions (owner) WHERE owner IS NOT NULL;
"""

# Version 3: each session's usage counters, so they outlive the daemon that counted them.
V3 = """
ALTER TABLE sessions ADD COLUMN metrics JSON;
"""

# Version 4: several messages per log row (bridge/store/packing.py): `n` is how many, the
# row's `seq` its last one's; older rows are one message each (a constant default: no rewrite).
V4 = """
ALTER TABLE events ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
"""

MIGRATIONS: tuple[str, ...] = (V1, V2, V3, V4)
LATEST = len(MIGRATIONS)


async def migrate(conn: psycopg.AsyncConnection[Any], where: str, upto: int = LATEST) -> int:
    """Bring the database to schema version `upto` (the latest by default; tests stop
    earlier to make an old database), one transaction per step. Returns the version found."""
    found = -1
    while True:
        async with conn.transaction():
            # Every step re-reads the version under the lock: a daemon that waited for
            # another's migration sees it done and applies nothing twice.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS bridge_schema (version INTEGER NOT NULL)")
            row = await (await conn.execute("SELECT version FROM bridge_schema")).fetchone()
            version = int(row[0]) if row else 0
            found = version if found < 0 else found
            if version > LATEST:
                raise SchemaTooNew(
                    f"the session store {where} has schema version {version}, newer than this "
                    f"agent-bridge knows ({LATEST}): upgrade agent-bridge, or use another database"
                )
            if version >= upto:
                return found
            if version >= 2 and (live := await _live_instances(conn)):
                raise upgrade_blocked(where, live, version)
            await conn.execute(MIGRATIONS[version].encode())
            if row is None:
                await conn.execute("INSERT INTO bridge_schema (version) VALUES (%s)", (version + 1,))
            else:
                await conn.execute("UPDATE bridge_schema SET version = %s", (version + 1,))


async def _live_instances(conn: psycopg.AsyncConnection[Any]) -> list[Instance]:
    # Registered daemons (version 2 added the table) still holding their registration, on the
    # server's clock as the leases are.
    from bridge.store.pg_catalog import all_instances

    instances, now = await all_instances(conn)
    return [inst for inst in instances if not owner_gone(inst, now)]


async def version(conn: psycopg.AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT version FROM bridge_schema")).fetchone()
    return int(row[0]) if row else 0


assert LATEST == SCHEMA_VERSION, "the PostgreSQL and SQLite schemas move together"
