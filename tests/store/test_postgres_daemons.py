"""Real daemons (subprocesses, the fake ACP agent) sharing one PostgreSQL database: each sees
the other's sessions running there; a session whose daemon was SIGKILLed on another machine
is taken over once that daemon's lease expires. The store URL (with its password) reaches
the daemons in their environment only, and never their agents."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import psutil
import psycopg
import pytest

from bridge.errors import SESSION_OWNED
from tests.acp_client import AcpClient, RpcFailure
from tests.conftest import bridge_cmd, fake_agent_config, subprocess_env
from tests.daemon_proc import daemon_process
from tests.store.test_durability import all_events, assert_gap_free

pytestmark = pytest.mark.anyio
LEASE = 9.0  # seconds: short, so the takeover test waits little; long enough to refuse first


def config(tmp: Path) -> Path:
    path = fake_agent_config(tmp)
    path.write_text(f"lease_timeout = {LEASE}\n" + path.read_text())  # a top-level key: first
    return path


def args(tmp: Path, name: str) -> list[str]:
    return ["--config", str(tmp / "config.toml"), "--state-dir", str(tmp / name)]


async def listed(c: AcpClient) -> dict[str, Any]:
    return {s["sessionId"]: s["_meta"]["bridge"] for s in (await c.request("session/list", {}))["sessions"]}


def assert_secret_kept(pid: int, password: str) -> None:
    """Not in the daemon's argv; not in the argv or environment of anything it started."""
    daemon = psutil.Process(pid)
    assert password not in " ".join(daemon.cmdline())
    for child in daemon.children(recursive=True):
        try:
            assert password not in " ".join(child.cmdline())
            assert not any(password in v for v in child.environ().values()), child.cmdline()
        except psutil.NoSuchProcess:
            continue


async def test_two_daemons_on_one_database_see_each_others_sessions(tmp_path: Path, pg_url: str) -> None:
    config(tmp_path)
    password = psycopg.conninfo.conninfo_to_dict(pg_url)["password"]
    assert isinstance(password, str)
    env = {"AGENT_BRIDGE_STORE": pg_url}
    # b (and the command-line client) get the password the libpq way, in PGPASSWORD.
    parts = urlsplit(pg_url)
    env_b = {"AGENT_BRIDGE_STORE": pg_url.replace(f":{password}@", "@"), "PGPASSWORD": password}
    assert parts.password == password and password not in env_b["AGENT_BRIDGE_STORE"]
    work = tmp_path / "work"
    work.mkdir()
    with anyio.fail_after(90):
        async with daemon_process(args(tmp_path, "a"), env=env) as a, daemon_process(args(tmp_path, "b"), env=env_b) as b:
            await a.client.initialize()
            await b.client.initialize()
            sid_a = await a.client.new_session(str(work))
            assert (await a.client.prompt(sid_a, "stream 20"))["stopReason"] == "end_turn"
            sid_b = await b.client.new_session(str(work))

            seen_by_b = await listed(b.client)
            assert seen_by_b[sid_a]["status"] == "idle"  # running in a, never "closed"
            assert seen_by_b[sid_a]["owner"]["pid"] == a.process.pid
            assert seen_by_b[sid_b]["status"] == "idle" and "owner" not in seen_by_b[sid_b]
            seen_by_a = await listed(a.client)
            assert seen_by_a[sid_b]["owner"]["pid"] == b.process.pid

            # Acting on the other's session: a clear error naming its owner.
            with pytest.raises(RpcFailure) as err:
                await b.client.request("session/load", {"sessionId": sid_a, "cwd": str(work), "mcpServers": []})
            assert err.value.code == SESSION_OWNED and f"pid {a.process.pid}" in str(err.value)
            # Reading its log is fine: complete and gap-free.
            events = await all_events(b.client, sid_a)
            assert_gap_free(events)
            assert sum("chunk " in json.dumps(e["message"]) for e in events) == 20

            # Both stream at full speed into the one database: both logs complete, gap-free.
            async with anyio.create_task_group() as tg:
                for d, sid in ((a, sid_a), (b, sid_b)):
                    tg.start_soon(d.client.prompt, sid, "stream 2000")
            for d, sid, chunks in ((a, sid_a, 2020), (b, sid_b, 2000)):
                events = await all_events(d.client, sid)
                assert_gap_free(events)
                assert sum("chunk " in json.dumps(e["message"]) for e in events) == chunks

            assert_secret_kept(a.process.pid, password)
            assert_secret_kept(b.process.pid, password)

            # The command-line client on the same database, alongside them.
            done = await anyio.run_process(
                [*bridge_cmd(), *args(tmp_path, "cli"), "sessions", "--json"],
                env=subprocess_env(**env_b),
                check=False,
            )
            out = done.stdout.decode()
            assert done.returncode == 0, done.stderr.decode()
            assert sid_a in out and sid_b in out and password not in out + done.stderr.decode()


async def _instance_expiry(pg_url: str, pid: int) -> float:
    """Seconds until the registration of the daemon `pid` expires, by the server's clock."""
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT expires_at - extract(epoch FROM clock_timestamp()) FROM instances WHERE pid = %s", (pid,)
        )
        row = await cur.fetchone()
    assert row is not None
    return float(row[0])


async def test_a_session_of_a_sigkilled_daemon_on_another_host_is_taken_over_after_its_lease(
    tmp_path: Path, pg_url: str
) -> None:
    config(tmp_path)
    env = {"AGENT_BRIDGE_STORE": pg_url}
    work = tmp_path / "work"
    work.mkdir()
    # Daemon a runs under another host name (its own UTS namespace): its pid means nothing to
    # b, so only the expiry of its lease tells b it is gone.
    other_host = ["unshare", "--uts", "--", "sh", "-c", 'hostname other-machine && exec "$0" "$@"']
    with anyio.fail_after(120):
        async with daemon_process(args(tmp_path, "b"), env=env) as b:
            await b.client.initialize()
            async with daemon_process(args(tmp_path, "a"), env=env, prefix=other_host) as a:
                await a.client.initialize()
                sid = await a.client.new_session(str(work))
                assert (await a.client.prompt(sid, "stream 10"))["stopReason"] == "end_turn"
                before = await all_events(a.client, sid)
                assert (await listed(b.client))[sid]["owner"]["host"] == "other-machine"
                a_pid = a.process.pid
                a.process.send_signal(signal.SIGKILL)
                await a.process.wait()

            # Killed, but on another machine as far as b can tell: still its owner's.
            with pytest.raises(RpcFailure) as err:
                await b.client.request("session/load", {"sessionId": sid, "cwd": str(work), "mcpServers": []})
            assert err.value.code == SESSION_OWNED and "on host other-machine" in str(err.value)

            # Wait out the lease (a known deadline, read from the database).
            await anyio.sleep(max(0.0, await _instance_expiry(pg_url, a_pid)) + 0.2)
            assert (await listed(b.client))[sid]["status"] == "closed"
            start = len(b.client.notifications)
            await b.client.request("session/load", {"sessionId": sid, "cwd": str(work), "mcpServers": []})
            # The agent's own load (its native state is reachable): it replays its history.
            replayed = [n for n in b.client.notifications[start:] if n["params"].get("sessionId") == sid]
            assert any("[10 chunks]" in json.dumps(n) for n in replayed)
            assert (await b.client.prompt(sid, "echo taken over"))["stopReason"] == "end_turn"
            after = await all_events(b.client, sid)
            assert after[: len(before)] == before
            assert_gap_free(after)
            assert (await listed(b.client))[sid].get("owner") is None  # b's own now
            assert os.getpid() != a_pid
