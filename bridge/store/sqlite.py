"""SQLite store: one file shared by every daemon on a state dir; WAL journal, batched commits.

Three connections, each behind its own thread lock and used only on worker threads, except
the log writer's fast path: `log` commits the event log, `cat` writes the catalog and the
leases, `read` serves every read (WAL readers never wait for writers). So a catalog write
that waits out another process's lock (`busy_timeout`) holds up neither reads nor the log,
and the event loop never waits on a lock at all: the fast path only takes the log lock when
it is free, with `busy_timeout = 0`, and hands the batch to a worker otherwise.

Durability (spec/durability.md): `append()` queues; `flush()` commits every queued row in one
`BEGIN IMMEDIATE` transaction that allocates the seqs (the session's highest committed seq
plus one), which SQLite's single write lock serialises across processes: gap-free and
unique with any number of daemons on the file. `synchronous=NORMAL` in WAL mode: a commit
survives SIGKILL (it is in the WAL) and is fsynced at the next checkpoint.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio

from bridge.errors import StoreError
from bridge.store import sqlite_schema as S
from bridge.store.base import Direction, Event, LogTail, SessionRecord
from bridge.store.packing import Queued, pack, unpack
from bridge.store.sqlite_leases import LeaseMixin

log = logging.getLogger(__name__)
# Batches up to this many rows are committed on the event loop; larger ones on a worker thread.
INLINE_ROWS = 32
# A write waits this long for another process's lock per attempt (on a worker thread) …
BUSY_TIMEOUT_MS = 1000
# … and gives up (the log degrades) once a batch has waited this long in all.
LOCK_BUDGET = 5.0
# Catalog writes and reads (worker threads, no retry loop) wait this long for a lock.
CATALOG_TIMEOUT = 5.0
# Opening (the switch to WAL, a migration) waits this long for another daemon's lock: daemons
# started together on a new state dir (two editor windows) take turns creating the schema, and
# on a loaded machine one turn can outlast BUSY_TIMEOUT_MS. Giving up here would leave the
# daemon on a failed in-memory store, logging nothing, so it waits much longer.
OPEN_TIMEOUT_MS = 30_000
# The log connection never checkpoints on its own (a checkpoint fsyncs: not on the event
# loop); a worker-thread commit runs a passive one after this many rows.
CHECKPOINT_ROWS = 4000

_INSERT_ONE = "INSERT INTO events (session_id, seq, n, at, direction, message) VALUES (?,?,?,?,?,?)"
_ROWS_PER_INSERT = 166  # 6 parameters a row: stays under SQLite's historical 999-variable limit
_INSERT_MANY = _INSERT_ONE.replace("(?,?,?,?,?,?)", ",".join(["(?,?,?,?,?,?)"] * _ROWS_PER_INSERT))
# A session's last seq (a row's seq: its last message's); with its owner, one select a commit.
_HEAD = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id = ?"
_OWNER_AND_LAST = f"SELECT (SELECT owner FROM sessions WHERE id = ?), ({_HEAD})"

Row = Queued | None  # (session, at, direction, message); None once purged

_iso_cache: tuple[int, str] = (-1, "")


def now_iso() -> str:
    # Per logged message: format only when the millisecond changes (~2 µs vs ~0.1 µs a read).
    global _iso_cache
    ms = time.time_ns() // 1_000_000
    cached_ms, iso = _iso_cache
    if ms != cached_ms:
        stamp = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
        iso = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        _iso_cache = (ms, iso)
    return iso


def _patiently(db: sqlite3.Connection, write: Callable[[], Any]) -> Any:
    """`write` on the log connection off the loop, waiting up to BUSY_TIMEOUT_MS for a lock; the
    connection rests at 0 so the loop's commits need no PRAGMA around every answer."""
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        return write()
    finally:
        db.execute("PRAGMA busy_timeout = 0")


class _Conn:
    """A connection and the thread lock that serialises its use."""

    def __init__(self, path: str, timeout: float) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
        self.lock = threading.Lock()

    def run(self, txn: S.Txn) -> Any:
        with self.lock:
            return txn(self.db)


class SqliteStore(LeaseMixin):
    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        """`synchronous` is SQLite's pragma; only benchmarks change it (spec/durability.md)."""
        self.path = path
        self._synchronous = synchronous
        self.location = path
        self.failed: StoreError | None = None
        self.dropped = 0
        self._log: _Conn | None = None
        self._cat: _Conn | None = None
        self._read: _Conn | None = None
        self._self_id: str | None = None
        self._queue: list[Row] = []
        self._appended = 0  # rows ever queued …
        self._done = 0  # … and how many of them, in order, are committed or dropped
        self._pending: Counter[str] = Counter()
        self._committed: dict[str, int] = {}
        self._since_checkpoint = 0
        # fast_acquire: an uncontended flush (every client write) takes it without a yield.
        self._flush_lock = anyio.Lock(fast_acquire=True)

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        await anyio.to_thread.run_sync(self.open_sync)

    def open_sync(self) -> None:
        """`open()` without an event loop (tests, `doctor`, the CLI's direct reads)."""
        path = self.path
        try:
            if path != ":memory:":
                directory = os.path.dirname(os.path.abspath(path))
                os.makedirs(directory, mode=0o700, exist_ok=True)
                # Created 0600 before SQLite opens it: its -wal and -shm files copy this mode.
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
                if os.stat(path).st_mode & 0o077:
                    os.chmod(path, 0o600)
            conns = [
                _Conn(path, BUSY_TIMEOUT_MS / 1000 if i == 0 else CATALOG_TIMEOUT)
                for i in range(1 if path == ":memory:" else 3)
            ]
            for c in conns:
                c.db.execute(f"PRAGMA busy_timeout = {OPEN_TIMEOUT_MS}")
                S.wal_mode(c.db, OPEN_TIMEOUT_MS / 1000)
                c.db.execute(f"PRAGMA synchronous={self._synchronous}")
                # Deleted rows (session/delete) are overwritten, not left in free pages.
                c.db.execute("PRAGMA secure_delete=ON")
            conns[0].db.execute("PRAGMA wal_autocheckpoint=0")
            S.migrate(conns[0].db, path)
            for i, c in enumerate(conns):
                # The log connection rests at 0: the loop never waits for a lock (`_patiently`).
                c.db.execute(f"PRAGMA busy_timeout = {0 if i == 0 else int(CATALOG_TIMEOUT * 1000)}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the session store {path}: {exc}; move it aside or run `agent-bridge doctor`"
            ) from exc
        self._log = conns[0]
        # `:memory:` is one database per connection: share the one.
        self._cat = conns[1] if len(conns) > 1 else conns[0]
        self._read = conns[2] if len(conns) > 2 else conns[0]

    async def open_or_degrade(self) -> None:
        """`open()`, or — when the file cannot be used (corrupt, unreadable, newer schema) —
        an in-memory database marked failed, so the daemon still serves and says why. The
        file itself is left alone, to be inspected or moved aside."""
        try:
            await self.open()
        except StoreError as exc:
            log.error("%s", exc.message)
            path, self.path = self.path, ":memory:"
            try:
                self.open_sync()
            finally:
                self.path = path
            self.failed = exc

    async def schema_version(self) -> int:
        return int((await self._reading(lambda db: db.execute("PRAGMA user_version").fetchone()))[0])

    async def close(self) -> None:
        with anyio.move_on_after(LOCK_BUDGET + 1):
            await self.flush()
        self.close_sync()

    def close_sync(self) -> None:
        for c in {id(c): c for c in (self._log, self._cat, self._read) if c is not None}.values():
            with c.lock:
                c.db.close()
        self._log = self._cat = self._read = None

    # -- running SQL off the event loop --------------------------------------------------------
    async def _writing(self, txn: S.Txn) -> Any:
        """`txn` in one IMMEDIATE transaction on the catalog connection, on a worker thread."""
        assert self._cat is not None, "store not opened"
        cat = self._cat

        def run(db: sqlite3.Connection) -> Any:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = txn(db)
                db.execute("COMMIT")
                return result
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        try:
            return await anyio.to_thread.run_sync(cat.run, run)
        except sqlite3.Error as exc:
            raise StoreError(f"session store error ({self.path}): {exc}") from exc

    async def _reading(self, txn: S.Txn) -> Any:
        assert self._read is not None, "store not opened"
        try:
            return await anyio.to_thread.run_sync(self._read.run, txn)
        except sqlite3.Error as exc:
            raise StoreError(f"session store error ({self.path}): {exc}") from exc

    # -- catalog -----------------------------------------------------------------------------
    async def create_session(self, rec: SessionRecord) -> None:
        values = tuple(S.encode(c, getattr(rec, c)) for c in S.COLUMNS)
        marks = ",".join("?" * len(S.COLUMNS))
        await self._writing(
            lambda db: db.execute(f"INSERT INTO sessions ({S.SESSION_COLUMNS}) VALUES ({marks})", values)
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self._reading(
            lambda db: db.execute(
                f"SELECT {S.SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
            ).fetchall()
        )
        return S.decode(rows[0]) if rows else None

    async def update_session(self, session_id: str, *, touch: bool = True, **fields: Any) -> None:
        if not fields:
            return
        if touch:
            fields.setdefault("updated_at", now_iso())
        sets = ",".join(f"{k} = ?" for k in fields)
        args = (*(S.encode(k, v) for k, v in fields.items()), session_id)
        await self._writing(lambda db: db.execute(f"UPDATE sessions SET {sets} WHERE id = ?", args))

    async def list_sessions(
        self, *, cwd: str | None, offset: int, limit: int, include_archived: bool = True
    ) -> list[SessionRecord]:
        where = ["deleted = 0"]
        args: list[Any] = []
        if cwd is not None:
            where.append("cwd = ?")
            args.append(cwd)
        if not include_archived:
            where.append("archived = 0")
        sql = (
            f"SELECT {S.SESSION_COLUMNS} FROM sessions WHERE {' AND '.join(where)} "
            "ORDER BY updated_at DESC, id LIMIT ? OFFSET ?"
        )
        rows = await self._reading(lambda db: db.execute(sql, (*args, limit, offset)).fetchall())
        return [S.decode(r) for r in rows]

    # -- event log -----------------------------------------------------------------------------
    def append(self, session_id: str, direction: Direction, message: bytes) -> None:
        if self.failed is not None:
            # Degraded: the log can no longer be written. Say so where it is read
            # (`events`, `info`, doctor) instead of stopping the user's turn.
            self.dropped += 1
            return
        self._queue.append((session_id, now_iso(), direction, message))
        self._appended += 1
        self._pending[session_id] += 1

    def tail(self, session_id: str) -> LogTail:
        return LogTail(self._committed.get(session_id, 0), self._pending.get(session_id, 0))

    async def flush(self) -> None:
        target = self._appended
        while self._done < target:
            # Rows taken by a flush still running are not done yet: wait for it (the lock),
            # then commit what is left of ours.
            async with self._flush_lock:
                # With the lock held nothing is in flight: an empty queue means all is done.
                if self._done >= target or not self._queue:
                    return
                batch, self._queue = self._queue, []
                await self._commit(batch)

    async def _commit(self, batch: list[Row]) -> None:
        log_conn = self._log
        assert log_conn is not None, "store not opened"
        if (
            len(batch) <= INLINE_ROWS
            and self._since_checkpoint < CHECKPOINT_ROWS
            and log_conn.lock.acquire(blocking=False)
        ):
            # A few rows commit in ~0.1 ms: cheaper than the two thread switches of a
            # worker hop, which every request/answer pays before its client write. Never
            # wait for a lock on the event loop (busy_timeout 0): locked means the worker retries.
            try:
                self._finish(batch, self._write(log_conn.db, batch))
                return
            except sqlite3.OperationalError as exc:
                log.debug("event log write deferred to a worker (%s)", exc)
            except sqlite3.Error as exc:
                self._degrade(exc, batch)
                return
            finally:
                log_conn.lock.release()
        deadline = anyio.current_time() + LOCK_BUDGET
        delay = 0.05
        done: list[dict[str, int]] = []

        def write(db: sqlite3.Connection) -> None:
            done.append(_patiently(db, lambda: self._write(db, batch, True)))

        try:
            while True:
                try:
                    await anyio.to_thread.run_sync(log_conn.run, write)
                    break
                except sqlite3.OperationalError as exc:
                    # Locked by another process (past busy_timeout), or a transient I/O error.
                    if anyio.current_time() + delay >= deadline or "full" in str(exc):
                        self._degrade(exc, batch)
                        return
                    log.warning("event log write failed (%s); retrying", exc)
                    await anyio.sleep(delay)
                    delay = min(1.0, delay * 2)
                except sqlite3.Error as exc:
                    self._degrade(exc, batch)
                    return
        except BaseException:
            # Cancelled: a batch the worker committed is finished, any other goes back, in order.
            if done:
                self._finish(batch, done[0])
            else:
                self._queue[:0] = batch
            raise
        self._finish(batch, done[0])

    def _write(self, db: sqlite3.Connection, batch: list[Row], worker: bool = False) -> dict[str, int]:
        """Commit `batch` in one transaction, allocating each session's seqs inside it.
        Returns the highest seq committed per session."""
        by_session: dict[str, list[Queued]] = {}
        for row in batch:
            if row is not None:
                by_session.setdefault(row[0], []).append(row)
        if not by_session:
            return {}
        db.execute("BEGIN IMMEDIATE")
        try:
            # The statement's parameters, flat (6 a row), built in one pass; several
            # messages of a session go in one row (bridge/store/packing.py).
            flat: list[Any] = []
            last: dict[str, int] = {}
            count = 0
            for sid, rows in by_session.items():
                owner, head = db.execute(_OWNER_AND_LAST, (sid, sid)).fetchone()
                if not self._may_write(db, sid, owner):
                    self.dropped += len(rows)
                    continue
                extend = flat.extend
                for k, n, at, direction, message in pack(rows):
                    extend((sid, head + k, n, at, direction, message))
                last[sid] = head + len(rows)
                count += len(rows)
            # Rows go in _ROWS_PER_INSERT at a time: sqlite3 drops and retakes the GIL
            # around every statement step, so one row per step (executemany) makes the
            # event loop and this thread trade the GIL thousands of times per batch.
            step = 6 * _ROWS_PER_INSERT
            full = len(flat) - len(flat) % step
            for i in range(0, full, step):
                db.execute(_INSERT_MANY, flat[i : i + step])
            if full < len(flat):
                rest = flat[full:]
                db.executemany(_INSERT_ONE, [rest[i : i + 6] for i in range(0, len(rest), 6)])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._since_checkpoint += count
        if worker and self._since_checkpoint >= CHECKPOINT_ROWS:
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self._since_checkpoint = 0
            except sqlite3.Error as exc:
                log.debug("checkpoint skipped: %s", exc)
        return last

    def _finish(self, batch: list[Row], committed: dict[str, int]) -> None:
        for row in batch:
            if row is not None:
                self._pending[row[0]] -= 1
                if not self._pending[row[0]]:
                    del self._pending[row[0]]
        self._committed.update(committed)
        self._done += len(batch)

    def _degrade(self, exc: Exception, batch: list[Row]) -> None:
        if self.failed is None:
            self.failed = StoreError(
                f"the event log in {self.path} could not be written ({exc}); sessions keep running but their "
                "history is incomplete from here on — check free disk space and run `agent-bridge doctor`"
            )
            log.error("%s", self.failed.message)
        # Everything queued is lost with the batch: nothing after a hole is written.
        rest, self._queue = self._queue, []
        lost = [r for r in (*batch, *rest) if r is not None]
        self.dropped += len(lost)
        self._finish([*batch, *rest], {})

    def flush_sync(self) -> None:
        """Commit what is queued, blocking: the last step of a shutdown, no loop left."""
        batch, self._queue = self._queue, []
        if batch and self.failed is None and self._log is not None:
            try:
                self._finish(batch, self._log.run(lambda db: _patiently(db, lambda: self._write(db, batch))))
            except sqlite3.Error as exc:
                self._degrade(exc, batch)

    async def events(self, session_id: str, after: int, limit: int) -> list[Event]:
        # A row's seq is its last message's: `limit` rows past `after` hold `limit` events.
        sql = "SELECT seq, n, at, direction, message FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        rows = await self._reading(lambda db: db.execute(sql, (session_id, after, limit)).fetchall())
        return unpack(rows, after, limit)

    async def last_seq(self, session_id: str) -> int:
        return int((await self._reading(lambda db: db.execute(_HEAD, (session_id,)).fetchone()))[0])

    async def purge_events(self, session_id: str) -> int:
        await self.flush()
        for i, row in enumerate(self._queue):
            if row is not None and row[0] == session_id:
                self._queue[i] = None  # keeps flush's row count; the writer skips it
        self._pending.pop(session_id, None)
        self._committed.pop(session_id, None)
        deleted = await self._writing(lambda db: S.purge_events(db, session_id))
        # The old pages live on in the WAL until a checkpoint: copy them over (zeroed, by
        # secure_delete) and truncate it, so the erased rows are gone from the files too.
        # Best effort: a reader in another process may hold the WAL back for now.
        assert self._cat is not None
        cat = self._cat
        try:
            await anyio.to_thread.run_sync(
                lambda: cat.run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
            )
        except sqlite3.Error as exc:
            log.warning("could not checkpoint the log after a delete: %s", exc)
        return int(deleted)
