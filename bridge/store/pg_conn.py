"""One PostgreSQL connection that survives the server going away: opened on demand,
dropped on a connection error, reopened (no more than once per `retry` seconds) by the next
caller. Every operation is bounded in time, so a server that stops answering (a dead
network, a long lock) costs a caller at most `OP_TIMEOUT`, never a hang.
"""

from __future__ import annotations

import contextlib
import logging
import select
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg
from psycopg.conninfo import make_conninfo

from bridge.errors import StoreError
from bridge.store.pg_url import mask

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5  # seconds; libpq's own bound on reaching the server
OP_TIMEOUT = 15.0  # seconds for one operation (statement or transaction)
RETRY_MIN, RETRY_MAX = 0.5, 5.0
# libpq's TCP keepalives and user timeout: a peer that vanished without a FIN or RST (machine
# gone, network cut) is noticed in seconds instead of the kernel's ~2 hours.
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}

Conn = psycopg.AsyncConnection[tuple[Any, ...]]


class Link:
    def __init__(self, url: str, name: str, statement_timeout: float | None = None) -> None:
        self._url = url  # with its password: never logged, never in an error message
        self.where = mask(url)
        self.name = name
        # Server-side bound on each statement: a statement stuck behind a lock is cancelled
        # by the server itself, so it can never commit after we gave up on it.
        self._statement_timeout = statement_timeout
        self._conn: Conn | None = None
        self._lock = anyio.Lock()
        self._next_try = 0.0
        self._retry = RETRY_MIN
        self.lost_at: float | None = None  # monotonic time the connection was lost

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def may_retry(self) -> bool:
        return self.connected or time.monotonic() >= self._next_try

    async def connect(self) -> Conn:
        """The open connection, or a new one. Raises `StoreError` naming the masked URL."""
        if self._conn is not None and not self._conn.closed:
            if not _readable(self._conn):
                return self._conn
            # An idle connection has nothing to read: this one has the server's goodbye (a
            # restart, an idle timeout). Reconnect now, before a statement is lost on it.
            log.info("session store %s: %s connection closed by the server; reconnecting", self.where, self.name)
            conn, self._conn = self._conn, None
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await conn.close()
        elif time.monotonic() < self._next_try:
            raise StoreError(f"the session store {self.where} is unreachable (retrying)")
        try:
            with anyio.fail_after(CONNECT_TIMEOUT + 1):
                conninfo = make_conninfo(
                    self._url,
                    connect_timeout=CONNECT_TIMEOUT,
                    application_name=f"agent-bridge {self.name}",
                    **KEEPALIVE,
                )
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                if self._statement_timeout is not None:
                    await conn.execute(f"SET statement_timeout = {int(self._statement_timeout * 1000)}")
                self._conn = conn
        except (psycopg.Error, TimeoutError, OSError) as exc:
            self._backoff()
            raise StoreError(f"cannot connect to the session store {self.where}: {_reason(exc)}") from None
        if self.lost_at is not None:
            log.warning("session store %s: %s connection is back", self.where, self.name)
        self.lost_at = None
        self._retry = RETRY_MIN
        return self._conn

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Conn]:
        """The connection, for one operation (serialized: psycopg connections are not shared).
        A connection error or timeout closes it and raises `StoreError`; other database errors
        (a constraint, bad data) raise `StoreError` and keep it."""
        async with self._lock:
            conn = await self.connect()
            try:
                with anyio.fail_after(OP_TIMEOUT):
                    yield conn
            except (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError, OSError) as exc:
                if isinstance(exc, TimeoutError):
                    # Ask the server to stop what it is running (else it could still commit
                    # it later, behind our back), then drop the connection.
                    with (
                        anyio.CancelScope(shield=True),
                        anyio.move_on_after(2),
                        contextlib.suppress(psycopg.Error, OSError),
                    ):
                        await conn.cancel_safe(timeout=2)
                await self.drop(exc)
                raise StoreError(f"the session store {self.where} failed: {_reason(exc)}") from None
            except psycopg.Error as exc:
                raise StoreError(f"session store error ({self.where}): {_reason(exc)}") from None

    async def drop(self, exc: BaseException | None = None) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if exc is not None:
                log.warning("session store %s: %s connection lost: %s", self.where, self.name, _reason(exc))
            self.lost_at = time.monotonic()
            self._backoff()
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await conn.close()

    def _backoff(self) -> None:
        self._next_try = time.monotonic() + self._retry
        self._retry = min(RETRY_MAX, self._retry * 2)

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await conn.close()


def _readable(conn: Conn) -> bool:
    """Whether the socket has input waiting (no I/O beyond a zero-timeout poll)."""
    try:
        ready, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(ready)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc).strip().splitlines()
    # libpq messages name host and port, never the password; keep the first line.
    return text[0] if text else type(exc).__name__
