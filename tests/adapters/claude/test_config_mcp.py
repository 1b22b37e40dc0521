"""Config-wired MCP servers with the real Claude Code CLI, through the daemon (a subprocess):
the model calls a tool of a server from `[mcp_servers.NAME]` with nothing in `session/new`,
and servers that do not exist or die at start are in the status, the session running without
them."""

from __future__ import annotations

import json
import sys

import anyio
import pytest

from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse

from .support import ECHO_MCP, ClaudeWorld
from .test_daemon import config

pytestmark = pytest.mark.anyio


async def test_a_config_wired_server_serves_a_session_that_names_none(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    path = config(world)
    path.write_text(
        path.read_text()
        + f"[mcp_servers.echo]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(ECHO_MCP))}]\n"
        + '[mcp_servers.missing]\ncommand = "/nonexistent/mcp-server"\n'
        + '[mcp_servers.dies]\ncommand = "/bin/false"\n'
    )
    fake.script(Reply(tools=[ToolUse("mcp__echo__echo", {"text": "ping"})]), Reply(text="done"))
    args = ["--config", str(path), "--state-dir", str(world.tmp / "state")]
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            await d.client.initialize()
            new = await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []})
            sid = new["sessionId"]
            result = await d.client.prompt(sid, "use the echo tool")
            assert result["stopReason"] == "end_turn"
            info = await d.client.request("_bridge/session/info", {"sessionId": sid})
    assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    done = [u for u in d.client.updates(sid) if u.get("status") == "completed"]
    assert any("mcp-echo:ping" in json.dumps(u.get("content")) for u in done)
    assert "mcp__echo__echo" in [t["name"] for t in fake.requests[0].body["tools"]]
    servers = {s["name"]: s for s in info["mcpServers"]}
    assert servers["echo"]["status"] == "ready" and servers["echo"]["source"] == "config"
    assert servers["echo"].get("tools") == ["echo"]
    for name in ("missing", "dies"):
        assert servers[name]["status"] == "failed", servers[name]
        assert servers[name]["error"]
    # The client was told too (the last status update carries the whole view).
    views = [
        u["_meta"]["bridge"]["mcpServers"]
        for u in d.client.updates(sid)
        if u.get("sessionUpdate") == "session_info_update" and "bridge" in u.get("_meta", {})
    ]
    assert views and {s["name"]: s["status"] for s in views[-1]}["echo"] == "ready"


async def test_a_server_that_hangs_its_handshake_does_not_stop_the_session(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    path = config(world)
    path.write_text(path.read_text() + '[mcp_servers.hangs]\ncommand = "/bin/sleep"\nargs = ["600"]\n')
    fake.script(Reply(text="still here"))
    args = ["--config", str(path), "--state-dir", str(world.tmp / "state")]
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            await d.client.initialize()
            sid = (await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []}))[
                "sessionId"
            ]
            assert (await d.client.prompt(sid, "hello"))["stopReason"] == "end_turn"
            info = await d.client.request("_bridge/session/info", {"sessionId": sid})
    assert d.client.text(sid) == "still here"
    servers = {s["name"]: s for s in info["mcpServers"]}
    # Besides it, only the bridge's own client-tools server (spec/client-tools.md).
    assert set(servers) - {"editor"} == {"hangs"}, servers
    hangs = servers["hangs"]
    # Claude Code gives up on it later (its own MCP timeout); until then it is starting.
    assert hangs["name"] == "hangs" and hangs["status"] in ("starting", "failed"), hangs
