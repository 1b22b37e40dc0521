"""Durable sessions: the log survives SIGKILL of the daemon; list/load/resume/events work
after a restart on the same state dir; a turn cut off by the crash is recorded."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.acp_client import AcpClient, RpcFailure
from tests.conftest import fake_agent_config, in_process
from tests.daemon_proc import daemon_process

pytestmark = pytest.mark.anyio


async def all_events(c: AcpClient, sid: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await c.request("_bridge/session/events", {"sessionId": sid, "after": after, "limit": 1000})
        events += page["events"]
        if "next" not in page:
            return events
        after = page["next"]


def assert_gap_free(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def kill_daemon(process: Any) -> None:
    process.send_signal(signal.SIGKILL)
    with anyio.fail_after(10):
        await process.wait()


def args(tmp: Path, config: Path) -> list[str]:
    return ["--config", str(config), "--state-dir", str(tmp / "state")]


async def test_sessions_survive_sigkill_and_load_replays(tmp_path: Path) -> None:
    config = fake_agent_config(tmp_path)
    work_a, work_b = tmp_path / "a", tmp_path / "b"
    work_a.mkdir()
    work_b.mkdir()
    async with daemon_process(args(tmp_path, config)) as d:
        c = d.client
        await c.initialize()
        sid_a = await c.new_session(str(work_a))
        sid_b = await c.new_session(str(work_b))
        await c.prompt(sid_a, "stream 30")
        await c.prompt(sid_b, "echo hello b")
        before = await all_events(c, sid_a)
        await kill_daemon(d.process)

    async with daemon_process(args(tmp_path, config)) as d:
        c = d.client
        await c.initialize()
        listed = await c.request("session/list", {})
        assert {s["sessionId"] for s in listed["sessions"]} == {sid_a, sid_b}
        only_b = await c.request("session/list", {"cwd": str(work_b)})
        assert [s["sessionId"] for s in only_b["sessions"]] == [sid_b]
        info = await c.request("_bridge/session/info", {"sessionId": sid_a})
        assert info["status"] == "closed" and info["cwd"] == str(work_a)

        after_restart = await all_events(c, sid_a)
        # Everything committed before the kill is there, in order, nothing lost or duplicated.
        assert after_restart[: len(before)] == before
        assert_gap_free(after_restart)
        directions = {e["direction"] for e in after_restart}
        assert {"client", "agent"} <= directions
        chunks = [
            e
            for e in after_restart
            if e["message"].get("method") == "session/update"
            and e["message"]["params"]["update"].get("sessionUpdate") == "agent_message_chunk"
        ]
        assert len(chunks) == 30
        assert all(e["message"]["params"]["sessionId"] == sid_a for e in chunks)

        # The agent replays its own history on load (it advertises loadSession).
        start = len(c.notifications)
        await c.request("session/load", {"sessionId": sid_a, "cwd": str(work_a), "mcpServers": []})
        replayed = [n for n in c.notifications[start:] if n["params"]["sessionId"] == sid_a]
        assert any("[30 chunks]" in json.dumps(n) for n in replayed)
        result = await c.prompt(sid_a, "echo after restart")
        assert result["stopReason"] == "end_turn"
        assert_gap_free(await all_events(c, sid_a))


async def test_turn_running_at_sigkill_is_recorded_as_interrupted(tmp_path: Path) -> None:
    config = fake_agent_config(tmp_path)
    async with daemon_process(args(tmp_path, config)) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(str(tmp_path))

        async def doomed_prompt() -> None:
            with pytest.raises(ConnectionError):
                await c.prompt(sid, "slow 200 0.05")

        async with anyio.create_task_group() as tg:
            tg.start_soon(doomed_prompt)
            await c.wait_for(lambda m: "slow 3" in json.dumps(m))
            await kill_daemon(d.process)

    async with daemon_process(args(tmp_path, config)) as d:
        c = d.client
        await c.initialize()
        events = await all_events(c, sid)
        assert_gap_free(events)
        assert any(e["direction"] == "agent" and "slow 3" in json.dumps(e["message"]) for e in events)
        last = events[-1]
        assert last["direction"] == "bridge"
        assert last["message"]["bridge"] == {"type": "turn_interrupted", "reason": "restart"}
        # Resume works: no replay, the next prompt runs.
        start = len(c.notifications)
        await c.request("session/resume", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []})
        assert not [n for n in c.notifications[start:] if n["method"] == "session/update"]
        assert (await c.prompt(sid, "echo resumed"))["stopReason"] == "end_turn"


# The tests below are about what a restarted daemon answers, not about how the first one
# ended: two in-process daemons one after the other on the same state dir (a SIGKILL needs
# the subprocess, above).


async def test_load_without_agent_support_replays_from_the_log(tmp_path: Path) -> None:
    caps = json.dumps({"loadSession": False, "sessionCapabilities": {"resume": {}}})
    config = fake_agent_config(tmp_path, FAKE_ACP_CAPS=caps.replace('"', '\\"'))
    async with in_process(tmp_path, config) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        await c.prompt(sid, "echo first answer")
    async with in_process(tmp_path, config) as d:
        c = d.client
        await c.initialize()
        start = len(c.notifications)
        await c.request("session/load", {"sessionId": sid, "cwd": d.cwd, "mcpServers": []})
        replay = [n["params"] for n in c.notifications[start:]]
        kinds = [p["update"]["sessionUpdate"] for p in replay]
        assert "user_message_chunk" in kinds and "agent_message_chunk" in kinds
        assert all(p["_meta"]["bridge"]["replay"] == "log" for p in replay)
        user = next(p for p in replay if p["update"]["sessionUpdate"] == "user_message_chunk")
        assert user["update"]["content"]["text"] == "echo first answer"
        assert (await c.prompt(sid, "echo next"))["stopReason"] == "end_turn"


async def test_load_is_an_explicit_error_when_the_agent_cannot_reopen(tmp_path: Path) -> None:
    caps = json.dumps({"loadSession": False, "sessionCapabilities": {}})
    config = fake_agent_config(tmp_path, FAKE_ACP_CAPS=caps.replace('"', '\\"'))
    async with in_process(tmp_path, config) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        await c.prompt(sid, "echo one")
    async with in_process(tmp_path, config) as d:
        c = d.client
        await c.initialize()
        with pytest.raises(RpcFailure) as err:
            await c.request("session/load", {"sessionId": sid, "cwd": d.cwd, "mcpServers": []})
        assert "cannot be reopened" in str(err.value.message)
        # Never a silent fresh session: prompting it still says it is not active.
        with pytest.raises(RpcFailure) as err2:
            await c.prompt(sid, "echo two")
        assert err2.value.code == -32002


async def test_delete_is_idempotent_and_hides_the_session(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        keep = await c.new_session(d.cwd)
        assert await c.request("session/delete", {"sessionId": sid}) == {}
        assert await c.request("session/delete", {"sessionId": sid}) == {}
        listed = await c.request("session/list", {})
        assert [s["sessionId"] for s in listed["sessions"]] == [keep]
        with pytest.raises(RpcFailure) as err:
            await c.request("_bridge/session/info", {"sessionId": sid})
        assert err.value.code == -32002
        # Idempotent also for an id that never existed (ACP: delete succeeds silently).
        assert await c.request("session/delete", {"sessionId": "sess_never_existed"}) == {}


async def test_corrupt_store_keeps_the_daemon_serving_and_says_why(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "sessions.db").write_bytes(b"this is not a sqlite database" * 100)
    async with in_process(tmp_path) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        assert (await c.prompt(sid, "echo still works"))["stopReason"] == "end_turn"
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert "could not" in info["warning"] or "cannot open" in info["warning"]
        assert "sessions.db" in info["warning"]
