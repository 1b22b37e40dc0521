"""Store faults off the request path: a store that cannot be written (full disk) costs the
background bookkeeping (agent exit, disconnect grace) a warning, never the daemon; a lock
held by another process never stalls the event loop."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import anyio
import pytest

from bridge.app import Bridge, Settings
from bridge.config import load_config
from tests.acp_client import RpcFailure
from tests.conftest import connect, fake_agent_config, in_process
from tests.store.test_store_faults import tiny_filesystem

pytestmark = pytest.mark.anyio


async def test_bookkeeping_on_a_full_disk_never_takes_the_daemon_down(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "small", "400k") as small:
        config = load_config(str(fake_agent_config(tmp_path)))
        config.disconnect_grace = 0
        bridge = Bridge(Settings(state_dir=str(small / "state"), config=config))
        async with bridge.running(), connect(bridge) as c:
            await c.initialize()
            sid = await c.new_session(str(tmp_path))
            with anyio.fail_after(120):
                await c.prompt(sid, "stream 20000")  # fills the disk: the log degrades
            info = await c.request("_bridge/session/info", {"sessionId": sid})
            assert "could not be written" in info["warning"]

            # The agent dies: its exit is recorded in the catalog in the background.
            with pytest.raises(RpcFailure):
                await c.prompt(sid, "crash 7")
            with anyio.fail_after(60):
                assert (await c.prompt(sid, "echo restarted"))["stopReason"] == "end_turn"

            # A client goes away: its session is closed after the grace, in the background.
            async with connect(bridge) as other:
                await other.initialize()
                gone = await other.new_session(str(tmp_path))
                stopped = bridge.manager.sessions[gone].agent_stopped
                assert stopped is not None

            # Closing stops the session's agent after dropping the session (manager.close).
            with anyio.fail_after(30):
                await stopped.wait()
            assert gone not in bridge.manager.sessions
            # Still serving: a new session and a turn.
            again = await c.new_session(str(tmp_path))
            assert (await c.prompt(again, "echo still here"))["stopReason"] == "end_turn"


async def test_a_lock_held_by_another_process_never_stalls_the_event_loop(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        db = sqlite3.connect(
            tmp_path / "state" / "sessions.db", isolation_level=None, check_same_thread=False
        )
        db.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(1.5, lambda: db.execute("COMMIT"))
        worst = 0.0
        done = anyio.Event()

        async def ticker() -> None:
            nonlocal worst
            last = time.monotonic()
            while not done.is_set():
                await anyio.sleep(0.01)
                now = time.monotonic()
                worst = max(worst, now - last)
                last = now

        release.start()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                with anyio.fail_after(60):
                    # Catalog writes (status busy, idle) and log commits all meet the lock.
                    result = await c.prompt(sid, "stream 200")
                    await c.request("_bridge/session/update", {"sessionId": sid, "title": "locked"})
                done.set()
        finally:
            release.join()
            db.close()
        assert result["stopReason"] == "end_turn"
        # The lock lasted 1.5 s; the loop never waited for it (a loaded machine allows for
        # scheduling delays, far below the lock's length).
        assert worst < 0.5, f"the event loop stalled {worst:.3f} s"
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert info.get("title") == "locked" and "warning" not in info
