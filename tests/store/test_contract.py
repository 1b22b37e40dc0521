"""The store contract (bridge/store/base.py), on both backends: a SQLite file and a real
PostgreSQL server. Two store objects on one backend stand for two daemons sharing it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import anyio
import anyio.lowlevel
import pytest

from bridge.errors import StoreError
from bridge.store.base import (
    SCHEMA_VERSION,
    Instance,
    LogTail,
    SchemaTooNew,
    SessionRecord,
    Store,
    new_instance,
)
from tests.store.backends import WAVE1_SESSION, Backend

pytestmark = pytest.mark.anyio

T0 = "2026-01-01T00:00:00.000Z"


def rec(sid: str, cwd: str = "/w", updated: str = T0, **fields: object) -> SessionRecord:
    return SessionRecord(id=sid, agent="fake", cwd=cwd, created_at=T0, updated_at=updated, **fields)  # type: ignore[arg-type]


@asynccontextmanager
async def stores(backend: Backend, n: int = 1) -> AsyncIterator[list[Store]]:
    opened = [await backend.opened() for _ in range(n)]
    try:
        yield opened
    finally:
        for s in opened:
            await s.close()


async def seqs(store: Store, sid: str) -> list[int]:
    return [e.seq for e in await store.events(sid, 0, 1_000_000)]


def expired(inst: Instance) -> Instance:
    return replace(inst, heartbeat_at=time.time() - 120, expires_at=time.time() - 60)


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


# -- catalog ------------------------------------------------------------------------------------
async def test_catalog_create_get_update_round_trips_every_field(backend: Backend) -> None:
    async with stores(backend) as (s,):
        hostile = "/tmp/it's \"quoted\" ; DROP TABLE sessions; -- ünïcødé 🚀"
        original = rec(
            "s1",
            cwd=hostile,
            agent_session_id="native-1",
            additional_directories=["/a", hostile],
            mcp_servers=[{"name": "m", "command": "x", "args": ["--y"], "env": [{"name": "K", "value": "v"}]}],
            title=hostile,
            parent_id="p0",
            agent_path="/bin/fake",
            agent_version="1.2.3",
            metrics={"turns": 2, "tokens": {"input": 42, "total": 49}, "costRun": [0.25, "USD"], "toolUsage": {hostile: 1}},
        )
        await s.create_session(original)
        assert await s.get_session("s1") == original
        assert await s.get_session("nope") is None

        await s.update_session("s1", touch=False, status="busy")
        got = await s.get_session("s1")
        assert got is not None and got.status == "busy" and got.updated_at == T0
        await s.update_session("s1", title="new", archived=True)
        got = await s.get_session("s1")
        assert got is not None and got.title == "new" and got.archived and got.updated_at > T0
        await s.update_session("unknown-session", title="x")  # no-op, no error
        counters = {"turns": 3, "tokens": {"thought": 5}, "costDone": {"EUR": 1.5}, "costRun": None}
        await s.update_session("s1", touch=False, metrics=counters)
        got = await s.get_session("s1")
        assert got is not None and got.metrics == counters

        await s.update_session("s1", deleted=True)
        got = await s.get_session("s1")
        assert got is not None and got.deleted  # still there: the id answers -32002, not "new"
        assert await s.list_sessions(cwd=None, offset=0, limit=10) == []


async def test_nul_characters_never_break_the_store(backend: Backend) -> None:
    """Hostile text: a NUL in an id or a filter finds nothing; in a stored field it is kept
    (SQLite) or refused with a StoreError (PostgreSQL text cannot hold it); the store goes on."""
    async with stores(backend) as (s,):
        await s.register(new_instance("stdio", 30))
        await s.create_session(rec("s1"))
        assert await s.get_session("s1\x00") is None
        assert await s.list_sessions(cwd="/w\x00", offset=0, limit=10) == []
        assert await s.events("s1\x00", 0, 10) == []
        assert await s.last_seq("s1\x00") == 0
        await s.update_session("s1\x00", title="x")
        try:
            await s.update_session("s1", title="a\x00b")
        except StoreError as exc:
            assert "NUL" in exc.message
        else:
            assert (await s.get_session("s1")).title == "a\x00b"  # type: ignore[union-attr]
        await s.update_session("s1", mcp_servers=[{"name": "n\x00", "command": "c"}])
        assert (await s.get_session("s1")).mcp_servers == [{"name": "n\x00", "command": "c"}]  # type: ignore[union-attr]
        s.append("s1", "agent", b"{}")
        await s.flush()
        assert await seqs(s, "s1") == [1] and s.failed is None


async def test_list_orders_by_last_activity_pages_and_filters(backend: Backend) -> None:
    async with stores(backend, 2) as (a, b):
        for i in range(7):
            await a.create_session(rec(f"s{i}", cwd="/one" if i % 2 else "/two", updated=f"2026-01-0{i + 1}T00:00:00.000Z"))
        # Ties on updated_at are broken by id, in byte order.
        await a.create_session(rec("B-tie", updated="2026-01-07T00:00:00.000Z"))
        await a.update_session("s3", archived=True, touch=False)

        listed = [r.id for r in await b.list_sessions(cwd=None, offset=0, limit=100)]
        assert listed == ["B-tie", "s6", "s5", "s4", "s3", "s2", "s1", "s0"]
        pages = [await b.list_sessions(cwd=None, offset=o, limit=3) for o in (0, 3, 6, 9)]
        assert [[r.id for r in p] for p in pages] == [listed[0:3], listed[3:6], listed[6:], []]
        assert [r.id for r in await b.list_sessions(cwd="/one", offset=0, limit=100)] == ["s5", "s3", "s1"]
        assert [r.id for r in await b.list_sessions(cwd="/one", offset=0, limit=100, include_archived=False)] == [
            "s5",
            "s1",
        ]
        assert await b.list_sessions(cwd="/none", offset=0, limit=100) == []


# -- event log ----------------------------------------------------------------------------------
async def test_seq_is_gap_free_and_unique_with_two_daemons_writing_one_session(backend: Backend) -> None:
    rounds, per_round = 40, 25
    async with stores(backend, 2) as (a, b):
        await a.create_session(rec("shared"))

        async def writer(store: Store, tag: bytes) -> None:
            for r in range(rounds):
                for i in range(per_round):
                    store.append("shared", "agent", b'{"w":"%s","r":%d,"i":%d}' % (tag, r, i))
                    store.append(f"own-{tag.decode()}", "agent", b"{}")
                await store.flush()

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer, a, b"a")
            tg.start_soon(writer, b, b"b")
        total = 2 * rounds * per_round
        assert await seqs(a, "shared") == list(range(1, total + 1))
        assert await seqs(b, "own-a") == list(range(1, rounds * per_round + 1))
        assert await a.last_seq("shared") == total
        # Each writer's own rows keep their order.
        messages = [e.message for e in await b.events("shared", 0, total)]
        mine = [m for m in messages if b'"w":"a"' in m]
        assert mine == sorted(mine, key=lambda m: (int(m.split(b'"r":')[1].split(b",")[0]), int(m.split(b'"i":')[1][:-1])))
        assert a.dropped == b.dropped == 0


async def test_flush_returns_only_when_everything_appended_before_it_is_committed(backend: Backend) -> None:
    async with stores(backend) as (s,):
        assert s.tail("x") == LogTail(0, 0)
        for i in range(3000):
            s.append("x", "agent", b'{"i":%d}' % i)
        assert s.tail("x").pending == 3000
        first_done = anyio.Event()

        async def first() -> None:
            await s.flush()
            first_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await anyio.lowlevel.checkpoint()  # the first flush takes its batch, then waits on I/O
            assert s.tail("x").pending == 3000  # taken, not committed
            # Nothing new queued, yet this flush may not return before the first one's rows are in.
            await s.flush()
            assert await seqs(s, "x") == list(range(1, 3001))
            s.append("x", "client", b'{"last":true}')
            # Overlapping flush: must not return before the first batch AND this row are in.
            await s.flush()
            assert await seqs(s, "x") == list(range(1, 3002))
            assert s.tail("x") == LogTail(3001, 0)
        assert first_done.is_set()
        await s.flush()  # nothing queued: returns at once
        events = await s.events("x", 2999, 10)
        assert [(e.seq, e.direction, e.message) for e in events] == [
            (3000, "agent", b'{"i":2999}'),
            (3001, "client", b'{"last":true}'),
        ]


async def test_a_flush_cancelled_mid_commit_loses_nothing(backend: Backend) -> None:
    """A client writer cancelled while it commits (the client went away) must not take the
    rows of every session in the batch with it."""
    async with stores(backend) as (s,):
        for i in range(3000):
            s.append(f"s{i % 3}", "agent", b'{"i":%d}' % i)
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.flush)
            await anyio.lowlevel.checkpoint()  # the flush has taken its batch
            tg.cancel_scope.cancel()
        await s.flush()
        for k in range(3):
            assert await seqs(s, f"s{k}") == list(range(1, 1001))
        assert s.dropped == 0


async def test_messages_are_kept_byte_for_byte(backend: Backend) -> None:
    async with stores(backend) as (s,):
        odd = [b"", b"\x00\xff\xfe binary", '{"t":"ünï 🚀 \\u0000"}'.encode(), b"x" * 1_000_000]
        for m in odd:
            s.append("bytes", "bridge", m)
        await s.flush()
        assert [e.message for e in await s.events("bytes", 0, 10)] == odd


async def test_purge_deletes_committed_and_queued_rows(backend: Backend) -> None:
    async with stores(backend) as (s,):
        for i in range(10):
            s.append("gone", "agent", b'{"i":%d}' % i)
            s.append("kept", "agent", b'{"i":%d}' % i)
        await s.flush()
        s.append("gone", "agent", b'{"queued":true}')
        # The queued row is purged too (a backend may commit it first and count it).
        assert await s.purge_events("gone") in (10, 11)
        await s.flush()
        assert await s.events("gone", 0, 100) == []
        assert await seqs(s, "kept") == list(range(1, 11))
        assert await s.purge_events("gone") == 0


# -- instances and leases -----------------------------------------------------------------------
async def test_leases_acquire_conflict_release_and_unregister(backend: Backend) -> None:
    async with stores(backend, 2) as (a, b):
        me_a, me_b = new_instance("stdio", 30), new_instance("websocket", 30, "ws://127.0.0.1:1/acp")
        await a.register(me_a)
        await b.register(me_b)
        await a.create_session(rec("s"))
        assert await a.acquire("s") is None
        assert await a.acquire("s") is None  # already ours
        owner = await b.acquire("s")
        assert owner is not None and owner.id == me_a.id and owner.pid == os.getpid()
        got = await b.get_session("s")
        assert got is not None and got.owner == me_a.id
        assert {i.id for i in await b.instances()} == {me_a.id, me_b.id}
        got_b = await b.instance(me_b.id)
        assert got_b is not None and replace(got_b, heartbeat_at=0, expires_at=0) == replace(
            me_b, heartbeat_at=0, expires_at=0
        )
        # Times may come back through the server's clock (PostgreSQL): equal within a round trip.
        assert got_b.expires_at == pytest.approx(me_b.expires_at, abs=1.0)

        await b.release("s")  # not b's: nothing changes
        assert (await a.get_session("s")).owner == me_a.id  # type: ignore[union-attr]
        await a.release("s")
        assert (await a.get_session("s")).owner is None  # type: ignore[union-attr]
        assert await b.acquire("s") is None
        await b.unregister()
        assert (await a.get_session("s")).owner is None  # type: ignore[union-attr]
        assert await a.instance(me_b.id) is None


async def test_heartbeat_extends_the_lease(backend: Backend) -> None:
    async with stores(backend) as (s,):
        me = new_instance("stdio", 1)
        await s.register(me)
        expires = await s.heartbeat(600)
        assert expires >= time.time() + 590
        renewed = await s.instance(me.id)
        assert renewed is not None and renewed.expires_at == pytest.approx(expires)


async def test_an_expired_owner_is_taken_over_and_its_late_rows_are_dropped(backend: Backend) -> None:
    async with stores(backend, 2) as (a, b):
        me_a = new_instance("stdio", 30)
        await a.register(me_a)
        await a.create_session(rec("s", status="busy"))
        assert await a.acquire("s") is None
        a.append("s", "agent", b'{"before":true}')
        await a.flush()

        await b.register(new_instance("stdio", 30))
        assert [r.id for r in await b.orphaned_sessions()] == []  # a is alive
        await a.register(expired(me_a))  # a stops heartbeating (as if frozen or killed)
        assert [r.id for r in await b.orphaned_sessions()] == ["s"]
        assert me_a.id not in {i.id for i in await b.instances()}
        assert await b.acquire("s") is None
        assert (await b.get_session("s")).owner != me_a.id  # type: ignore[union-attr]

        # The old owner wakes up and writes: its rows never reach the new owner's log.
        a.append("s", "agent", b'{"late":true}')
        await a.flush()
        assert a.dropped == 1
        b.append("s", "bridge", b'{"taken":true}')
        await b.flush()
        assert [e.message for e in await b.events("s", 0, 10)] == [b'{"before":true}', b'{"taken":true}']

        # Its heartbeat comes back: the registration returns, the session stays with b.
        await a.heartbeat(30)
        assert me_a.id in {i.id for i in await b.instances()}
        assert (await a.acquire("s")) is not None


async def test_taken_over_lists_the_sessions_another_instance_holds(backend: Backend) -> None:
    async with stores(backend, 2) as (a, b):
        me_a, me_b = new_instance("stdio", 30), new_instance("stdio", 30)
        await a.register(me_a)
        await b.register(me_b)
        for sid in ("mine", "theirs", "nobody's"):
            await a.create_session(rec(sid))
        assert await a.acquire("mine") is None
        assert await b.acquire("theirs") is None
        assert await a.taken_over() == {"theirs": me_b.id}
        assert await b.taken_over() == {"mine": me_a.id}
        await a.register(expired(me_a))
        assert await b.acquire("mine") is None  # a's lease ran out: b takes it
        assert await a.taken_over() == {"mine": me_b.id, "theirs": me_b.id}
        assert await b.taken_over() == {}


async def test_two_daemons_taking_over_one_session_at_once_never_both_get_it(backend: Backend) -> None:
    async with stores(backend, 3) as (dead, b, c):
        gone = expired(new_instance("stdio", 30))
        await dead.register(gone)
        await dead.create_session(rec("s", status="busy"))
        await dead.update_session("s", owner=gone.id, touch=False)
        me_b, me_c = new_instance("stdio", 30), new_instance("stdio", 30)
        await b.register(me_b)
        await c.register(me_c)
        results: dict[str, Instance | None] = {}

        async def take(store: Store, name: str) -> None:
            results[name] = await store.acquire("s")

        for _round in range(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(take, b, "b")
                tg.start_soon(take, c, "c")
            winners = [n for n, holder in results.items() if holder is None]
            assert len(winners) == 1, results
            loser = "c" if winners == ["b"] else "b"
            assert results[loser] is not None and results[loser].id == (me_b if winners == ["b"] else me_c).id  # type: ignore[union-attr]
            owner = (await b.get_session("s")).owner  # type: ignore[union-attr]
            assert owner == (me_b if winners == ["b"] else me_c).id
            # The winner "dies" too: the next round races for it again.
            await (b if winners == ["b"] else c).release("s")
            await dead.update_session("s", owner=gone.id, touch=False)


async def test_owner_liveness_is_host_aware(backend: Backend) -> None:
    async with stores(backend, 2) as (a, b):
        await b.register(new_instance("stdio", 30))
        pid = dead_pid()
        here = replace(new_instance("stdio", 300), pid=pid, pid_started_at=1.0)
        there = replace(new_instance("stdio", 300), pid=pid, host="another-machine.example")
        for inst, sid in ((here, "here"), (there, "there")):
            await a.register(inst)
            await a.create_session(rec(sid))
            assert await a.acquire(sid) is None
        # Same host, pid dead: gone at once. Another host: its pid means nothing here, so
        # it is trusted until its registration expires.
        assert [r.id for r in await b.orphaned_sessions()] == ["here"]
        assert await b.acquire("here") is None
        owner = await b.acquire("there")
        assert owner is not None and owner.host == "another-machine.example"
        assert {i.id for i in await b.instances()} >= {there.id}
        assert here.id not in {i.id for i in await b.instances()}


async def test_forget_instances_removes_the_gone_and_frees_their_sessions(backend: Backend) -> None:
    async with stores(backend, 2) as (a, b):
        alive = new_instance("stdio", 300)
        await b.register(alive)
        gone = expired(new_instance("stdio", 30))
        await a.register(gone)
        await a.create_session(rec("s"))
        await a.update_session("s", owner=gone.id, touch=False)
        assert await b.forget_instances() == 1
        assert await b.instance(gone.id) is None
        assert await b.instance(alive.id) is not None
        assert (await b.get_session("s")).owner is None  # type: ignore[union-attr]
        assert await b.forget_instances() == 0


# -- schema versions ----------------------------------------------------------------------------
async def test_an_older_schema_is_upgraded_and_its_log_continues(backend: Backend) -> None:
    await backend.make_version_1(events=5)
    async with stores(backend) as (s,):
        assert await s.schema_version() == SCHEMA_VERSION
        old = await s.get_session(WAVE1_SESSION[0])
        assert old is not None and old.cwd == WAVE1_SESSION[2] and old.owner is None
        # Version 3's metrics column: empty for the old rows, written like any other field.
        assert old.metrics is None
        await s.update_session(old.id, touch=False, metrics={"turns": 1})
        assert (again := await s.get_session(old.id)) is not None and again.metrics == {"turns": 1}
        await s.register(new_instance("stdio", 30))
        assert await s.acquire(old.id) is None
        s.append(old.id, "bridge", b'{"after":"upgrade"}')
        await s.flush()
        assert await seqs(s, old.id) == [1, 2, 3, 4, 5, 6]
    # Opening again (another daemon) finds it current and changes nothing.
    async with stores(backend, 2) as (a, b):
        assert await a.schema_version() == await b.schema_version() == SCHEMA_VERSION


async def test_a_version_2_store_gains_the_metrics_column_and_keeps_its_sessions(backend: Backend) -> None:
    await backend.make_version_2()
    async with stores(backend) as (s,):
        assert await s.schema_version() == SCHEMA_VERSION == 4
        old = await s.get_session(WAVE1_SESSION[0])
        assert old is not None and old.metrics is None
        await s.update_session(old.id, metrics={"turns": 4})
        assert (got := await s.get_session(old.id)) is not None and got.metrics == {"turns": 4}
        assert await seqs(s, old.id) == [1, 2]


async def test_a_newer_schema_is_refused_naming_both_versions(backend: Backend) -> None:
    async with stores(backend):
        pass
    await backend.set_version(SCHEMA_VERSION + 7)
    store = backend.new()
    try:
        with pytest.raises(SchemaTooNew) as err:
            await store.open()
    finally:
        with contextlib.suppress(Exception):
            await store.close()
    assert str(SCHEMA_VERSION + 7) in err.value.message and str(SCHEMA_VERSION) in err.value.message
    assert "upgrade agent-bridge" in err.value.message
