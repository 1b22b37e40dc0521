"""What ACP's conformance kit (acp-tck) checks of an agent, met by the bridge with the fake ACP
agent behind it: close and cancel end a prompt `cancelled` with nothing for the session after
the answer; a load replays everything before its answer; deleting an unknown session succeeds;
results carry only stable root fields unless the client opted into the unstable surface.

"Nothing after" is shown with barriers, not waits: the agent process being gone (close), or a
request answered by the agent itself (`_fake/echo`), which comes after everything the agent
sent before it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.acp_client import AcpClient
from tests.acp_schema import unstable_root_keys
from tests.conftest import InProcess, connect, fake_agent_config, in_process
from tests.faults.support import agent_pid
from tests.waiting import wait_exited

pytestmark = pytest.mark.anyio


async def start_prompt(c: AcpClient, rid: str, sid: str, text: str) -> None:
    await c.send_request(
        rid, "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": text}]}
    )


def for_session(c: AcpClient, sid: str, start: int, end: int | None = None) -> list[dict[str, Any]]:
    """Every message the daemon sent that concerns `sid`, in `received[start:end]`."""
    return [
        m
        for m in c.received[start:end]
        if isinstance(m.get("params"), dict) and m["params"].get("sessionId") == sid
    ]


async def first_chunk(c: AcpClient, sid: str) -> None:
    await c.wait_for(
        lambda n: (
            n["method"] == "session/update"
            and n["params"]["sessionId"] == sid
            and n["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        )
    )


async def close_mid_turn(c: AcpClient, sid: str, script: str) -> float:
    """Start a turn running `script`, close the session at its first chunk; returns how long
    the prompt took to resolve after the close was sent. Checks the ordering on the wire."""
    pid = await agent_pid(c, sid)
    await start_prompt(c, "turn", sid, script)
    await first_chunk(c, sid)
    started = anyio.current_time()
    await c.send_request("close", "session/close", {"sessionId": sid})
    with anyio.fail_after(5):
        answer = await c.wait_response("turn")
    took = anyio.current_time() - started
    with anyio.fail_after(5):
        closed = await c.wait_response("close")
    assert closed["result"] == {}
    assert answer["result"]["stopReason"] == "cancelled", answer
    # The prompt's answer comes first; after the close's answer nothing more of the session.
    close_at = c.response_index("close")
    assert c.response_index("turn") < close_at
    await wait_exited([pid], 10, "the closed session's agent")
    await c.request("session/list", {})  # a barrier: whatever was queued before it has arrived
    assert for_session(c, sid, close_at + 1) == []
    return took


async def test_close_during_a_prompt_ends_it_cancelled(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    took = await close_mid_turn(c, sid, "slow 100 0.1")
    assert took < 2
    info = await c.request("_bridge/session/info", {"sessionId": sid})
    assert info["status"] == "closed"


async def test_close_ends_a_turn_the_agent_will_not_end(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    # The agent ignores session/cancel: the bridge ends the turn itself after the close grace.
    took = await close_mid_turn(c, sid, "ignore_cancel 100 0.1")
    assert took < 2
    events = await c.request("_bridge/session/events", {"sessionId": sid, "limit": 1000})
    records = [e["message"].get("bridge") for e in events["events"]]
    assert {"type": "cancel_forced", "by": "close", "graceSeconds": 1.0} in records


async def test_close_of_a_reloaded_session_and_the_turn_is_gone(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    assert (await c.prompt(sid, "echo one"))["stopReason"] == "end_turn"
    # A session/prompt after the close is refused: the session is closed, not silently reopened.
    await c.request("session/close", {"sessionId": sid})
    with pytest.raises(Exception) as err:
        await c.prompt(sid, "echo two")
    assert getattr(err.value, "code", None) == -32002


async def test_cancel_sends_nothing_for_the_session_after_the_cancelled_answer(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    await start_prompt(c, "turn", sid, "slow 100 0.05")
    await first_chunk(c, sid)
    await c.notify("session/cancel", {"sessionId": sid})
    with anyio.fail_after(5):
        answer = await c.wait_response("turn")
    assert answer["result"]["stopReason"] == "cancelled"
    answered_at = c.response_index("turn")
    # The agent answers this after everything it sent before: any late update is in between.
    await c.request("_fake/echo", {"sessionId": sid})
    echo_at = len(c.received) - 1
    assert [
        m for m in for_session(c, sid, answered_at + 1, echo_at) if m.get("method") == "session/update"
    ] == []


async def load_and_check(c: AcpClient, sid: str, cwd: str) -> list[dict[str, Any]]:
    """`session/load`; every replayed update before its answer, none after (up to a barrier
    through the agent); returns the replayed `session/update` params."""
    start = len(c.received)
    rid = "load-" + sid
    await c.send_request(rid, "session/load", {"sessionId": sid, "cwd": cwd, "mcpServers": []})
    with anyio.fail_after(10):
        answer = await c.wait_response(rid)
    assert "result" in answer, answer
    answered_at = c.response_index(rid)
    await c.request("_fake/echo", {"sessionId": sid})
    echo_at = len(c.received) - 1
    late = [m for m in for_session(c, sid, answered_at + 1, echo_at) if m.get("method") == "session/update"]
    assert late == []
    return [
        m["params"] for m in for_session(c, sid, start, answered_at) if m.get("method") == "session/update"
    ]


@pytest.mark.parametrize(
    "how",
    [
        "live",  # loaded where it runs: the bridge replays its log, then follows it live
        "agent",  # reopened: the agent replays through its own session/load
        "log",  # reopened on an agent without load (resume only): replayed from the bridge's log
    ],
)
async def test_load_replays_everything_before_its_answer(tmp_path: Path, how: str) -> None:
    env = {}
    if how == "log":
        caps = {"promptCapabilities": {}, "sessionCapabilities": {"resume": {}, "close": {}}}
        env["FAKE_ACP_CAPS"] = json.dumps(caps).replace('"', '\\"')
    async with in_process(tmp_path, fake_agent_config(tmp_path, **env)) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        await c.prompt(sid, "stream 20")
        await c.prompt(sid, "echo second")
        if how != "live":
            await c.request("session/close", {"sessionId": sid})
        replayed = await load_and_check(c, sid, d.cwd)
        updates = [p["update"] for p in replayed]
        texts = "".join(
            u["content"].get("text", "") for u in updates if u["sessionUpdate"] == "agent_message_chunk"
        )
        assert texts.endswith("second"), texts
        from_log = [p.get("_meta", {}).get("bridge", {}).get("replay") == "log" for p in replayed]
        assert all(from_log) if how in ("log", "live") else not any(from_log)


async def test_delete_of_a_never_created_session_succeeds(daemon: InProcess) -> None:
    c = daemon.client
    assert await c.request("session/delete", {"sessionId": "never-created-session"}) == {}
    assert await c.request("session/delete", {"sessionId": "sess_never_existed"}) == {}
    # Other methods still say the session does not exist.
    with pytest.raises(Exception) as err:
        await c.request("_bridge/session/info", {"sessionId": "never-created-session"})
    assert getattr(err.value, "code", None) == -32002


async def test_prompt_results_carry_only_stable_root_fields(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    result = await c.prompt(sid, "usage")
    assert unstable_root_keys("PromptResponse", result) == []
    # Per-turn usage is still there, under the bridge's `_meta`, beside the agent's own `_meta`.
    assert result["_meta"]["bridge"]["usage"] == {"totalTokens": 30, "inputTokens": 20, "outputTokens": 10}
    assert result["_meta"]["fake"] is True
    metrics = await c.request("_bridge/session/metrics", {"sessionId": sid})
    assert metrics["tokens"]["total"] == 30
    # A client that opted into the unstable surface gets `usage` at the root too.
    async with connect(daemon.bridge) as other:
        await other.request(
            "initialize",
            {"protocolVersion": 1, "clientCapabilities": {"_meta": {"bridge": {"unstable": True}}}},
        )
        sid2 = await other.new_session(daemon.cwd)
        result = await other.prompt(sid2, "usage")
    assert result["usage"] == {"totalTokens": 30, "inputTokens": 20, "outputTokens": 10}
    assert result["_meta"]["bridge"]["usage"] == result["usage"]
