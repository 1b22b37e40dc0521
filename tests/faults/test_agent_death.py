"""Agent death mid-turn: the pending prompt fails at once with the exit code and the stderr
tail, the session reads `error`, and the next prompt restarts the agent and resumes its
native session (with backoff, under a restart limit)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from bridge.core import manager as manager_mod
from tests.acp_client import RpcFailure
from tests.conftest import in_process
from tests.faults.support import agent_pid, fault_config, status
from tests.waiting import wait_exited

pytestmark = pytest.mark.anyio


async def test_sigkill_mid_stream_fails_the_prompt_at_once_then_restarts(tmp_path: Path) -> None:
    async with in_process(tmp_path, fault_config(tmp_path)) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        await c.prompt(sid, "echo before the crash")
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        native = info["agentSessionId"]
        pid = await agent_pid(c, sid)
        async with anyio.create_task_group() as tg:
            failure: list[RpcFailure] = []
            done = anyio.Event()

            async def run() -> None:
                with pytest.raises(RpcFailure) as err:
                    await c.prompt(sid, "drip 1000 0.02")
                failure.append(err.value)
                done.set()

            tg.start_soon(run)
            await c.wait_for(lambda m: "drip 3" in str(m))
            os.kill(pid, signal.SIGKILL)
            # "At once": well under any stall or grace timer (defaults 600 s / 10 s).
            with anyio.fail_after(5):
                await done.wait()
        err = failure[0]
        assert err.code == -32010
        assert err.data["exitCode"] == -9 and "signal 9" in str(err.message)
        assert "stderrTail" in err.data
        assert await status(c, sid) == "error"
        # The next prompt restarts the agent and resumes the same native session.
        result = await c.prompt(sid, "echo after the crash")
        assert result["stopReason"] == "end_turn"
        assert "after the crash" in c.text(sid)
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert info["agentSessionId"] == native
        assert info["status"] == "idle"
        assert await agent_pid(c, sid) != pid
        events = await c.request("_bridge/session/events", {"sessionId": sid, "limit": 1000})
        kinds = [e["message"]["bridge"]["type"] for e in events["events"] if "bridge" in e["message"]]
        assert "agent_exited" in kinds and "agent_restart" in kinds


async def test_crash_carries_exit_code_and_stderr_tail(tmp_path: Path) -> None:
    async with in_process(tmp_path, fault_config(tmp_path)) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        for _ in range(3):  # the tail must be complete every time, not by luck of scheduling
            with anyio.fail_after(10), pytest.raises(RpcFailure) as err:
                await c.prompt(sid, "crash 42")
            assert err.value.code == -32010
            assert err.value.data["exitCode"] == 42
            assert "fatal error, giving up" in err.value.data["stderrTail"]
            assert "exit code 42" in str(err.value.message)
            assert "fatal error, giving up" in str(err.value.message)
            assert await status(c, sid) == "error"


async def test_restart_limit_gives_a_clear_error_and_backs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with in_process(tmp_path, fault_config(tmp_path)) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        codes = []
        started = anyio.current_time()
        for _ in range(manager_mod.MAX_RESTARTS + 1):
            with pytest.raises(RpcFailure) as err:
                await c.prompt(sid, "crash 5")
            codes.append(err.value.data.get("exitCode"))
        elapsed = anyio.current_time() - started
        assert codes == [5] * (manager_mod.MAX_RESTARTS + 1)
        # Backoff between restarts: 0.25 + 0.5 + 1.0 s at least.
        assert elapsed >= 1.7
        with pytest.raises(RpcFailure) as err:
            await c.prompt(sid, "echo no more")
        assert "restart" in str(err.value.message) and "limit" in str(err.value.message)
        assert err.value.data["agent"] == "fault"
        # No agent process is left for this session.
        assert (await c.request("_bridge/session/metrics", {"sessionId": sid})).get("process") is None


async def test_agent_exiting_between_turns_is_restarted_on_next_prompt(tmp_path: Path) -> None:
    async with in_process(tmp_path, fault_config(tmp_path)) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        pid = await agent_pid(c, sid)
        stopped = d.bridge.manager.sessions[sid].agent_stopped
        assert stopped is not None
        os.kill(pid, signal.SIGTERM)
        await wait_exited([pid], 10, "the SIGTERMed agent")
        # The session's agent task ends once it has recorded the exit: then the status says so.
        with anyio.fail_after(10):
            await stopped.wait()
        assert await status(c, sid) == "error"
        assert (await c.prompt(sid, "echo back"))["stopReason"] == "end_turn"
        assert await status(c, sid) == "idle"
