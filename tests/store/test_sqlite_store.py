"""The SQLite store against its interface contract (bridge/store/base.py), on real files:
seqs from the commit, overlapping flushes, schema migrations, leases and fencing, purge,
file modes."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from bridge.store.base import SCHEMA_VERSION, Instance, SchemaTooNew, SessionRecord, new_instance, owner_gone
from bridge.store.sqlite import SqliteStore, now_iso
from bridge.store.sqlite_schema import V1

pytestmark = pytest.mark.anyio


async def opened(path: Path) -> SqliteStore:
    store = SqliteStore(str(path))
    await store.open()
    return store


def record(sid: str, owner: str | None = None, status: str = "idle") -> SessionRecord:
    now = now_iso()
    return SessionRecord(
        id=sid, agent="fake", cwd="/", created_at=now, updated_at=now, owner=owner, status=status
    )


def elsewhere(lease: float = 30.0) -> Instance:
    """A daemon on another machine: its pid means nothing here, only its expiry counts."""
    return dataclasses.replace(
        new_instance("websocket", lease, "ws://10.0.0.2:8765/acp"), host="build-7", pid=1
    )


async def seqs(store: SqliteStore, sid: str) -> list[int]:
    return [e.seq for e in await store.events(sid, 0, 100_000)]


async def test_two_writers_on_one_session_get_unique_gap_free_seqs(tmp_path: Path) -> None:
    a, b = await opened(tmp_path / "s.db"), await opened(tmp_path / "s.db")
    for i in range(300):
        (a if i % 3 else b).append("s1", "agent", b'{"n":%d}' % i)
        if i % 7 == 0:
            await (a if i % 2 else b).flush()
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.flush)
        tg.start_soon(b.flush)
    assert await seqs(a, "s1") == list(range(1, 301))
    assert a.tail("s1").pending == b.tail("s1").pending == 0
    await a.close()
    await b.close()


async def test_a_flush_returns_only_once_an_overlapping_flush_committed(tmp_path: Path) -> None:
    store = await opened(tmp_path / "s.db")
    for i in range(2000):  # above the inline limit: committed on a worker thread
        store.append("s1", "agent", b'{"n":%d}' % i)
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.flush)
        await anyio.lowlevel.checkpoint()  # the first flush has taken the batch
        assert store.tail("s1").pending == 2000
        await store.flush()
        # Nothing new was queued, yet this flush waited for the first one's commit.
        assert await store.last_seq("s1") == 2000
        assert store.tail("s1") == type(store.tail("s1"))(committed=2000, pending=0)
    await store.close()


async def test_an_older_file_is_upgraded_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(V1)
    db.execute(
        "INSERT INTO sessions (id, agent, cwd, created_at, updated_at, status) VALUES ('s1','fake','/','t','t','busy')"
    )
    db.execute("INSERT INTO events VALUES ('s1', 1, 't', 'client', x'7b7d')")
    db.commit()
    db.close()
    store = await opened(path)
    assert await store.schema_version() == SCHEMA_VERSION
    rec = await store.get_session("s1")
    assert rec is not None and rec.status == "busy" and rec.owner is None
    store.append("s1", "agent", b"{}")
    await store.flush()
    assert await seqs(store, "s1") == [1, 2]
    await store.close()

    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(SchemaTooNew) as refused:
        await opened(path)
    assert (
        f"version {SCHEMA_VERSION + 1}" in refused.value.message
        and f"({SCHEMA_VERSION})" in refused.value.message
    )
    degraded = SqliteStore(str(path))
    await degraded.open_or_degrade()
    assert degraded.failed is not None and "newer" in degraded.failed.message
    await degraded.close()


async def test_leases_owner_liveness_and_orphans(tmp_path: Path) -> None:
    me, other = await opened(tmp_path / "s.db"), await opened(tmp_path / "s.db")
    mine = new_instance("stdio", 30.0)
    await me.register(mine)
    remote = elsewhere()
    await other.register(remote)
    await me.create_session(record("a", owner=mine.id))
    await other.create_session(record("b", owner=remote.id, status="busy"))
    await other.create_session(record("c", owner=None))

    assert {i.id for i in await me.instances()} == {mine.id, remote.id}
    assert await me.acquire("a") is None  # already mine
    holder = await me.acquire("b")
    assert holder is not None and holder.id == remote.id and holder.ws_url == "ws://10.0.0.2:8765/acp"
    assert {r.id for r in await me.orphaned_sessions()} == {"c"}

    # The remote daemon stops renewing: once its expiry passes, its sessions are orphans.
    gone = dataclasses.replace(remote, expires_at=time.time() - 1)
    await other.register(gone)
    assert owner_gone(await me.instance(remote.id))
    assert {r.id for r in await me.orphaned_sessions()} == {"b", "c"}
    assert await me.acquire("b") is None
    rec = await me.get_session("b")
    assert rec is not None and rec.owner == mine.id
    # Its heartbeat after the fact does not give it back what was taken.
    await other.heartbeat(30.0)
    assert not owner_gone(await me.instance(remote.id))
    assert (await other.acquire("b")) is not None

    assert await me.forget_instances() == 0
    await other.register(dataclasses.replace(remote, expires_at=time.time() - 1))
    assert await me.forget_instances() == 1
    assert await me.instance(remote.id) is None

    await me.release("b")
    rec = await me.get_session("b")
    assert rec is not None and rec.owner is None
    await me.unregister()
    assert await other.instances() == []
    await me.close()
    await other.close()


async def test_a_daemon_that_lost_its_lease_never_writes_into_the_new_owners_log(tmp_path: Path) -> None:
    old, new = await opened(tmp_path / "s.db"), await opened(tmp_path / "s.db")
    paused = dataclasses.replace(elsewhere(), transport="stdio", ws_url=None)
    await old.register(paused)
    await old.create_session(record("s1", owner=paused.id))
    old.append("s1", "agent", b'{"before":1}')
    await old.flush()
    await old.register(dataclasses.replace(paused, expires_at=time.time() - 1))  # it stopped renewing
    await new.register(new_instance("stdio", 30.0))
    assert await new.acquire("s1") is None
    new.append("s1", "bridge", b'{"takeover":1}')
    await new.flush()
    old.append("s1", "agent", b'{"late":1}')  # the old owner wakes up and writes on
    await old.flush()
    events = await new.events("s1", 0, 10)
    assert [e.message for e in events] == [b'{"before":1}', b'{"takeover":1}']
    assert old.dropped == 1 and old.failed is None
    await old.close()
    await new.close()


async def test_purge_events_removes_a_sessions_log_and_what_is_queued_for_it(tmp_path: Path) -> None:
    store = await opened(tmp_path / "s.db")
    for i in range(50):
        store.append("gone", "agent", b"{}")
        store.append("kept", "agent", b'{"i":%d}' % i)
    await store.flush()
    store.append("gone", "agent", b'{"queued":1}')
    assert await store.purge_events("gone") == 51  # the queued row is committed, then deleted
    await store.flush()
    assert await store.events("gone", 0, 100) == []
    assert await store.last_seq("kept") == 50
    assert store.tail("gone").pending == 0
    await store.close()


async def test_the_store_files_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = await opened(state / "sessions.db")
    store.append("s", "agent", b"{}")
    await store.flush()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for name in ("sessions.db", "sessions.db-wal"):
        assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600, name
    await store.close()
    os.chmod(state / "sessions.db", 0o644)
    store = await opened(state / "sessions.db")
    assert stat.S_IMODE(os.stat(state / "sessions.db").st_mode) == 0o600
    await store.close()


def test_opening_waits_out_another_daemon_creating_the_schema(tmp_path: Path) -> None:
    """Two daemons started together on a new state dir: the second waits for the first's
    schema transaction, however slow the machine, instead of giving up after the log's
    short lock timeout and falling back to a failed in-memory store (which logs nothing)."""
    import threading

    from bridge.store.sqlite import BUSY_TIMEOUT_MS

    path = tmp_path / "sessions.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")  # the other daemon, mid-migration
    store = SqliteStore(str(path))
    outcome: list[BaseException | None] = []
    finished = threading.Event()

    def open_it() -> None:
        try:
            store.open_sync()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)
        finished.set()

    opener = threading.Thread(target=open_it)
    opener.start()
    try:
        # Past the log connection's own lock timeout the opener is still waiting, not failed.
        assert not finished.wait(BUSY_TIMEOUT_MS / 1000 + 0.5), outcome
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert finished.wait(30)
    opener.join()
    assert outcome == [None]
    try:
        assert store.failed is None
        assert int(store._read.db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION  # type: ignore[union-attr]
        busy = store._log.db.execute("PRAGMA busy_timeout").fetchone()[0]  # type: ignore[union-attr]
        # Once open the log connection rests at 0 (its event-loop commits never wait for a
        # lock); its worker-thread writes raise it to BUSY_TIMEOUT_MS for their duration.
        assert busy == 0
    finally:
        store.close_sync()
