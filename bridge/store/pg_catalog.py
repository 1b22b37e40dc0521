"""The catalog and lease statements of the PostgreSQL store, one function per operation, each
on a connection the caller holds (`pg_conn.Link.use`). Column names never come from input
unchecked: `update_session` accepts only the catalog's own columns.
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import sql

from bridge.errors import StoreError
from bridge.store.base import LIVE_STATUSES, Instance, SessionRecord, owner_gone
from bridge.store.pg_conn import Conn

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
_SELECT = "SELECT " + ",".join(COLUMNS) + " FROM sessions"
_INSTANCE = "id,pid,host,transport,ws_url,pid_started_at,started_at,heartbeat_at,expires_at"
_NOW = "extract(epoch FROM clock_timestamp())::float8"


def _encode(col: str, value: Any) -> Any:
    if col not in COLUMNS:
        raise ValueError(f"unknown session column {col!r}")
    if col in JSON_FIELDS:
        # orjson writes a NUL inside a string as the escape \u0000: the json type keeps it.
        return None if value is None else orjson.dumps(value).decode()
    if isinstance(value, str) and "\x00" in value:
        # PostgreSQL text cannot hold NUL: refuse clearly (a StoreError, which background
        # writers log) rather than let the driver's DataError say less.
        raise StoreError(f"session {col} contains a NUL character, which the PostgreSQL store cannot hold")
    return value


def storable(key: str | None) -> bool:
    """A lookup key PostgreSQL text can hold; no stored row has one that it cannot."""
    return key is None or "\x00" not in key


def _placeholder(col: str) -> sql.Composable:
    return sql.SQL("%s::json") if col in JSON_FIELDS else sql.SQL("%s")


def _decode(row: tuple[Any, ...]) -> SessionRecord:
    data = dict(zip(COLUMNS, row, strict=True))
    # psycopg parses json columns already; a value written by hand as text is parsed here.
    for col in JSON_FIELDS:
        if isinstance(data[col], str):
            data[col] = orjson.loads(data[col])
    data["mcp_servers"] = data["mcp_servers"] or []
    return SessionRecord(**data)


def _instance(row: tuple[Any, ...]) -> Instance:
    i, pid, host, transport, ws_url, pid_started, started, beat, expires = row
    return Instance(i, int(pid), host, transport, ws_url, float(pid_started), started, float(beat), float(expires))


async def create_session(conn: Conn, rec: SessionRecord) -> None:
    query = sql.SQL("INSERT INTO sessions ({}) VALUES ({})").format(
        sql.SQL(",").join(map(sql.Identifier, COLUMNS)), sql.SQL(",").join(map(_placeholder, COLUMNS))
    )
    await conn.execute(query, [_encode(c, getattr(rec, c)) for c in COLUMNS])


async def get_session(conn: Conn, session_id: str) -> SessionRecord | None:
    if not storable(session_id):
        return None
    row = await (await conn.execute(_SELECT + " WHERE id = %s", (session_id,))).fetchone()
    return _decode(row) if row else None


async def update_session(conn: Conn, session_id: str, fields: dict[str, Any]) -> None:
    values = [_encode(k, v) for k, v in fields.items()]
    sets = sql.SQL(",").join(sql.SQL("{} = {}").format(sql.Identifier(k), _placeholder(k)) for k in fields)
    await conn.execute(sql.SQL("UPDATE sessions SET {} WHERE id = %s").format(sets), [*values, session_id])


async def list_sessions(
    conn: Conn, cwd: str | None, offset: int, limit: int, include_archived: bool
) -> list[SessionRecord]:
    if not storable(cwd):
        return []
    where = ["NOT deleted"]
    args: list[Any] = []
    if cwd is not None:
        where.append("cwd = %s")
        args.append(cwd)
    if not include_archived:
        where.append("NOT archived")
    # `COLLATE "C"`: the same byte order as SQLite's, whatever the database's locale.
    query = (
        f"{_SELECT} WHERE {' AND '.join(where)} "
        'ORDER BY updated_at COLLATE "C" DESC, id COLLATE "C" LIMIT %s OFFSET %s'
    )
    cur = await conn.execute(query.encode(), [*args, limit, offset])
    return [_decode(r) for r in await cur.fetchall()]


# -- instances and leases ----------------------------------------------------------------------
async def put_instance(conn: Conn, inst: Instance, local_now: float | None = None) -> None:
    """Insert or replace a registration. With `local_now` (the caller's `time.time()`), its
    heartbeat and expiry are moved onto the server's clock: what counts is how far ahead
    they are of the registering daemon's now, not the daemon's clock itself."""
    shift = f"({_NOW} - %s)" if local_now is not None else "0"
    extra = (local_now,) if local_now is not None else ()
    await conn.execute(
        f"INSERT INTO instances ({_INSTANCE}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s + {shift},%s + {shift}) "
        "ON CONFLICT (id) DO UPDATE SET pid = EXCLUDED.pid, host = EXCLUDED.host, "
        "transport = EXCLUDED.transport, ws_url = EXCLUDED.ws_url, "
        "pid_started_at = EXCLUDED.pid_started_at, started_at = EXCLUDED.started_at, "
        "heartbeat_at = EXCLUDED.heartbeat_at, expires_at = EXCLUDED.expires_at",
        (
            inst.id,
            inst.pid,
            inst.host,
            inst.transport,
            inst.ws_url,
            inst.pid_started_at,
            inst.started_at,
            inst.heartbeat_at,
            *extra,
            inst.expires_at,
            *extra,
        ),
    )


async def renew(conn: Conn, me: Instance, lease_seconds: float) -> tuple[float, float]:
    """One statement renews the instance, and so every lease it holds: its cost does not grow
    with the number of sessions. A registration deleted meanwhile (another daemon thought us
    gone) is put back; the sessions it took stay with it. Returns (expiry, the server's now)."""
    cur = await conn.execute(
        f"UPDATE instances SET heartbeat_at = {_NOW}, expires_at = {_NOW} + %s WHERE id = %s "
        "RETURNING expires_at, heartbeat_at",
        (lease_seconds, me.id),
    )
    row = await cur.fetchone()
    if row is not None:
        return float(row[0]), float(row[1])
    cur = await conn.execute(f"SELECT {_NOW}")
    now_row = await cur.fetchone()
    now = float(now_row[0]) if now_row else 0.0
    await put_instance(
        conn,
        Instance(
            me.id,
            me.pid,
            me.host,
            me.transport,
            me.ws_url,
            me.pid_started_at,
            me.started_at,
            now,
            now + lease_seconds,
        ),
    )
    return now + lease_seconds, now


async def unregister(conn: Conn, instance_id: str) -> None:
    async with conn.transaction():
        await conn.execute("UPDATE sessions SET owner = NULL WHERE owner = %s", (instance_id,))
        await conn.execute("DELETE FROM instances WHERE id = %s", (instance_id,))


async def get_instance(conn: Conn, instance_id: str) -> tuple[Instance, float] | None:
    """The instance and the database's clock (for `owner_gone`)."""
    cur = await conn.execute(f"SELECT {_INSTANCE}, {_NOW} FROM instances WHERE id = %s", (instance_id,))
    row = await cur.fetchone()
    return (_instance(row[:-1]), float(row[-1])) if row else None


async def all_instances(conn: Conn) -> tuple[list[Instance], float]:
    cur = await conn.execute(f"SELECT {_INSTANCE}, {_NOW} FROM instances ORDER BY started_at, id")
    rows = await cur.fetchall()
    if not rows:
        now_row = await (await conn.execute(f"SELECT {_NOW}")).fetchone()
        return [], float(now_row[0]) if now_row else 0.0
    return [_instance(r[:-1]) for r in rows], float(rows[0][-1])


async def acquire(conn: Conn, session_id: str, me: str) -> tuple[Instance, float] | None:
    """Under the session row's lock (`FOR UPDATE`): two daemons taking one session at once
    are serialized, and the second sees the first as the live owner (returned with the
    server's now, like `get_instance`)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT owner FROM sessions WHERE id = %s FOR UPDATE", (session_id,))
        row = await cur.fetchone()
        if row is None:
            return None
        owner = row[0]
        if owner is not None and owner != me:
            found = await get_instance(conn, owner)
            if found is not None and not owner_gone(*found):
                return found
        if owner != me:
            await conn.execute("UPDATE sessions SET owner = %s WHERE id = %s", (me, session_id))
        return None


async def taken_over(conn: Conn, me: str) -> dict[str, str]:
    cur = await conn.execute("SELECT id, owner FROM sessions WHERE owner IS NOT NULL AND owner <> %s", (me,))
    return {str(r[0]): str(r[1]) for r in await cur.fetchall()}


async def orphaned_sessions(conn: Conn) -> list[SessionRecord]:
    cur = await conn.execute(
        f"{_SELECT} WHERE NOT deleted AND status = ANY(%s) ORDER BY id", (list(LIVE_STATUSES),)
    )
    recs = [_decode(r) for r in await cur.fetchall()]
    owners = {r.owner for r in recs if r.owner is not None}
    if not owners:
        return recs
    cur = await conn.execute(
        f"SELECT {_INSTANCE}, {_NOW} FROM instances WHERE id = ANY(%s)", (sorted(owners),)
    )
    rows = await cur.fetchall()
    alive = {r[0] for r in rows if not owner_gone(_instance(r[:-1]), float(r[-1]))}
    return [r for r in recs if r.owner is None or r.owner not in alive]


async def forget_instances(conn: Conn) -> int:
    rows, now = await all_instances(conn)
    gone = [i for i in rows if owner_gone(i, now)]
    if not gone:
        return 0
    async with conn.transaction():
        # Delete only rows unchanged since they were read: an instance that heartbeat meanwhile
        # is alive after all and keeps its registration and sessions.
        cur = await conn.execute(
            "DELETE FROM instances i USING unnest(%s::text[], %s::float8[]) AS g(id, beat) "
            "WHERE i.id = g.id AND i.heartbeat_at = g.beat RETURNING i.id",
            ([i.id for i in gone], [i.heartbeat_at for i in gone]),
        )
        deleted = [r[0] for r in await cur.fetchall()]
        if deleted:
            await conn.execute("UPDATE sessions SET owner = NULL WHERE owner = ANY(%s)", (deleted,))
    return len(deleted)
