"""Stalls: an inactivity deadline per turn (`stall_timeout`, per-agent override), reset by
every update and paused while the client is being asked something. On expiry the turn
ends with a clear error, the silent agent is stopped, and the next prompt restarts it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.acp_client import RpcFailure
from tests.conftest import in_process
from tests.faults.support import agent_pid, fault_config
from tests.waiting import wait_exited

pytestmark = pytest.mark.anyio


async def test_sigstopped_agent_mid_stream_is_a_stall(tmp_path: Path) -> None:
    async with in_process(tmp_path, fault_config(tmp_path), stall_timeout=1.5) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        pid = await agent_pid(c, sid)
        async with anyio.create_task_group() as tg:
            failure: list[RpcFailure] = []
            stopped_at: list[float] = []

            async def run() -> None:
                with pytest.raises(RpcFailure) as err:
                    await c.prompt(sid, "drip 100000 0.02")
                failure.append(err.value)

            tg.start_soon(run)
            await c.wait_for(lambda m: "drip 3" in str(m))
            os.kill(pid, signal.SIGSTOP)
            stopped_at.append(anyio.current_time())
        took = anyio.current_time() - stopped_at[0]
        err = failure[0]
        assert err.code == -32013
        assert "'fault'" in str(err.message) and "1.5 s" in str(err.message)
        assert err.data == {"agent": "fault", "timeoutSeconds": 1.5}
        assert 1.4 <= took < 8, took
        # The stopped agent is killed (SIGTERM + SIGCONT, then SIGKILL), not left frozen.
        await wait_exited([pid], 15, "the stalled agent")
        assert (await c.prompt(sid, "echo thawed"))["stopReason"] == "end_turn"
        assert await agent_pid(c, sid) != pid


async def test_silent_agent_is_a_stall(tmp_path: Path) -> None:
    async with in_process(tmp_path, fault_config(tmp_path), stall_timeout=1.0) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        with anyio.fail_after(10), pytest.raises(RpcFailure) as err:
            await c.prompt(sid, "hang")
        assert err.value.code == -32013
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert info["status"] == "idle"  # not an agent crash: the next prompt just restarts it
        assert (await c.prompt(sid, "echo again"))["stopReason"] == "end_turn"


async def test_per_agent_stall_timeout_overrides_the_default(tmp_path: Path) -> None:
    cfg = fault_config(tmp_path, agent_extra="stall_timeout = 1.0")
    async with in_process(tmp_path, cfg) as d:  # the daemon default stays 600 s
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        with anyio.fail_after(10), pytest.raises(RpcFailure) as err:
            await c.prompt(sid, "hang")
        assert err.value.code == -32013 and err.value.data["timeoutSeconds"] == 1.0


async def test_updates_reset_the_deadline(tmp_path: Path) -> None:
    async with in_process(tmp_path, fault_config(tmp_path), stall_timeout=1.5) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        started = anyio.current_time()
        # 4 s of work, an update every 0.4 s: never 1.5 s of silence.
        assert (await c.prompt(sid, "drip 10 0.4"))["stopReason"] == "end_turn"
        assert anyio.current_time() - started > 1.5


async def test_waiting_for_the_user_is_not_a_stall(tmp_path: Path) -> None:
    async with in_process(tmp_path, fault_config(tmp_path), stall_timeout=1.0) as d:
        c = d.client
        await c.initialize()

        async def slow_human(method: str, params: dict[str, Any]) -> Any:
            await anyio.sleep(2.5)  # the user takes longer than the stall timeout to decide
            return {"outcome": {"outcome": "selected", "optionId": "allow"}}

        c.handler = slow_human
        sid = await c.new_session(d.cwd)
        assert (await c.prompt(sid, "permission"))["stopReason"] == "end_turn"
        assert "permission: allow" in c.text(sid)
