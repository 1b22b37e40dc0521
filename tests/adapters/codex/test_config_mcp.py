"""Config-wired MCP servers with the real Codex app-server, through the daemon (a subprocess):
the model calls a tool of a server from `[mcp_servers.NAME]` with nothing in `session/new`;
a server that does not exist, and an SSE one (Codex has none), are in the status with why,
the session running without them."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import pytest

from tests.adapters.codex.support import ECHO_MCP, Codex, request_text
from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.openai_responses import mcp_call

from .test_daemon import allow_once, config

pytestmark = pytest.mark.anyio


def _echo_tools_reported(message: dict[str, Any]) -> bool:
    update = (message.get("params") or {}).get("update") or {}
    servers = ((update.get("_meta") or {}).get("bridge") or {}).get("mcpServers") or []
    return any(s.get("name") == "echo" and s.get("tools") for s in servers)


async def test_a_config_wired_server_serves_a_session_that_names_none(
    codex: Codex, fake: FakeModelServer
) -> None:
    path = config(codex)
    path.write_text(
        path.read_text()
        + f"[mcp_servers.echo]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(ECHO_MCP))}]\n"
        + '[mcp_servers.missing]\ncommand = "/nonexistent/mcp-server"\n'
        + '[mcp_servers.old]\nurl = "http://127.0.0.1:9/sse"\ntransport = "sse"\n'
    )
    fake.script(Reply(tools=[mcp_call("echo", "echo", {"text": "ping"}, "call_mcp")]), Reply(text="mcp done"))
    args = ["--config", str(path), "--state-dir", str(codex.home / "state")]
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            d.client.handler = allow_once
            await d.client.initialize()
            sid = (await d.client.request("session/new", {"cwd": str(codex.workspace), "mcpServers": []}))[
                "sessionId"
            ]
            await d.client.request("session/set_mode", {"sessionId": sid, "modeId": "full-access"})
            result = await d.client.prompt(sid, "call the echo tool")
            assert result["stopReason"] == "end_turn"
            # The tools come from `mcpServerStatus/list`, asked once the servers are up, apart
            # from the turn: wait for the update that carries them, then read the info.
            await d.client.wait_for(_echo_tools_reported, 0)
            info = await d.client.request("_bridge/session/info", {"sessionId": sid})
    assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    assert "mcp-echo:ping" in request_text(fake.generations[-1].body["input"])
    namespaces = {t["name"] for t in fake.requests[0].body["tools"] if t.get("type") == "namespace"}
    assert "mcp__echo" in namespaces
    servers = {s["name"]: s for s in info["mcpServers"]}
    assert servers["echo"]["status"] == "ready" and servers["echo"]["source"] == "config"
    assert servers["echo"].get("tools") == ["echo"]
    assert servers["missing"]["status"] == "failed" and servers["missing"]["error"]
    assert servers["old"] == {
        "name": "old",
        "source": "config",
        "transport": "sse",
        "status": "failed",
        "error": "Codex does not support SSE MCP servers; configure it as a stdio or http server",
    }
