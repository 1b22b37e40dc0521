"""A Codex thread whose rollout file was deleted, through the daemon with the real
`codex app-server` against the fake Responses server: the reopen says the agent lost it,
and `_meta.bridge.continue` continues it in a new thread that gets the bridge's transcript."""

from __future__ import annotations

import json

import anyio
import pytest

from tests.acp_client import RpcFailure
from tests.acp_schema import check_bridge_def
from tests.adapters.codex.support import Codex, request_text
from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply

from .test_daemon import config

pytestmark = pytest.mark.anyio


async def test_a_deleted_rollout_is_continued_only_when_asked(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="Noted: the door is blue."), Reply(text="You said the door is blue."))
    args = ["--config", str(config(codex)), "--state-dir", str(codex.home / "state")]
    ws = str(codex.workspace)
    reopen = {"cwd": ws, "mcpServers": []}
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            await d.client.initialize()
            sid = (await d.client.request("session/new", reopen))["sessionId"]
            await d.client.prompt(sid, "remember that the door is blue")
            thread = (await d.client.request("_bridge/session/info", {"sessionId": sid}))["agentSessionId"]
        rollouts = list(codex.home.rglob(f"rollout-*{thread}*.jsonl"))
        assert rollouts, f"no rollout for {thread} under {codex.home}"
        for path in rollouts:
            path.unlink()

        async with daemon_process(args) as d:
            await d.client.initialize()
            with pytest.raises(RpcFailure) as err:
                await d.client.request("session/resume", {"sessionId": sid, **reopen})
            assert err.value.code == -32002, err.value.message
            assert err.value.data["reason"] == "agent_lost_session" and thread in err.value.message
            check_bridge_def("LostSessionErrorData", err.value.data)
            result = await d.client.request(
                "session/resume", {"sessionId": sid, **reopen, "_meta": {"bridge": {"continue": True}}}
            )
            continued = result["_meta"]["bridge"]["continued"]
            assert continued["previousAgentSessionId"] == thread and continued["agentSessionId"] != thread
            await d.client.prompt(sid, "what colour is the door?")
            assert d.client.text(sid).endswith("You said the door is blue.")
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    sent = request_text(fake.requests[-1].body)
    assert "<prior_conversation>" in sent and "remember that the door is blue" in sent, json.dumps(sent)[:500]
