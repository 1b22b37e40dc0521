"""A read-only look at a PostgreSQL store for `agent-bridge doctor`: reachable, which schema
version, how many sessions and live daemons. Changes nothing (no migration)."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import StoreError
from bridge.store.base import SCHEMA_VERSION
from bridge.store.pg_conn import Link


@dataclass(frozen=True)
class Probe:
    where: str  # the URL, password masked
    error: str | None = None
    version: int | None = None  # None: no schema yet (created on first start)
    sessions: int = 0
    daemons: int = 0  # registrations not expired by the server's clock

    @property
    def outdated(self) -> bool:
        return self.version is not None and self.version < SCHEMA_VERSION

    @property
    def too_new(self) -> bool:
        return self.version is not None and self.version > SCHEMA_VERSION


async def probe(url: str) -> Probe:
    link = Link(url, "doctor")
    try:
        async with link.use() as conn:
            cur = await conn.execute("SELECT to_regclass('bridge_schema') IS NOT NULL")
            row = await cur.fetchone()
            if not (row and row[0]):
                return Probe(link.where)
            row = await (await conn.execute("SELECT version FROM bridge_schema")).fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION or version < 2:
                return Probe(link.where, version=version)
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM sessions WHERE NOT deleted), (SELECT count(*) FROM instances "
                "WHERE expires_at > extract(epoch FROM clock_timestamp()))"
            )
            counts = await cur.fetchone()
            sessions, daemons = (int(counts[0]), int(counts[1])) if counts else (0, 0)
            return Probe(link.where, version=version, sessions=sessions, daemons=daemons)
    except StoreError as exc:
        return Probe(link.where, error=exc.message)
    finally:
        await link.close()
