"""Instances and session leases for the SQLite store (see the contract in `base.Store`).

An instance's row is its lease on every session whose `owner` names it; `heartbeat()`
renews them all in one UPDATE. Liveness is `base.owner_gone` (expiry, and on this host the
pid); every decision that changes an owner runs inside one IMMEDIATE transaction, which
SQLite's write lock serialises across processes.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from bridge.store import sqlite_schema as S
from bridge.store.base import LIVE_STATUSES, Instance, SessionRecord, owner_gone

if TYPE_CHECKING:
    from bridge.store.sqlite_schema import Txn

log = logging.getLogger(__name__)


def _instance(db: sqlite3.Connection, instance_id: str) -> Instance | None:
    row = db.execute(f"SELECT {S.INSTANCE_COLUMNS} FROM instances WHERE id = ?", (instance_id,)).fetchone()
    return S.decode_instance(row) if row else None


class LeaseMixin:
    _self_id: str | None
    _instance_row: Instance | None = None
    _fenced: set[str] | None = None

    async def _writing(self, txn: Txn) -> Any: ...
    async def _reading(self, txn: Txn) -> Any: ...

    async def register(self, instance: Instance) -> None:
        values = S.instance_values(instance)
        marks = ",".join("?" * len(values))
        await self._writing(
            lambda db: db.execute(
                f"INSERT OR REPLACE INTO instances ({S.INSTANCE_COLUMNS}) VALUES ({marks})", values
            )
        )
        self._self_id = instance.id
        self._instance_row = instance

    async def heartbeat(self, lease_seconds: float) -> float:
        me = self._instance_row
        assert me is not None, "register() first"

        def renew(db: sqlite3.Connection) -> float:
            now = time.time()
            expires = now + lease_seconds
            cur = db.execute(
                "UPDATE instances SET heartbeat_at = ?, expires_at = ? WHERE id = ?", (now, expires, me.id)
            )
            if cur.rowcount == 0:
                # Removed as gone by another daemon (this one was paused past its lease):
                # register again; sessions taken over meanwhile stay with their new owner.
                log.warning("this daemon's registration had expired and was removed; registering again")
                values = (*S.instance_values(me)[:-2], now, expires)
                db.execute(f"INSERT INTO instances ({S.INSTANCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", values)
            return expires

        expires: float = await self._writing(renew)
        return expires

    async def unregister(self) -> None:
        me = self._self_id
        if me is None:
            return

        def drop(db: sqlite3.Connection) -> None:
            db.execute("UPDATE sessions SET owner = NULL WHERE owner = ?", (me,))
            db.execute("DELETE FROM instances WHERE id = ?", (me,))

        await self._writing(drop)

    async def instance(self, instance_id: str) -> Instance | None:
        found: Instance | None = await self._reading(lambda db: _instance(db, instance_id))
        return found

    async def instances(self) -> list[Instance]:
        rows = await self._reading(
            lambda db: db.execute(
                f"SELECT {S.INSTANCE_COLUMNS} FROM instances ORDER BY started_at"
            ).fetchall()
        )
        now = time.time()
        return [inst for inst in map(S.decode_instance, rows) if not owner_gone(inst, now)]

    async def acquire(self, session_id: str) -> Instance | None:
        me = self._self_id
        assert me is not None, "register() first"

        def take(db: sqlite3.Connection) -> Instance | None:
            row = db.execute("SELECT owner FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            owner = row[0]
            if owner is not None and owner != me:
                holder = _instance(db, owner)
                if not owner_gone(holder):
                    return holder
            db.execute("UPDATE sessions SET owner = ? WHERE id = ?", (me, session_id))
            return None

        holder: Instance | None = await self._writing(take)
        if holder is None and self._fenced is not None:
            self._fenced.discard(session_id)
        return holder

    async def release(self, session_id: str) -> None:
        me = self._self_id
        if me is None:
            return
        await self._writing(
            lambda db: db.execute(
                "UPDATE sessions SET owner = NULL WHERE id = ? AND owner = ?", (session_id, me)
            )
        )

    async def taken_over(self) -> dict[str, str]:
        me = self._self_id
        sql = "SELECT id, owner FROM sessions WHERE owner IS NOT NULL AND owner != ?"
        rows = await self._reading(lambda db: db.execute(sql, (me or "",)).fetchall())
        return {str(r[0]): str(r[1]) for r in rows}

    async def orphaned_sessions(self) -> list[SessionRecord]:
        marks = ",".join("?" * len(LIVE_STATUSES))

        def read(db: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            sessions = db.execute(
                f"SELECT {S.SESSION_COLUMNS} FROM sessions WHERE deleted = 0 AND status IN ({marks})",
                LIVE_STATUSES,
            ).fetchall()
            instances = db.execute(f"SELECT {S.INSTANCE_COLUMNS} FROM instances").fetchall()
            return sessions, instances

        sessions, rows = await self._reading(read)
        now = time.time()
        alive = {inst.id for inst in map(S.decode_instance, rows) if not owner_gone(inst, now)}
        return [rec for rec in map(S.decode, sessions) if rec.owner is None or rec.owner not in alive]

    async def forget_instances(self) -> int:
        def forget(db: sqlite3.Connection) -> int:
            now = time.time()
            rows = db.execute(f"SELECT {S.INSTANCE_COLUMNS} FROM instances").fetchall()
            gone = [inst.id for inst in map(S.decode_instance, rows) if owner_gone(inst, now)]
            for instance_id in gone:
                db.execute("UPDATE sessions SET owner = NULL WHERE owner = ?", (instance_id,))
                db.execute("DELETE FROM instances WHERE id = ?", (instance_id,))
            return len(gone)

        count: int = await self._writing(forget)
        return count

    def _may_write(self, db: sqlite3.Connection, session_id: str, owner: str | None) -> bool:
        """Inside the log's write transaction, given the session's `owner` as read there: False
        when another live instance holds the session's lease (this daemon lost it), so its
        rows are dropped, not interleaved."""
        me = self._self_id
        if me is None or owner is None or owner == me:
            return True
        if owner_gone(_instance(db, owner)):
            return True
        if self._fenced is None:
            self._fenced = set()
        if session_id not in self._fenced:
            self._fenced.add(session_id)
            log.warning(
                "session %s is now owned by daemon %s: this daemon lost its lease and no longer writes its log",
                session_id,
                owner,
            )
        return False
