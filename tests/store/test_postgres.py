"""PostgreSQL-only behaviour: the server unreachable at start, lost and back mid-run, and the
URL's password never shown."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bridge.errors import StoreError
from bridge.store import pg_conn, pg_url
from bridge.store.base import SCHEMA_VERSION, SessionRecord, new_instance
from bridge.store.postgres import PostgresStore
from tests import pg_cluster
from tests.conftest import bridge_cmd, in_process, subprocess_env
from tests.real_agents import REQUIRE_ENV, required
from tests.store.test_durability import all_events, assert_gap_free

pytestmark = pytest.mark.anyio
T0 = "2026-01-01T00:00:00.000Z"


def psycopg_dict(url: str) -> dict[str, object]:
    import psycopg

    return dict(psycopg.conninfo.conninfo_to_dict(url))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there once the socket is closed


@pytest.fixture
def own_cluster() -> Iterator[pg_cluster.Cluster]:
    """A cluster of this test alone: it is stopped and started again mid-test."""
    try:
        with pg_cluster.cluster() as c:
            yield c
    except pg_cluster.Unavailable as exc:
        if required():
            pytest.fail(f"{exc} ({REQUIRE_ENV}=1)")
        pytest.skip(str(exc))


def test_masking_hides_the_password_wherever_it_is() -> None:
    assert pg_url.mask("postgresql://ann:s3cr%40t@db.example:5433/bridge") == "postgresql://ann:***@db.example:5433/bridge"
    assert pg_url.mask("postgresql://ann@db/bridge?password=s3cret&sslmode=require") == (
        "postgresql://ann@db/bridge?password=***&sslmode=require"
    )
    assert pg_url.mask("postgresql://ann@[::1]/x") == "postgresql://ann@[::1]/x"
    assert "s3cret" not in pg_url.mask("postgresql://ann:s3cret@host:notaport/x")
    assert pg_url.check("postgresql://ann:pw@host:99999/x") is not None
    env = {"PGPASSWORD": "p@ss/w:rd", "HOME": "/h"}
    taken = pg_url.take_env_password("postgresql://ann@db:5432/b", env)
    assert env == {"HOME": "/h"} and taken == "postgresql://ann:p%40ss%2Fw%3Ard@db:5432/b"
    assert psycopg_dict(taken)["password"] == "p@ss/w:rd"
    env = {"PGPASSWORD": "other"}
    assert pg_url.take_env_password("postgresql://ann:mine@db/b", env) == "postgresql://ann:mine@db/b" and not env
    assert pg_url.check("mysql://ann:s3cret@host/x") == (
        "store URL mysql://ann:***@host/x: only postgresql://… URLs (or a SQLite file path) are supported"
    )


async def test_unreachable_at_start_raises_one_line_with_the_password_masked() -> None:
    url = f"postgresql://bridge:hunter2-secret@127.0.0.1:{closed_port()}/bridge"
    store = PostgresStore(url)
    with pytest.raises(pg_url.StoreUnavailable) as err:
        await store.open()
    await store.close()
    assert "hunter2-secret" not in err.value.message
    assert f"postgresql://bridge:***@127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/bridge" in err.value.message
    assert "\n" not in err.value.message


async def test_the_daemon_exits_2_naming_the_masked_url(tmp_path: object) -> None:
    import anyio

    url = f"postgresql://bridge:hunter2-secret@127.0.0.1:{closed_port()}/bridge"
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [*bridge_cmd(), "--state-dir", str(tmp_path), "--log-level", "error"],
            input=b"",
            env=subprocess_env(AGENT_BRIDGE_STORE=url),
            check=False,
        )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "postgresql://bridge:***@127.0.0.1:" in lines[0], err
    assert "hunter2-secret" not in err


async def test_server_lost_mid_run_degrades_the_log_then_it_resumes_gap_free(
    own_cluster: pg_cluster.Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Reconnect attempts are rate-limited in time; here every call may try at once.
    monkeypatch.setattr(pg_conn, "RETRY_MIN", 0.0)
    monkeypatch.setattr(pg_conn, "RETRY_MAX", 0.0)
    caplog.set_level(logging.DEBUG)
    url = own_cluster.create_database()
    store = PostgresStore(url)
    await store.open()
    await store.register(new_instance("stdio", 30))
    await store.create_session(SessionRecord("s", "fake", "/w", T0, T0))
    assert await store.acquire("s") is None
    for i in range(5):
        store.append("s", "agent", b'{"i":%d}' % i)
    await store.flush()

    own_cluster.stop()
    store.append("s", "agent", b'{"lost":1}')
    await store.flush()  # never raises: the log degrades
    assert store.failed is not None and "history misses" in store.failed.message
    store.append("s", "agent", b'{"lost":2}')
    await store.flush()
    assert store.dropped == 2
    with pytest.raises(StoreError) as err:
        await store.get_session("s")
    assert own_cluster.password not in err.value.message and "***" in err.value.message

    own_cluster.start()
    for _attempt in range(5):  # connections the restart cut are found dead one call each
        try:
            await store.heartbeat(30)
            break
        except StoreError:
            continue
    assert store.failed is None
    store.append("s", "agent", b'{"after":true}')
    await store.flush()
    events = await store.events("s", 0, 100)
    assert [e.seq for e in events] == list(range(1, 8))
    gap = orjson.loads(events[5].message)
    assert gap == {"bridge": {"type": "log_gap", "dropped": 2, "reason": "session store could not be written"}}
    assert events[6].message == b'{"after":true}'
    await store.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ("connection lost" in logged or "closed by the server" in logged) and "resumes" in logged
    assert own_cluster.password not in logged


async def test_the_stdio_start_up_path_never_imports_psycopg(tmp_path: object) -> None:
    import anyio

    with anyio.fail_after(60):
        done = await anyio.run_process(
            [*bridge_cmd(), "--state-dir", str(tmp_path)],
            input=b"",
            env=subprocess_env(PYTHONPROFILEIMPORTTIME="1"),
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    imported = done.stderr.decode()
    assert "bridge.store.sqlite" in imported and "psycopg" not in imported


async def test_a_daemon_keeps_serving_turns_while_the_server_is_down(
    own_cluster: pg_cluster.Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import anyio

    monkeypatch.setattr(pg_conn, "RETRY_MIN", 0.0)
    monkeypatch.setattr(pg_conn, "RETRY_MAX", 0.0)
    async with in_process(tmp_path, store=own_cluster.create_database()) as d:
        c, store = d.client, d.bridge.store
        await c.initialize()
        sid = await c.new_session(d.cwd)
        with anyio.fail_after(60):
            assert (await c.prompt(sid, "stream 5"))["stopReason"] == "end_turn"
            own_cluster.stop()
            assert (await c.prompt(sid, "stream 7"))["stopReason"] == "end_turn"
            assert c.text(sid).count("chunk ") == 12
            assert store.failed is not None and store.dropped > 0
            own_cluster.start()
            for _attempt in range(5):  # what the manager's next heartbeat does
                try:
                    await store.heartbeat(30)
                    break
                except StoreError:
                    continue
            assert store.failed is None
            assert (await c.prompt(sid, "echo back again"))["stopReason"] == "end_turn"
        events = await all_events(c, sid)
        assert_gap_free(events)
        gaps = [e["message"]["bridge"] for e in events if e["direction"] == "bridge" and "log_gap" in str(e["message"])]
        assert len(gaps) == 1 and gaps[0]["dropped"] == store.dropped
        assert "back again" in str(events[-5:])
        assert "warning" not in await c.request("_bridge/session/info", {"sessionId": sid})


async def test_doctor_checks_the_postgresql_store_without_changing_it(pg_url: str) -> None:
    from bridge.diagnostics.doctor import check_postgres_store

    fresh = await check_postgres_store(pg_url)
    assert fresh.status == "ok" and "no schema yet" in fresh.summary
    store = PostgresStore(pg_url)
    await store.open()
    await store.register(new_instance("stdio", 30))
    await store.create_session(SessionRecord("s", "fake", "/w", T0, T0))
    used = await check_postgres_store(pg_url)
    assert used.status == "ok" and f"schema {SCHEMA_VERSION}, 1 sessions, 1 live daemon(s)" in used.summary
    await store.close()

    down = await check_postgres_store(f"postgresql://bridge:hunter2-secret@127.0.0.1:{closed_port()}/x")
    assert down.status == "error" and "***" in down.summary and "hunter2-secret" not in str(down)


def test_the_store_setting_is_checked_at_start(tmp_path: Path) -> None:
    import subprocess

    from bridge.config import ConfigError, load_config

    good = tmp_path / "good.toml"
    good.write_text('store = "postgresql://bridge@db.example:5432/bridge"\n')
    assert load_config(str(good)).store == "postgresql://bridge@db.example:5432/bridge"
    bad = tmp_path / "bad.toml"
    bad.write_text('store = "mysql://bridge:hunter2-secret@db/bridge"\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(bad))
    assert "hunter2-secret" not in str(err.value) and "only postgresql://" in str(err.value)
    # --store is accepted before and after the subcommand, and checked before anything starts.
    for argv in (["--store", "redis://x:hunter2-secret@h/0", "serve"], ["serve", "--store", "redis://h/0"]):
        done = subprocess.run(
            [*bridge_cmd(), "--state-dir", str(tmp_path / "s"), *argv],
            input=b"",
            capture_output=True,
            env=subprocess_env(),
            timeout=60,
        )
        assert done.returncode == 2 and b"only postgresql://" in done.stderr and b"hunter2" not in done.stderr


async def test_a_daemon_whose_clock_is_an_hour_behind_is_still_judged_alive(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases are judged on the server's clock: a daemon on a machine whose clock is wrong
    registers a lease as long as it asked for, not one that expired an hour ago."""
    import time

    real = time.time
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await a.open()
    await b.open()
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # a's machine
    me_a = new_instance("stdio", 30)
    await a.register(me_a)
    await a.create_session(SessionRecord("s", "fake", "/w", T0, T0, status="busy"))
    assert await a.acquire("s") is None
    assert await a.heartbeat(30) == pytest.approx(real() - 3600 + 30, abs=2)  # in a's own clock
    monkeypatch.setattr(time, "time", real)  # b's machine, on time
    await b.register(new_instance("stdio", 30))
    seen = await b.instance(me_a.id)
    assert seen is not None and seen.expires_at == pytest.approx(real() + 30, abs=2)
    assert me_a.id in {i.id for i in await b.instances()}
    assert await b.orphaned_sessions() == []
    holder = await b.acquire("s")
    assert holder is not None and holder.id == me_a.id
    await a.close()
    await b.close()


async def test_a_long_external_lock_degrades_the_log_and_nothing_commits_behind_its_back(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio
    import psycopg

    from bridge.store import postgres

    monkeypatch.setattr(postgres, "LOG_STATEMENT_TIMEOUT", 0.5)
    monkeypatch.setattr(pg_conn, "RETRY_MIN", 0.0)
    monkeypatch.setattr(pg_conn, "RETRY_MAX", 0.0)
    store = PostgresStore(pg_url)
    await store.open()
    await store.register(new_instance("stdio", 30))
    await store.create_session(SessionRecord("s", "fake", "/w", T0, T0))
    assert await store.acquire("s") is None
    store.append("s", "agent", b'{"before":true}')
    await store.flush()
    async with await psycopg.AsyncConnection.connect(pg_url) as locker:
        await locker.execute("LOCK TABLE log_heads IN EXCLUSIVE MODE")  # held until rollback
        store.append("s", "agent", b'{"stuck":1}')
        store.append("s", "agent", b'{"stuck":2}')
        with anyio.fail_after(10):
            await store.flush()  # the server cancels it after 0.5 s: degraded, not hung
        assert store.failed is not None and store.dropped == 2
        await locker.rollback()
    assert await store.heartbeat(30) > 0
    assert store.failed is None
    store.append("s", "agent", b'{"after":true}')
    await store.flush()
    messages = [e.message for e in await store.events("s", 0, 100)]
    assert messages[0] == b'{"before":true}' and messages[-1] == b'{"after":true}'
    assert b"stuck" not in b"".join(messages) and len(messages) == 3  # the middle one: log_gap
    assert orjson.loads(messages[1])["bridge"]["dropped"] == 2
    await store.close()


async def test_a_server_restart_while_idle_loses_nothing(own_cluster: pg_cluster.Cluster) -> None:
    """Connections the restart closed are noticed before use (the server's goodbye is waiting
    on the socket) and reopened: no statement is lost on them, nothing degrades."""
    store = PostgresStore(own_cluster.create_database())
    await store.open()
    await store.create_session(SessionRecord("s", "fake", "/w", T0, T0))
    store.append("s", "agent", b'{"before":true}')
    await store.flush()
    own_cluster.stop()
    own_cluster.start()
    store.append("s", "agent", b'{"after":true}')
    await store.flush()
    assert store.failed is None and store.dropped == 0
    assert [e.seq for e in await store.events("s", 0, 10)] == [1, 2]
    assert (await store.get_session("s")) is not None
    await store.close()


async def test_a_server_that_stops_answering_costs_a_flush_a_bounded_wait(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server process behind the log's connection frozen (SIGSTOP): the flush gives up
    after the client-side bound, degrades the log, and the store carries on."""
    import os
    import signal

    import anyio
    import psycopg

    monkeypatch.setattr(pg_conn, "OP_TIMEOUT", 1.0)
    monkeypatch.setattr(pg_conn, "RETRY_MIN", 0.0)
    monkeypatch.setattr(pg_conn, "RETRY_MAX", 0.0)
    store = PostgresStore(pg_url)
    await store.open()
    store.append("s", "agent", b'{"before":true}')
    await store.flush()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE application_name = 'agent-bridge log' AND datname = current_database()"
        )
        (backend,) = await cur.fetchone() or (None,)
    assert isinstance(backend, int)
    os.kill(backend, signal.SIGSTOP)
    try:
        store.append("s", "agent", b'{"frozen":true}')
        with anyio.fail_after(10):
            await store.flush()
        assert store.failed is not None and "no answer in time" in store.failed.message
    finally:
        os.kill(backend, signal.SIGCONT)
    await store.register(new_instance("stdio", 30))
    assert await store.heartbeat(30) > 0 and store.failed is None
    store.append("s", "agent", b'{"after":true}')
    await store.flush()
    messages = [e.message for e in await store.events("s", 0, 10)]
    assert messages[0] == b'{"before":true}' and messages[-1] == b'{"after":true}'
    await store.close()


async def test_the_daemon_refuses_a_newer_schema_with_exit_2(pg_url: str, tmp_path: Path) -> None:
    import anyio
    import psycopg

    store = PostgresStore(pg_url)
    await store.open()
    await store.close()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("UPDATE bridge_schema SET version = 99")
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [*bridge_cmd(), "--state-dir", str(tmp_path), "--log-level", "error"],
            input=b"",
            env=subprocess_env(AGENT_BRIDGE_STORE=pg_url),
            check=False,
        )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert err.count("\n") == 1 and "schema version 99" in err and "upgrade agent-bridge" in err
