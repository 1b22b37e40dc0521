"""PostgreSQL store (psycopg 3, async): one catalog and log shared by daemons on any number
of machines.

- **Log.** `append()` queues; `flush()` commits the whole queue in ONE statement: a
  data-modifying CTE bumps each session's row in `log_heads` (its highest seq) and inserts
  the rows numbered from the old head, all in the statement's transaction. The head row's
  lock orders concurrent writers of a session, and a failed statement rolls back its bump:
  seq is gap-free and unique per session whatever the number of daemons, and one round
  trip commits any batch (arrays of values, binary protocol, prepared after a few uses).
- **Time.** Expiries use the database server's clock (`clock_timestamp()`), so daemons on
  machines with skewed clocks still agree on who is gone; the pid check applies only to
  owners on this host (`owner_gone`).
- **Faults.** Two connections (log writer; catalog and leases), each reopened on demand
  (`pg_conn.Link`). The server lost mid-run: the log degrades (`failed` set, rows counted
  as dropped, turns go on); the next `heartbeat()` — a background call — reconnects, the
  log resumes, and each session that lost rows gets a `log_gap` record saying how many.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from typing import Any

import anyio
import orjson

from bridge.errors import StoreError
from bridge.store import pg_catalog as cat
from bridge.store import pg_schema
from bridge.store.base import (
    Direction,
    Event,
    Instance,
    LogTail,
    SchemaTooNew,
    SessionRecord,
    UpgradeBlocked,
    owner_gone,
)
from bridge.store.packing import Packed, pack, unpack
from bridge.store.pg_conn import Link
from bridge.store.pg_url import StoreUnavailable
from bridge.store.sqlite import now_iso

log = logging.getLogger(__name__)

# Rows of sessions another live daemon owns are left out (a daemon that lost its lease must
# never write into the new owner's log); the statement returns the heads it bumped.
_FLUSH = """
WITH v AS (SELECT * FROM unnest(%(ids)s::text[], %(counts)s::bigint[]) AS v(session_id, n)),
ok AS (
  SELECT v.session_id, v.n FROM v
  LEFT JOIN sessions s ON s.id = v.session_id
  LEFT JOIN instances i ON i.id = s.owner
  WHERE s.owner IS NULL OR s.owner = %(me)s OR i.id IS NULL
     OR i.expires_at <= extract(epoch FROM clock_timestamp())
),
heads AS (
  INSERT INTO log_heads (session_id, last_seq)
  SELECT session_id, n FROM ok ORDER BY session_id
  ON CONFLICT (session_id) DO UPDATE SET last_seq = log_heads.last_seq + EXCLUDED.last_seq
  RETURNING session_id, last_seq
),
ins AS (
  INSERT INTO events (session_id, seq, n, at, direction, message)
  SELECT r.session_id, h.last_seq - ok.n + r.k, r.span, r.at, r.direction, r.message
  FROM unnest(%(sid)s::text[], %(k)s::bigint[], %(span)s::int[], %(at)s::text[], %(dir)s::text[],
              %(msg)s::bytea[]) AS r(session_id, k, span, at, direction, message)
  JOIN heads h USING (session_id) JOIN ok USING (session_id)
)
SELECT session_id, last_seq FROM heads
"""

Row = tuple[str, str, str, bytes]  # session id, at, direction, message
CLOSE_FLUSH_TIMEOUT = 10.0
# A flush waiting this long (a lock held on `log_heads` or `events`, a server overloaded) is
# cancelled by the server and the log degrades; below `pg_conn.OP_TIMEOUT`, so the server's
# cancel comes first and nothing commits after it was counted as dropped.
LOG_STATEMENT_TIMEOUT = 10.0


class PostgresStore:
    def __init__(self, url: str) -> None:
        self._cat = Link(url, "catalog")
        self._log = Link(url, "log", statement_timeout=LOG_STATEMENT_TIMEOUT)
        self.location = self._cat.where
        self.failed: StoreError | None = None
        self.dropped = 0
        self._queue: list[Row] = []
        self._committed: dict[str, int] = {}
        self._pending: Counter[str] = Counter()
        self._appended = 0  # rows ever queued …
        self._done = 0  # … and how many of them are committed or dropped
        # Rows each session lost while the log was down: a `log_gap` record when it resumes.
        self._gaps: Counter[str] = Counter()
        self._flush_lock = anyio.Lock(fast_acquire=True)
        self._me: Instance | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        try:
            async with self._cat.use() as conn:
                await pg_schema.migrate(conn, self.location)
        except (StoreUnavailable, SchemaTooNew, UpgradeBlocked):
            raise
        except StoreError as exc:
            raise StoreUnavailable(exc.message) from None

    async def schema_version(self) -> int:
        async with self._cat.use() as conn:
            return await pg_schema.version(conn)

    async def close(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_FLUSH_TIMEOUT):
            await self.flush()
        await self._log.close()
        await self._cat.close()

    # -- catalog -----------------------------------------------------------------------------
    async def create_session(self, rec: SessionRecord) -> None:
        async with self._cat.use() as conn:
            await cat.create_session(conn, rec)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        async with self._cat.use() as conn:
            return await cat.get_session(conn, session_id)

    async def update_session(self, session_id: str, *, touch: bool = True, **fields: Any) -> None:
        if not fields or not cat.storable(session_id):
            return  # an id no session can have: no-op, as for any unknown session
        if touch:
            fields.setdefault("updated_at", now_iso())
        async with self._cat.use() as conn:
            await cat.update_session(conn, session_id, fields)

    async def list_sessions(
        self, *, cwd: str | None, offset: int, limit: int, include_archived: bool = True
    ) -> list[SessionRecord]:
        async with self._cat.use() as conn:
            return await cat.list_sessions(conn, cwd, offset, limit, include_archived)

    # -- event log ---------------------------------------------------------------------------
    def append(self, session_id: str, direction: Direction, message: bytes) -> None:
        if "\x00" in session_id:
            self.dropped += 1  # no session can have such an id: nothing to log it under
            return
        if self.failed is not None:
            self.dropped += 1
            self._gaps[session_id] += 1
            return
        self._queue.append((session_id, now_iso(), direction, message))
        self._pending[session_id] += 1
        self._appended += 1

    def tail(self, session_id: str) -> LogTail:
        return LogTail(self._committed.get(session_id, 0), self._pending.get(session_id, 0))

    async def flush(self) -> None:
        # Counters, not the queue, say what is done: rows a flush still running has taken
        # are off the queue but not committed, and a flush that overlaps it must wait.
        target = self._appended
        while self._done < target:
            async with self._flush_lock:
                # With the lock held nothing is in flight: an empty queue means all is done.
                if self._done >= target or not self._queue:
                    return
                batch, self._queue = self._queue, []
                # Shielded: a caller cancelled mid-commit (a client that went away) must not
                # take the rows of every session in the batch with it. Bounded (OP_TIMEOUT).
                with anyio.CancelScope(shield=True):
                    try:
                        await self._write(batch)
                    except StoreError as exc:
                        self._degrade(exc, batch)
                    finally:
                        self._settle(batch)

    def _settle(self, rows: list[Row]) -> None:
        """`rows` are committed or dropped: no longer pending."""
        self._done += len(rows)
        for sid, n in Counter(r[0] for r in rows).items():
            left = self._pending[sid] - n
            if left > 0:
                self._pending[sid] = left
            else:
                del self._pending[sid]

    async def _write(self, batch: list[Row]) -> None:
        # Several messages of a session per row (bridge/store/packing.py), each row numbered
        # by its last message within the session's part of the batch (k); the database adds
        # the head.
        by_session: dict[str, list[Row]] = {}
        for r in batch:
            by_session.setdefault(r[0], []).append(r)
        counts = {sid: len(rows) for sid, rows in by_session.items()}
        sids: list[str] = []
        packed: list[Packed] = []
        for sid, rows in by_session.items():
            some = pack(rows)
            sids += [sid] * len(some)
            packed += some
        params = {
            "ids": list(counts),
            "counts": list(counts.values()),
            "me": self._me.id if self._me else None,
            "sid": sids,
            "k": [p[0] for p in packed],
            "span": [p[1] for p in packed],
            "at": [p[2] for p in packed],
            "dir": [p[3] for p in packed],
            "msg": [p[4] for p in packed],
        }
        async with self._log.use() as conn:
            cur = await conn.execute(_FLUSH, params, binary=True)
            heads = await cur.fetchall()
        for sid, last in heads:
            self._committed[sid] = int(last)
        if len(heads) < len(counts):
            written = {h[0] for h in heads}
            refused = [s for s in counts if s not in written]
            lost = sum(counts[s] for s in refused)
            self.dropped += lost
            log.warning(
                "%d event(s) of session(s) %s not logged: another live daemon owns them now",
                lost,
                ", ".join(refused),
            )

    def _degrade(self, exc: StoreError, batch: list[Row]) -> None:
        self.failed = StoreError(
            f"the event log in {self.location} could not be written ({exc.message}); sessions keep "
            "running, and their history misses what they exchange until the store is back "
            "(a log_gap record then says how much)"
        )
        queued, self._queue = self._queue, []
        self.dropped += len(batch) + len(queued)
        self._gaps.update(r[0] for r in [*batch, *queued])
        self._settle(queued)
        log.error("%s", self.failed.message)

    async def _resume_log(self) -> None:
        """Called from `heartbeat()`: reconnect the log writer if it failed; on success the
        log resumes, each session that lost rows first recording how many."""
        if self.failed is None or not self._log.may_retry():
            return
        try:
            async with self._log.use() as conn:
                await conn.execute("SELECT 1")
        except StoreError:
            return
        gaps, self._gaps = self._gaps, Counter()
        self.failed = None
        for sid, n in gaps.items():
            record = {"bridge": {"type": "log_gap", "dropped": n, "reason": "session store could not be written"}}
            self.append(sid, "bridge", orjson.dumps(record))
        log.warning("session store %s reachable again: the event log resumes", self.location)
        await self.flush()

    async def events(self, session_id: str, after: int, limit: int) -> list[Event]:
        if not cat.storable(session_id):
            return []
        async with self._cat.use() as conn:
            # A row's seq is its last message's: `limit` rows past `after` hold `limit` events.
            cur = await conn.execute(
                "SELECT seq, n, at, direction, message FROM events WHERE session_id = %s AND seq > %s "
                "ORDER BY seq LIMIT %s",
                (session_id, after, limit),
                binary=True,
            )
            return unpack(await cur.fetchall(), after, limit)

    async def last_seq(self, session_id: str) -> int:
        if not cat.storable(session_id):
            return 0
        async with self._cat.use() as conn:
            cur = await conn.execute("SELECT last_seq FROM log_heads WHERE session_id = %s", (session_id,))
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def purge_events(self, session_id: str) -> int:
        if not cat.storable(session_id):
            return 0
        self._settle([r for r in self._queue if r[0] == session_id])
        self._queue = [r for r in self._queue if r[0] != session_id]
        async with self._cat.use() as conn:
            # The head stays: a seq is never handed out twice, even after a purge.
            cur = await conn.execute(
                "WITH d AS (DELETE FROM events WHERE session_id = %s RETURNING n) SELECT COALESCE(SUM(n), 0) FROM d",
                (session_id,),
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    # -- instances and leases ----------------------------------------------------------------
    async def register(self, instance: Instance) -> None:
        async with self._cat.use() as conn:
            await cat.put_instance(conn, instance, local_now=time.time())
        self._me = instance

    async def heartbeat(self, lease_seconds: float) -> float:
        me = self._require_me()
        await self._resume_log()
        async with self._cat.use() as conn:
            expires, server_now = await cat.renew(conn, me, lease_seconds)
        return expires - (server_now - time.time())

    async def unregister(self) -> None:
        me = self._require_me()
        async with self._cat.use() as conn:
            await cat.unregister(conn, me.id)

    async def instance(self, instance_id: str) -> Instance | None:
        async with self._cat.use() as conn:
            found = await cat.get_instance(conn, instance_id)
        return _local(*found) if found else None

    async def instances(self) -> list[Instance]:
        async with self._cat.use() as conn:
            rows, now = await cat.all_instances(conn)
        return [_local(i, now) for i in rows if not owner_gone(i, now)]

    async def acquire(self, session_id: str) -> Instance | None:
        me = self._require_me()
        if not cat.storable(session_id):
            return None
        async with self._cat.use() as conn:
            holder = await cat.acquire(conn, session_id, me.id)
        return _local(*holder) if holder else None

    async def release(self, session_id: str) -> None:
        me = self._require_me()
        if not cat.storable(session_id):
            return
        async with self._cat.use() as conn:
            await conn.execute("UPDATE sessions SET owner = NULL WHERE id = %s AND owner = %s", (session_id, me.id))

    async def taken_over(self) -> dict[str, str]:
        me = self._me.id if self._me is not None else ""
        async with self._cat.use() as conn:
            return await cat.taken_over(conn, me)

    async def orphaned_sessions(self) -> list[SessionRecord]:
        async with self._cat.use() as conn:
            return await cat.orphaned_sessions(conn)

    async def forget_instances(self) -> int:
        async with self._cat.use() as conn:
            return await cat.forget_instances(conn)

    def _require_me(self) -> Instance:
        if self._me is None:
            raise StoreError("this daemon is not registered in the session store (register() first)")
        return self._me


def _local(inst: Instance, server_now: float) -> Instance:
    """`inst` with its times moved from the server's clock to this machine's, so that
    `owner_gone(inst)` here judges as the server does, whatever the skew between them."""
    shift = server_now - time.time()
    return dataclasses.replace(inst, heartbeat_at=inst.heartbeat_at - shift, expires_at=inst.expires_at - shift)
