"""Several messages per log row (bridge/store/packing.py, schema version 4): what a reader
gets is exactly what a row per message gave — one event per message, its own seq, time,
direction and bytes — for every `after` and `limit`, on both backends; older stores (a row
per message) read the same after the upgrade; a streamed turn takes far fewer rows."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from bisect import bisect_right
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.store.base import SCHEMA_VERSION, Event, Store, UpgradeBlocked
from bridge.store.packing import MAX_BYTES, MAX_MESSAGES, pack, unpack
from bridge.store.sqlite import SqliteStore
from tests.conftest import in_process
from tests.store.backends import WAVE1_SESSION, Backend
from tests.store.test_durability import all_events

LIMITS = (1, 2, 3, MAX_MESSAGES - 1, MAX_MESSAGES, MAX_MESSAGES + 1)
DIRECTIONS = ("client", "agent", "bridge")
# Bodies that must stand alone (a raw newline; too big to share a row) beside ordinary ones.
BODIES = (b'{"n":%d}', b"%d", b"", b'{"pretty":\n%d}', b"\n", b"y" * (MAX_BYTES // 3) + b"%d")


def body(template: bytes, i: int) -> bytes:
    return template % i if b"%d" in template else template


# Runs of like messages (one direction, one millisecond), long enough to hit the row cap.
segments = st.lists(
    st.tuples(
        st.integers(1, 2 * MAX_MESSAGES + 3),
        st.sampled_from(DIRECTIONS),
        st.sampled_from(("2026-01-01T00:00:00.001Z", "2026-01-01T00:00:00.002Z")),
        st.sampled_from(BODIES),
    ),
    max_size=6,
)


def window(model: list[Event], after: int, limit: int) -> list[Event]:
    """What a row per message returns for `seq > after LIMIT limit`."""
    return [e for e in model if e.seq > after][:limit]


@settings(max_examples=100, deadline=None)
@given(segments, st.integers(0, 5))
def test_any_read_of_packed_rows_equals_a_row_per_message(
    runs: list[tuple[int, str, str, bytes]], head: int
) -> None:
    # A few of the big bodies are enough to pass the byte cap.
    messages = [(d, at, body(b, i)) for count, d, at, b in runs for i in range(count if len(b) < 99 else 4)]
    rows = pack([("s", at, d, m) for d, at, m in messages])
    model = [Event(head + i + 1, at, d, m) for i, (d, at, m) in enumerate(messages)]  # type: ignore[arg-type]
    assert sum(n for _, n, *_ in rows) == len(messages)
    assert all(1 <= n <= MAX_MESSAGES for _, n, *_ in rows)
    assert all(len(m) < MAX_BYTES or n == 1 for _, n, _, _, m in rows)
    # The rows as the store keeps them (the seq of each is its last message's) and the
    # query it runs: `seq > after ORDER BY seq LIMIT limit`.
    stored = [(head + k, n, at, d, m) for k, n, at, d, m in rows]
    keys = [r[0] for r in stored]
    for after in range(head + len(messages) + 1):
        first = bisect_right(keys, after)
        past = model[max(0, after - head) :]
        for limit in (*LIMITS, *([len(model) + 1] if after % 37 == 0 else [])):
            got = unpack(stored[first : first + limit], after, limit)  # type: ignore[arg-type]
            assert got == past[:limit], (after, limit)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(
            st.tuples(st.sampled_from(("a", "b")), st.sampled_from(DIRECTIONS), st.sampled_from(BODIES[:4]))
        ),
        max_size=5,
    )
)
def test_the_sqlite_store_reads_back_every_window_of_every_commit(
    batches: list[list[tuple[str, str, bytes]]],
) -> None:
    """Commits of interleaved sessions and directions, through the real store: every window
    equals a row per message (seq 1..n, in order); no row spans two commits."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "s.db")

        async def run() -> None:
            store = SqliteStore(path)
            await store.open()
            sent: dict[str, list[tuple[str, bytes]]] = {"a": [], "b": []}
            commits: dict[str, list[int]] = {"a": [], "b": []}  # the seq each commit ended at
            for i, batch in enumerate(batches):
                for j, (sid, d, b) in enumerate(batch):
                    store.append(sid, d, body(b, i * 1000 + j))  # type: ignore[arg-type]
                    sent[sid].append((d, body(b, i * 1000 + j)))
                await store.flush()
                for sid in sent:
                    commits[sid].append(len(sent[sid]))
            for sid, expected in sent.items():
                full = await store.events(sid, 0, 100_000)
                assert [(e.seq, e.direction, e.message) for e in full] == [
                    (k + 1, d, m) for k, (d, m) in enumerate(expected)
                ]
                for after in range(len(full) + 1):
                    for limit in (1, 2, 5):
                        assert await store.events(sid, after, limit) == window(full, after, limit)
                assert await store.last_seq(sid) == len(full)
            await store.close()
            db = sqlite3.connect(path)
            for sid, ends in commits.items():
                for seq, n in db.execute("SELECT seq, n FROM events WHERE session_id = ?", (sid,)):
                    # A row ends inside one commit: it starts after the previous commit's end.
                    before = max([e for e in ends if e < seq], default=0)
                    assert seq - n >= before
            db.close()

        anyio.run(run)


async def _windows_match(store: Store, sid: str, model: list[tuple[str, bytes]]) -> None:
    full = await store.events(sid, 0, 100_000)
    assert [(e.seq, e.direction, e.message) for e in full] == [
        (k + 1, d, m) for k, (d, m) in enumerate(model)
    ]
    for after in range(len(full) + 1):
        for limit in LIMITS:
            assert await store.events(sid, after, limit) == window(full, after, limit), (after, limit)


@pytest.mark.anyio
async def test_one_commit_packs_a_sessions_messages_and_every_window_reads_right(backend: Backend) -> None:
    store = await backend.opened()
    try:
        model: list[tuple[str, bytes]] = []
        for i in range(300):
            d = "client" if i in (40, 41, 200) else "agent"
            m = b'{"pretty":\n%d}' % i if i == 100 else b'{"i":%d}' % i
            store.append("p", d, m)  # type: ignore[arg-type]
            store.append("q", "agent", b'{"q":%d}' % i)
            model.append((d, m))
        await store.flush()
        rows = await backend.log_rows("p")
        assert sum(n for _, n in rows) == 300 and len(rows) < 300 // 4
        assert max(n for _, n in rows) <= MAX_MESSAGES
        await _windows_match(store, "p", model)
        assert await store.last_seq("p") == 300
        assert await store.purge_events("p") == 300  # messages, not rows
        assert await store.events("p", 0, 10) == [] and await store.last_seq("q") == 300
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_version_3_store_reads_the_same_after_the_upgrade_and_packs_from_then_on(
    backend: Backend,
) -> None:
    await backend.make_version_3(events=70)
    sid = WAVE1_SESSION[0]
    store = await backend.opened()
    try:
        assert await store.schema_version() == SCHEMA_VERSION == 4
        old = [("agent", b'{"n":%d}' % i) for i in range(1, 71)]
        assert await backend.log_rows(sid) == [(i, 1) for i in range(1, 71)]
        await _windows_match(store, sid, old)
        assert all(e.at == "2025-01-01T00:00:00.000Z" for e in await store.events(sid, 0, 100))
        new = [("bridge", b'{"after":%d}' % i) for i in range(100)]
        for d, m in new:
            store.append(sid, d, m)  # type: ignore[arg-type]
        await store.flush()
        assert len(await backend.log_rows(sid)) < 70 + 100 // 4
        await _windows_match(store, sid, old + new)
        assert await store.last_seq(sid) == 170
        assert await store.purge_events(sid) == 170
    finally:
        await store.close()


@pytest.mark.anyio
async def test_the_upgrade_waits_until_no_older_daemon_uses_the_store(backend: Backend) -> None:
    # An older daemon still running on the store would read packed rows as one message each.
    await backend.make_version_3(events=3)
    await backend.register_instance("older-daemon", pid=os.getpid(), expires_in=60.0)
    with pytest.raises(UpgradeBlocked) as blocked:
        await backend.opened()
    assert f"pid {os.getpid()}" in blocked.value.message and "schema version 3" in blocked.value.message
    assert await backend.stored_version() == 3  # left as it was
    await backend.register_instance("older-daemon", pid=os.getpid(), expires_in=-1.0)  # it is gone
    store = await backend.opened()
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert [e.seq for e in await store.events(WAVE1_SESSION[0], 0, 10)] == [1, 2, 3]
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_streamed_turn_takes_fewer_rows_than_messages(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        assert (await c.prompt(sid, "stream 500"))["stopReason"] == "end_turn"
        events = await all_events(c, sid)
    db = sqlite3.connect(tmp_path / "state" / "sessions.db")
    try:
        sql = "SELECT COUNT(*), SUM(n), MAX(seq) FROM events WHERE session_id = ?"
        rows, messages, last = db.execute(sql, (sid,)).fetchone()
    finally:
        db.close()
    # The daemon's shutdown logged a record or two after the read.
    assert messages == last >= len(events) > 500
    assert rows < messages, (rows, messages)
