"""A Claude Code session whose native file was deleted, through the daemon with the real
CLI against the fake Anthropic server: without opt-in the reopen says the agent lost it;
with `_meta.bridge.continue` a new Claude Code session continues it and the model gets the
bridge's transcript with the next prompt."""

from __future__ import annotations

import json

import anyio
import pytest

from tests.acp_client import RpcFailure
from tests.acp_schema import check_bridge_def
from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply

from .support import ClaudeWorld
from .test_daemon import config

pytestmark = pytest.mark.anyio


async def test_a_deleted_native_session_is_continued_only_when_asked(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    fake.script(Reply(text="The password is swordfish."), Reply(text="You told me the password."))
    args = ["--config", str(config(world)), "--state-dir", str(world.tmp / "state")]
    ws = str(world.ws)
    reopen = {"cwd": ws, "mcpServers": []}
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            await d.client.initialize()
            sid = (await d.client.request("session/new", {"cwd": ws, "mcpServers": []}))["sessionId"]
            await d.client.prompt(sid, "remember: the password is swordfish")
            native_id = (await d.client.request("_bridge/session/info", {"sessionId": sid}))["agentSessionId"]
        for path in (world.home / ".claude" / "projects").glob(f"*/{native_id}.jsonl"):
            path.unlink()

        async with daemon_process(args) as d:
            await d.client.initialize()
            with pytest.raises(RpcFailure) as err:
                await d.client.request("session/resume", {"sessionId": sid, **reopen})
            assert err.value.code == -32002 and err.value.data["reason"] == "agent_lost_session"
            assert (
                sid in err.value.message
                and "'claude'" in err.value.message
                and native_id in err.value.message
            )
            check_bridge_def("LostSessionErrorData", err.value.data)

            result = await d.client.request(
                "session/resume", {"sessionId": sid, **reopen, "_meta": {"bridge": {"continue": True}}}
            )
            continued = result["_meta"]["bridge"]["continued"]
            check_bridge_def("Continued", continued)
            assert (
                continued["previousAgentSessionId"] == native_id and continued["agentSessionId"] != native_id
            )
            notices = [u for u in d.client.updates(sid) if u.get("_meta", {}).get("bridge", {}).get("notice")]
            assert len(notices) == 1
            await d.client.prompt(sid, "what did I tell you?")
            assert d.client.text(sid).endswith("You told me the password.")
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    # The model saw the earlier conversation, from the bridge's transcript, before the question.
    sent = json.dumps(world.last_body()["messages"])
    assert "<prior_conversation>" in sent and "remember: the password is swordfish" in sent
    assert "The password is swordfish." in sent and "what did I tell you?" in sent
