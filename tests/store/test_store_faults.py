"""Store faults: a locked database delays the log without losing anything; a full disk
degrades the log (said in info/events) without stopping the turn or the daemon."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from bridge.app import Bridge, Settings
from bridge.config import load_config
from tests.conftest import connect, fake_agent_config, in_process
from tests.store.test_durability import all_events, assert_gap_free

pytestmark = pytest.mark.anyio


async def test_a_locked_database_delays_the_log_and_loses_nothing(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        db = sqlite3.connect(
            tmp_path / "state" / "sessions.db", isolation_level=None, check_same_thread=False
        )
        db.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(1.5, lambda: db.execute("COMMIT"))
        release.start()
        try:
            with anyio.fail_after(60):
                result = await c.prompt(sid, "stream 500")
        finally:
            release.join()
            db.close()
        assert result["stopReason"] == "end_turn"
        events = await all_events(c, sid)
        assert_gap_free(events)
        chunks = [e for e in events if "chunk " in str(e["message"])]
        assert len(chunks) == 500
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert "warning" not in info


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill a disk (needs root): {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_a_full_disk_degrades_the_log_but_not_the_turn(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "small", "400k") as small:
        config = load_config(str(fake_agent_config(tmp_path)))
        bridge = Bridge(Settings(state_dir=str(small / "state"), config=config))
        async with bridge.running(), connect(bridge) as c:
            await c.initialize()
            sid = await c.new_session(str(tmp_path))
            with anyio.fail_after(120):
                result = await c.prompt(sid, "stream 20000")
            assert result["stopReason"] == "end_turn"
            assert c.text(sid).count("chunk ") == 20000
            info = await c.request("_bridge/session/info", {"sessionId": sid})
            assert "could not be written" in info["warning"]
            assert "disk" in info["warning"]
            # The daemon keeps serving new turns.
            assert (await c.prompt(sid, "echo still here"))["stopReason"] == "end_turn"
