"""Config-wired MCP servers with real ACP agents (Gemini CLI, OpenCode) through the daemon: the
model calls a tool of a server from `[mcp_servers.NAME]` with nothing in `session/new`; an
SSE server the agent cannot take is left out, and the status says why."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.adapters.acp.support import ECHO_MCP, KITS, Kit, Rig, make_rig, request_text, updates
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["gemini", "opencode"])
def kit(request: pytest.FixtureRequest) -> Kit:
    return KITS[request.param]


@pytest.fixture
def fake(kit: Kit) -> Iterator[FakeModelServer]:
    with kit.server() as server:
        yield server


@pytest.fixture
async def rig(kit: Kit, fake: FakeModelServer, tmp_path: Path) -> AsyncIterator[Rig]:
    rig = make_rig(kit, tmp_path, fake)
    yield rig
    assert await rig.wait_gone(within=15) == [], "processes outlived the daemon"


async def test_a_config_wired_server_serves_a_session_that_names_none(
    rig: Rig, fake: FakeModelServer
) -> None:
    rig.config.write_text(
        rig.config.read_text()
        + f"[mcp_servers.echo]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(ECHO_MCP))}]\n"
        + '[mcp_servers.old]\nurl = "http://127.0.0.1:9/sse"\ntransport = "sse"\n'
    )
    use = ToolUse(name=rig.kit.mcp_tool("echo"), input={"text": "ping"}, id="call_mcp")
    fake.script(Reply(tools=[use]), Reply(text="echoed"))
    async with rig.running() as client:
        init = await client.initialize()
        sse = init["agentCapabilities"]["mcpCapabilities"].get("sse", False)
        sid = await rig.new_session()
        assert (await rig.prompt(sid, "use the echo tool"))["stopReason"] == "end_turn"
        info = await client.request("_bridge/session/info", {"sessionId": sid})
    assert "mcp-echo:ping" in request_text(fake)
    assert [u for u in updates(client, sid, "tool_call_update") if u.get("status") == "completed"]
    servers = {s["name"]: s for s in info["mcpServers"]}
    # ACP has no MCP status for an agent to report: handed over is all the bridge knows.
    assert servers["echo"] == {"name": "echo", "source": "config", "transport": "stdio", "status": "sent"}
    if sse:
        assert servers["old"]["status"] == "sent"
    else:
        assert servers["old"]["status"] == "failed"
        assert servers["old"]["error"] == f"agent {rig.kit.name!r} does not support sse MCP servers"
