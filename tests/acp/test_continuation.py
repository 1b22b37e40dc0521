"""A session its agent lost: the error says so, and `_meta.bridge.continue` continues it in a
new agent session seeded with the bridge's transcript. The fake ACP agent forgets sessions
when it keeps no state (`FAKE_ACP_STATE=""`: every restart forgets) or is told to
(`FAKE_ACP_FORGET`). Every message is checked against the ACP schema by the test client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.acp_client import AcpClient, RpcFailure
from tests.acp_schema import check_bridge_def
from tests.conftest import InProcess, fake_agent_config, in_process

pytestmark = pytest.mark.anyio

CONTINUE = {"bridge": {"continue": True}}


@contextlib.asynccontextmanager
async def forgetful(tmp: Path, **env: str) -> AsyncIterator[InProcess]:
    """A daemon whose fake agent keeps nothing across restarts."""
    async with in_process(tmp, fake_agent_config(tmp, FAKE_ACP_STATE="", **env)) as d:
        await d.client.initialize()
        yield d


async def _lost_session(d: InProcess) -> tuple[str, str]:
    """A session with one turn whose agent process is gone (and with it the agent's session)."""
    c = d.client
    sid = await c.new_session(d.cwd)
    await c.prompt(sid, "echo the sky is green")
    before = (await c.request("_bridge/session/info", {"sessionId": sid}))["agentSessionId"]
    await c.request("session/close", {"sessionId": sid})
    return sid, before


def _reopen(d: InProcess, sid: str, meta: Any = None) -> dict[str, Any]:
    params: dict[str, Any] = {"sessionId": sid, "cwd": d.cwd, "mcpServers": []}
    if meta is not None:
        params["_meta"] = meta
    return params


def _notices(c: AcpClient, sid: str) -> list[dict[str, Any]]:
    return [u for u in c.updates(sid) if (u.get("_meta") or {}).get("bridge", {}).get("notice")]


async def test_without_opt_in_the_error_names_the_session_the_agent_and_the_way_on(tmp_path: Path) -> None:
    async with forgetful(tmp_path) as d:
        sid, agent_sid = await _lost_session(d)
        with pytest.raises(RpcFailure) as err:
            await d.client.request("session/resume", _reopen(d, sid))
        e = err.value
        assert e.code == -32002
        assert sid in e.message and "'fake'" in e.message and agent_sid in e.message
        assert "_meta.bridge.continue" in e.message and f"agent-bridge prompt --session {sid}" in e.message
        assert "--no-continue" in e.message
        assert e.data["reason"] == "agent_lost_session"
        assert (
            e.data["sessionId"] == sid and e.data["agent"] == "fake" and e.data["agentSessionId"] == agent_sid
        )
        assert e.data["continueWith"] == {"_meta": CONTINUE}
        assert e.data["agentError"]["code"] == -32002
        check_bridge_def("LostSessionErrorData", e.data)
        # Nothing changed: the same agent session is still the one on record, the session not live.
        info = await d.client.request("_bridge/session/info", {"sessionId": sid})
        assert info["agentSessionId"] == agent_sid and info["status"] == "closed"
        assert not _notices(d.client, sid)


async def test_opt_in_continues_in_a_new_agent_session_seeded_with_the_transcript(tmp_path: Path) -> None:
    async with forgetful(tmp_path) as d:
        c = d.client
        sid, agent_sid = await _lost_session(d)
        start = len(c.received)
        result = await c.request("session/resume", _reopen(d, sid, CONTINUE))
        continued = result["_meta"]["bridge"]["continued"]
        check_bridge_def("Continued", continued)
        assert continued["previousAgentSessionId"] == agent_sid
        assert continued["agentSessionId"] != agent_sid and continued["turns"] == 1
        assert continued["omittedTurns"] == 0
        # Announced to the client before the answer, marked as the bridge's.
        notices = _notices(c, sid)
        assert len(notices) == 1
        notice = notices[0]
        assert notice["sessionUpdate"] == "agent_message_chunk"
        assert "no longer had this conversation" in notice["content"]["text"]
        assert notice["_meta"]["bridge"]["notice"]["type"] == "continued"
        check_bridge_def("ContinuedNotice", notice["_meta"]["bridge"]["notice"])
        check_bridge_def("ReopenMeta", CONTINUE["bridge"])
        answer_at = next(i for i, m in enumerate(c.received) if i >= start and "result" in m)
        notice_at = next(
            i for i, m in enumerate(c.received) if i >= start and m.get("params", {}).get("update") == notice
        )
        assert notice_at < answer_at
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert info["sessionId"] == sid and info["agentSessionId"] == continued["agentSessionId"]
        # The first prompt carries the conversation to the new agent session; the next does not.
        await c.prompt(sid, "recall")
        recalled = c.text(sid)
        assert "User: echo the sky is green" in recalled and "Assistant: the sky is green" in recalled
        assert "<prior_conversation>" in recalled
        # Recorded in the log: the link between the two agent sessions, and the notice.
        events = (await c.request("_bridge/session/events", {"sessionId": sid, "limit": 1000}))["events"]
        bridge_events = [e["message"]["bridge"] for e in events if e["direction"] == "bridge"]
        linked = [b for b in bridge_events if b.get("type") == "continued"]
        assert linked and linked[0]["previousAgentSessionId"] == agent_sid
        assert linked[0]["agentSessionId"] == continued["agentSessionId"]
        assert any(b.get("type") == "transcript_sent" for b in bridge_events)
        logged = [e["message"] for e in events if e["direction"] == "agent"]
        assert any(orjson.dumps(m).find(b'"notice"') >= 0 for m in logged)


async def test_load_replays_the_history_then_announces_the_continuation(tmp_path: Path) -> None:
    async with forgetful(tmp_path, FAKE_ACP_FORGET="internal") as d:
        c = d.client
        sid, agent_sid = await _lost_session(d)
        start = len(c.received)
        result = await c.request("session/load", _reopen(d, sid, CONTINUE))
        assert result["_meta"]["bridge"]["continued"]["agentError"].endswith(
            f"session not found: {agent_sid}"
        )
        later = [m for m in c.received[start:] if m.get("method") == "session/update"]
        said = [
            (m["params"]["update"]["sessionUpdate"], m["params"]["update"]["content"]["text"])
            for m in later
            if "content" in m["params"]["update"]
        ]
        # The bridge's replay of the turn (the prompt, the answer), then the notice, last.
        assert said[:2] == [
            ("user_message_chunk", "echo the sky is green"),
            ("agent_message_chunk", "the sky is green"),
        ]
        assert len(said) == 3
        assert later[-1]["params"]["update"]["_meta"]["bridge"]["notice"]["type"] == "continued"
        await c.prompt(sid, "recall")
        assert "User: echo the sky is green" in c.text(sid)


async def test_a_failure_that_is_not_a_lost_session_is_never_continued(tmp_path: Path) -> None:
    async with forgetful(tmp_path, FAKE_ACP_FORGET="auth") as d:
        sid, agent_sid = await _lost_session(d)
        with pytest.raises(RpcFailure) as err:
            await d.client.request("session/resume", _reopen(d, sid, CONTINUE))
        assert err.value.code == -32000
        info = await d.client.request("_bridge/session/info", {"sessionId": sid})
        assert info["agentSessionId"] == agent_sid
        assert not _notices(d.client, sid)


async def test_continue_must_be_a_boolean(tmp_path: Path) -> None:
    async with forgetful(tmp_path) as d:
        sid, _ = await _lost_session(d)
        with pytest.raises(RpcFailure) as err:
            await d.client.request("session/resume", _reopen(d, sid, {"bridge": {"continue": "yes"}}))
        assert err.value.code == -32602 and err.value.data["field"] == "_meta.bridge.continue"


async def test_a_long_conversation_is_bounded_keeping_the_latest_turns(tmp_path: Path) -> None:
    async with forgetful(tmp_path) as d:
        c = d.client
        sid = await c.new_session(d.cwd)
        for i in range(30):
            await c.prompt(sid, f"echo turn{i:02d} " + "x" * 600)
        await c.request("session/close", {"sessionId": sid})
        result = await c.request("session/resume", _reopen(d, sid, CONTINUE))
        continued = result["_meta"]["bridge"]["continued"]
        assert continued["turns"] == 30 and 0 < continued["omittedTurns"] < 30
        assert continued["transcriptChars"] <= 16_000
        await c.prompt(sid, "recall")
        recalled = c.text(sid).split("prior: ", 1)[1]
        assert f"[{continued['omittedTurns']} earlier turns left out]" in recalled
        assert "turn29" in recalled and "turn00" not in recalled


async def test_an_agent_that_loses_the_session_in_a_crash_continues_once_opted_in(tmp_path: Path) -> None:
    async with forgetful(tmp_path) as d:
        c = d.client
        sid, _ = await _lost_session(d)
        first = (await c.request("session/resume", _reopen(d, sid, CONTINUE)))["_meta"]["bridge"]["continued"]
        await c.prompt(sid, "echo second")
        with pytest.raises(RpcFailure):
            await c.prompt(sid, "crash")
        # The agent's restart finds its session gone with the process: continued again, announced.
        await c.prompt(sid, "recall")
        recalled = c.text(sid)
        assert "User: echo second" in recalled and "User: echo the sky is green" in recalled
        assert len(_notices(c, sid)) == 2
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert info["agentSessionId"] not in (first["agentSessionId"], first["previousAgentSessionId"])
