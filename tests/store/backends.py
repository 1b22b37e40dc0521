"""The two store backends behind one test interface: a SQLite file, a PostgreSQL database on
the throw-away cluster. Two stores made on one backend are two daemons sharing it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bridge.store import open_store
from bridge.store.base import Store

WAVE1_SESSION = (
    "old-session",
    "fake",
    "/tmp/old",
    "2025-01-01T00:00:00.000Z",
    "2025-01-01T00:00:00.000Z",
)


@dataclass
class Backend:
    name: str
    location: str  # a file path or a postgresql:// URL
    state_dir: Path

    def new(self) -> Store:
        """A store on this backend, not opened yet."""
        return open_store(self.location, str(self.state_dir))

    async def opened(self) -> Store:
        store = self.new()
        await store.open()
        return store

    async def make_version_1(self, events: int) -> None:
        """The first schema, as wave 1 wrote it, holding one session with `events` rows."""
        rows = [
            (WAVE1_SESSION[0], i, "2025-01-01T00:00:00.000Z", "agent", b'{"n":%d}' % i)
            for i in range(1, events + 1)
        ]
        if self.name == "sqlite":
            from bridge.store import sqlite_schema

            db = sqlite3.connect(self.location)
            db.executescript(sqlite_schema.V1)
            db.execute(
                "INSERT INTO sessions (id, agent, cwd, created_at, updated_at) VALUES (?,?,?,?,?)",
                WAVE1_SESSION,
            )
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?)", rows)
            db.commit()
            db.close()
            return
        import psycopg

        from bridge.store import pg_schema

        async with await psycopg.AsyncConnection.connect(self.location, autocommit=True) as conn:
            await pg_schema.migrate(conn, "test", upto=1)
            await conn.execute(
                "INSERT INTO sessions (id, agent, cwd, created_at, updated_at) VALUES (%s,%s,%s,%s,%s)",
                WAVE1_SESSION,
            )
            async with conn.cursor() as cur:
                await cur.executemany("INSERT INTO events VALUES (%s,%s,%s,%s,%s)", rows)

    async def make_version_2(self) -> None:
        """A store as the release before the metrics column left it (version 2), holding the
        wave-1 session with a lease owner column."""
        await self.make_version_1(events=2)
        if self.name == "sqlite":
            from bridge.store import sqlite_schema

            db = sqlite3.connect(self.location)
            db.executescript(sqlite_schema.V2 + "PRAGMA user_version = 2;")
            db.close()
            return
        import psycopg

        from bridge.store import pg_schema

        async with await psycopg.AsyncConnection.connect(self.location, autocommit=True) as conn:
            await pg_schema.migrate(conn, "test", upto=2)

    async def make_version_3(self, events: int) -> None:
        """A store as the release before packed log rows left it (version 3): the wave-1
        session with `events` rows, one message each, as every release before wrote them."""
        await self.make_version_1(events=events)
        if self.name == "sqlite":
            from bridge.store import sqlite_schema

            db = sqlite3.connect(self.location)
            db.executescript(sqlite_schema.V2 + sqlite_schema.V3 + "PRAGMA user_version = 3;")
            db.close()
            return
        import psycopg

        from bridge.store import pg_schema

        async with await psycopg.AsyncConnection.connect(self.location, autocommit=True) as conn:
            await pg_schema.migrate(conn, "test", upto=3)

    async def log_rows(self, session_id: str) -> list[tuple[int, int]]:
        """The session's log rows as stored: (seq, n) each, in seq order."""
        sql = "SELECT seq, n FROM events WHERE session_id = {} ORDER BY seq"
        if self.name == "sqlite":
            db = sqlite3.connect(self.location)
            try:
                return [(int(a), int(b)) for a, b in db.execute(sql.format("?"), (session_id,))]
            finally:
                db.close()
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.location, autocommit=True) as conn:
            cur = await conn.execute(sql.format("%s").encode(), (session_id,))
            return [(int(a), int(b)) for a, b in await cur.fetchall()]

    async def set_version(self, version: int) -> None:
        """Stamp the store with another schema version (as a newer agent-bridge would)."""
        if self.name == "sqlite":
            db = sqlite3.connect(self.location)
            db.execute(f"PRAGMA user_version = {version}")
            db.close()
            return
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.location, autocommit=True) as conn:
            await conn.execute("UPDATE bridge_schema SET version = %s", (version,))

    async def register_instance(self, instance_id: str, pid: int, expires_in: float) -> None:
        """A daemon's registration as an older release wrote it (version 2 and later), its
        expiry `expires_in` seconds from now (negative: already run out)."""
        from bridge.store.base import this_host

        values = (instance_id, pid, this_host(), "stdio", None, 0.0, "2025-01-01T00:00:00.000Z")
        cols = "id,pid,host,transport,ws_url,pid_started_at,started_at,heartbeat_at,expires_at"
        if self.name == "sqlite":
            import time

            db = sqlite3.connect(self.location)
            now = time.time()
            db.execute(
                f"INSERT OR REPLACE INTO instances ({cols}) VALUES (?,?,?,?,?,?,?,?,?)",
                (*values, now, now + expires_in),
            )
            db.commit()
            db.close()
            return
        import psycopg

        now = "extract(epoch FROM clock_timestamp())"
        async with await psycopg.AsyncConnection.connect(self.location, autocommit=True) as conn:
            await conn.execute("DELETE FROM instances WHERE id = %s", (instance_id,))
            await conn.execute(
                f"INSERT INTO instances ({cols}) VALUES (%s,%s,%s,%s,%s,%s,%s,{now},{now} + %s)".encode(),
                (*values, expires_in),
            )

    async def stored_version(self) -> int:
        if self.name == "sqlite":
            db = sqlite3.connect(self.location)
            try:
                return int(db.execute("PRAGMA user_version").fetchone()[0])
            finally:
                db.close()
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.location, autocommit=True) as conn:
            row = await (await conn.execute("SELECT version FROM bridge_schema")).fetchone()
            return int(row[0]) if row else 0
