"""Many daemons on one state dir, as real subprocesses: each keeps its own sessions intact
(complete, gap-free logs, no false `turn_interrupted`), sees the others' sessions as running
there, refuses to drive them, and takes a dead one's sessions over."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from bridge.store.sqlite import SqliteStore
from tests.acp_client import AcpClient, RpcFailure, default_handler
from tests.conftest import bridge_cmd, fake_agent_config, subprocess_env
from tests.daemon_proc import DaemonProc, daemon_process
from tests.e2e.ws_support import ws_client, ws_daemon
from tests.store.test_durability import all_events, assert_gap_free, kill_daemon

pytestmark = pytest.mark.anyio

SESSION_OWNED = -32015


def shared_config(tmp: Path, lease: float = 30.0) -> Path:
    """The fake agent's config with a lease length (top-level keys go before the tables)."""
    path = fake_agent_config(tmp)
    path.write_text(f"lease_timeout = {lease}\n" + path.read_text())
    return path


def daemon_args(tmp: Path, config: Path) -> list[str]:
    return ["--config", str(config), "--state-dir", str(tmp / "state")]


def interrupted(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if (e["message"].get("bridge") or {}).get("type") == "turn_interrupted"]


class PermissionGate:
    """Holds the fake agent's permission request (and so its turn) until `release()`."""

    def __init__(self) -> None:
        self.asked = anyio.Event()
        self._release = anyio.Event()

    async def __call__(self, method: str, params: dict[str, Any]) -> Any:
        if method == "session/request_permission":
            self.asked.set()
            await self._release.wait()
        return await default_handler(method, params)

    def release(self) -> None:
        self._release.set()


@asynccontextmanager
async def turn_held(c: AcpClient, sid: str) -> AsyncIterator[PermissionGate]:
    """A turn of `sid` running (waiting on its permission request) for the block's duration."""
    gate = PermissionGate()
    c.handler = gate
    async with anyio.create_task_group() as tg:
        result: list[Any] = []

        async def turn() -> None:
            result.append(await c.prompt(sid, "permission"))

        tg.start_soon(turn)
        with anyio.fail_after(60):
            await gate.asked.wait()
        yield gate
        gate.release()
    assert result[0]["stopReason"] == "end_turn"


async def cli(tmp: Path, config: Path, *argv: str) -> tuple[int, str, str]:
    done = await anyio.run_process(
        [*bridge_cmd(), *argv, "--config", str(config), "--state-dir", str(tmp / "state")],
        check=False,
        env=subprocess_env(),
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_two_daemons_streaming_into_one_file_keep_both_logs_complete(tmp_path: Path) -> None:
    config = shared_config(tmp_path)
    chunks = 3000

    async def stream(d: DaemonProc, out: dict[str, DaemonProc]) -> None:
        c = d.client
        await c.initialize()
        sids = [await c.new_session(str(tmp_path)) for _ in range(2)]
        async with anyio.create_task_group() as tg:
            for sid in sids:
                out[sid] = d
                tg.start_soon(c.prompt, sid, f"stream {chunks}")

    async with (
        daemon_process(daemon_args(tmp_path, config)) as d1,
        daemon_process(daemon_args(tmp_path, config)) as d2,
    ):
        owners: dict[str, DaemonProc] = {}
        with anyio.fail_after(180):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stream, d1, owners)
                tg.start_soon(stream, d2, owners)
        assert len(owners) == 4
        for sid, d in owners.items():
            c = d.client
            events = await all_events(c, sid)
            assert_gap_free(events)
            got = [e for e in events if "chunk " in json.dumps(e["message"])]
            assert len(got) == chunks, (sid, d.stderr.decode(errors="replace")[-3000:])
            assert not interrupted(events)
            # What the client received is exactly what the log holds.
            assert c.text(sid).count("chunk ") == chunks
        # Each daemon reads the other's logs too, complete.
        for sid in owners:
            assert_gap_free(await all_events(d1.client, sid))


async def test_a_turn_survives_the_cli_and_a_second_listener_on_its_state_dir(tmp_path: Path) -> None:
    config = shared_config(tmp_path)
    async with ws_daemon(tmp_path, config=config) as d, ws_client(d) as w:
        c = w.acp
        token = d.token
        await c.initialize()
        sid = await c.new_session(str(tmp_path))
        async with turn_held(c, sid):
            # `sessions` (a daemon of its own on the same state dir) lists it running there.
            rc, out, err = await cli(tmp_path, config, "sessions", "--json")
            assert rc == 0, err
            rows = {r["sessionId"]: r for r in map(json.loads, out.splitlines())}
            assert rows[sid]["status"] == "busy", rows[sid]

            # `events` reads its log as it is being written.
            rc, out, err = await cli(tmp_path, config, "events", sid, "--json")
            assert rc == 0, err
            assert [json.loads(line)["seq"] for line in out.splitlines()][:3] == [1, 2, 3]

            # A prompt in a new session from the CLI, beside the running turn.
            rc, out, err = await cli(tmp_path, config, "prompt", "echo from the cli")
            assert rc == 0, err
            assert "from the cli" in out

            # A second listener refuses, naming the first, and leaves its token alone.
            rc, out, err = await cli(tmp_path, config, "serve", "--listen", "ws://127.0.0.1:0")
            assert rc == 2
            lines = err.strip().splitlines()
            assert len(lines) == 1, err
            assert f"pid {d.process.pid}" in lines[0] and d.url in lines[0]
            assert d.token == token

            # Another daemon names the owner when asked to drive the session.
            async with daemon_process(daemon_args(tmp_path, config)) as other:
                await other.client.initialize()
                listed = await other.client.request("session/list", {})
                mine = next(s for s in listed["sessions"] if s["sessionId"] == sid)
                assert mine["_meta"]["bridge"]["status"] == "busy"
                assert mine["_meta"]["bridge"]["owner"]["pid"] == d.process.pid
                assert mine["_meta"]["bridge"]["owner"]["url"] == d.url
                info = await other.client.request("_bridge/session/info", {"sessionId": sid})
                assert info["status"] == "busy" and info["owner"]["pid"] == d.process.pid
                for method in ("session/load", "session/resume"):
                    with pytest.raises(RpcFailure) as failed:
                        await other.client.request(method, {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []})
                    assert failed.value.code == SESSION_OWNED
                    assert str(d.process.pid) in str(failed.value.message) and d.url in str(failed.value.message)
                with pytest.raises(RpcFailure) as failed:
                    await other.client.prompt(sid, "echo not yours")
                assert failed.value.code == SESSION_OWNED

        events = await all_events(c, sid)
        assert_gap_free(events)
        assert not interrupted(events)
        assert "permission: allow" in c.text(sid)
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert info["status"] == "idle" and "warning" not in info
        # The token still opens the first listener.
        async with ws_client(d) as again:
            await again.acp.initialize()


async def test_sigkill_of_a_daemon_hands_its_sessions_over_and_leaves_the_others_alone(tmp_path: Path) -> None:
    config = shared_config(tmp_path, lease=60.0)
    async with daemon_process(daemon_args(tmp_path, config)) as alive:
        await alive.client.initialize()
        theirs = await alive.client.new_session(str(tmp_path))
        await alive.client.prompt(theirs, "echo I stay")
        async with daemon_process(daemon_args(tmp_path, config)) as doomed:
            c = doomed.client
            await c.initialize()
            mine = await c.new_session(str(tmp_path))
            await c.prompt(mine, "stream 50")
            gate = PermissionGate()
            c.handler = gate
            async def doomed_turn() -> None:
                with contextlib.suppress(ConnectionError):
                    await c.prompt(mine, "permission")

            async with anyio.create_task_group() as tg:
                tg.start_soon(doomed_turn)
                with anyio.fail_after(60):
                    await gate.asked.wait()
                before = await all_events(c, mine)
                await kill_daemon(doomed.process)
                tg.cancel_scope.cancel()

        # Its owner's pid is dead on this host: gone at once, whatever the lease says.
        async with daemon_process(daemon_args(tmp_path, config)) as heir:
            h = heir.client
            await h.initialize()
            listed = {s["sessionId"]: s for s in (await h.request("session/list", {}))["sessions"]}
            assert listed[mine]["_meta"]["bridge"]["status"] == "closed"
            assert listed[theirs]["_meta"]["bridge"]["status"] == "idle"
            assert listed[theirs]["_meta"]["bridge"]["owner"]["pid"] == alive.process.pid
            events = await all_events(h, mine)
            assert events[: len(before)] == before
            assert_gap_free(events)
            assert len(interrupted(events)) == 1
            # Taken over through the agent's own load, and it runs here now.
            await h.request("session/load", {"sessionId": mine, "cwd": str(tmp_path), "mcpServers": []})
            assert (await h.prompt(mine, "echo taken over"))["stopReason"] == "end_turn"
            assert_gap_free(await all_events(h, mine))
            # The live daemon's session was not touched.
            with pytest.raises(RpcFailure) as failed:
                await h.request("session/load", {"sessionId": theirs, "cwd": str(tmp_path), "mcpServers": []})
            assert failed.value.code == SESSION_OWNED
        theirs_events = await all_events(alive.client, theirs)
        assert_gap_free(theirs_events)
        assert not interrupted(theirs_events)
        assert (await alive.client.prompt(theirs, "echo still mine"))["stopReason"] == "end_turn"


async def test_a_paused_daemon_loses_its_sessions_once_its_lease_expires(tmp_path: Path) -> None:
    """The lease path proper (the owner's pid is alive): SIGSTOP past the lease, another
    daemon takes the session over; woken, the old owner never writes into the new log."""
    config = shared_config(tmp_path, lease=2.0)
    async with daemon_process(daemon_args(tmp_path, config)) as old:
        await old.client.initialize()
        sid = await old.client.new_session(str(tmp_path))
        await old.client.prompt(sid, "echo first owner")
        store = SqliteStore(str(tmp_path / "state" / "sessions.db"))
        await store.open()
        try:
            old.process.send_signal(signal.SIGSTOP)
            registered = next(i for i in await store.instances() if i.pid == old.process.pid)
            # No event exists for "the lease ran out": wait for its recorded expiry.
            await anyio.sleep(max(0.0, registered.expires_at - time.time()) + 0.2)
            assert not any(i.pid == old.process.pid for i in await store.instances())
        except BaseException:
            old.process.send_signal(signal.SIGCONT)
            raise
        finally:
            await store.close()
        try:
            async with daemon_process(daemon_args(tmp_path, config)) as heir:
                h = heir.client
                await h.initialize()
                await h.request("session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []})
                assert (await h.prompt(sid, "echo second owner"))["stopReason"] == "end_turn"
                old.process.send_signal(signal.SIGCONT)
                # Woken, the old owner either still runs the turn (its log rows are dropped)
                # or has noticed the takeover and names the new owner.
                try:
                    with anyio.fail_after(60):
                        await old.client.prompt(sid, "echo too late")
                except RpcFailure as exc:
                    assert exc.code == SESSION_OWNED and str(heir.process.pid) in str(exc.message)
                events = await all_events(h, sid)
                assert_gap_free(events)
                assert "too late" not in json.dumps(events)
                assert "second owner" in json.dumps(events)
        finally:
            old.process.send_signal(signal.SIGCONT)
