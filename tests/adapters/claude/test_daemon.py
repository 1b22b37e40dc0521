"""End to end: `agent-bridge` (a real subprocess, ACP over stdio) with `protocol = "claude"`
driving the real CLI; the session survives a daemon restart through `session/load`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse

from .support import CLAUDE, ECHO_MCP, ClaudeWorld

ELICIT_MCP = Path(__file__).resolve().parents[2] / "fixtures" / "acp" / "elicit_mcp.py"

pytestmark = pytest.mark.anyio


def config(world: ClaudeWorld) -> Path:
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in world.env().items())
    path = world.tmp / "config.toml"
    path.write_text(f'default_agent = "claude"\n[agents.claude]\nprotocol = "claude"\n'
                    f"command = {json.dumps(str(CLAUDE))}\nenv = {{ {env} }}\n")
    return path


async def allow_once(method: str, params: dict[str, Any]) -> Any:
    assert method == "session/request_permission"
    return {"outcome": {"outcome": "selected", "optionId": "allow"}}


async def test_session_through_the_daemon_and_across_a_restart(world: ClaudeWorld, fake: FakeModelServer) -> None:
    target = world.ws / "created.txt"
    fake.script(Reply(tools=[ToolUse("Bash", {"command": f"touch {target} && echo made", "description": "touch"})]),
                Reply(tools=[ToolUse("mcp__echo__echo", {"text": "ping"})]),
                Reply(text="Made the file."), Reply(text="You asked me to make a file."))
    echo = {"name": "echo", "command": sys.executable, "args": [str(ECHO_MCP)], "env": []}
    args = ["--config", str(config(world)), "--state-dir", str(world.tmp / "state")]

    with anyio.fail_after(90):
        async with daemon_process(args) as d:
            d.client.handler = allow_once
            await d.client.initialize()
            new = await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": [echo]})
            sid = new["sessionId"]
            assert {o["id"] for o in new["configOptions"]} == {"mode", "model", "thought_level"}
            result = await d.client.prompt(sid, "make a file")
            assert result["stopReason"] == "end_turn"
            assert target.exists()
            assert d.client.text(sid) == "Made the file."
            results = [u for u in d.client.updates(sid) if u.get("status") == "completed"]
            assert any("mcp-echo:ping" in json.dumps(u.get("content")) for u in results)
            options = await d.client.request("session/set_config_option",
                                             {"sessionId": sid, "configId": "model", "value": "sonnet"})
            assert next(o for o in options["configOptions"] if o["id"] == "model")["currentValue"] == "sonnet"
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]

        async with daemon_process(args) as d:
            await d.client.initialize()
            await d.client.request("session/load", {"sessionId": sid, "cwd": str(world.ws), "mcpServers": [echo]})
            kinds = [u["sessionUpdate"] for u in d.client.updates(sid)]
            assert "user_message_chunk" in kinds and "tool_call" in kinds
            assert d.client.text(sid) == "Made the file."
            result = await d.client.prompt(sid, "what did I ask?")
            assert result["stopReason"] == "end_turn"
            assert d.client.text(sid).endswith("You asked me to make a file.")
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    history = json.dumps(fake.generations[-1].body["messages"])
    assert "make a file" in history and "Made the file." in history


async def test_subagent_elicitation_and_compaction_through_the_daemon(world: ClaudeWorld, fake: FakeModelServer) -> None:
    """The three through the daemon, every message it sends schema-checked by the client: a
    subagent's nested work and permission request, an MCP server's elicitation answered by a
    client that advertises forms, and `/compact` as a compaction entity for a client that
    advertises `session.compaction`."""
    target = world.ws / "created.txt"
    fake.script(
        Reply(tools=[ToolUse("Agent", {"description": "Make a file", "prompt": "create it",
                                       "subagent_type": "general-purpose", "run_in_background": False})]),
        Reply(tools=[ToolUse("Bash", {"command": f"touch {target} && echo made", "description": "touch"})]),
        Reply(text="Subagent report."), Reply(text="Delegated."),
        Reply(tools=[ToolUse("mcp__elicit__ask_name", {})]), Reply(text="Asked."),
        Reply(text="Summary: a file was made and a name asked."))
    elicit = {"name": "elicit", "command": sys.executable, "args": [str(ELICIT_MCP)], "env": []}
    asked: list[tuple[str, dict[str, Any]]] = []

    async def client(method: str, params: dict[str, Any]) -> Any:
        asked.append((method, params))
        if method == "elicitation/create":
            return {"action": "accept", "content": {"name": "Ada"}}
        return {"outcome": {"outcome": "selected", "optionId": "allow"}}

    args = ["--config", str(config(world)), "--state-dir", str(world.tmp / "state")]
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            d.client.handler = client
            await d.client.initialize(elicitation={"form": {}}, session={"compaction": {}})
            sid = (await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": [elicit]}))["sessionId"]
            for text in ("delegate", "ask my name", "/compact"):
                assert (await d.client.prompt(sid, text))["stopReason"] == "end_turn"
            updates = d.client.updates(sid)
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    agent = next(u["toolCallId"] for u in updates if u["sessionUpdate"] == "tool_call")
    nested = [u for u in updates if (u.get("_meta") or {}).get("bridge", {}).get("parentToolCallId") == agent]
    assert "Subagent report." in "".join(u["content"]["text"] for u in nested if u["sessionUpdate"] == "agent_message_chunk")
    permission = next(p for m, p in asked if m == "session/request_permission" and p["toolCall"]["kind"] == "execute")
    assert permission["toolCall"]["_meta"]["bridge"]["parentToolCallId"] == agent and target.exists()
    (ask,) = [p for m, p in asked if m == "elicitation/create"]
    assert ask["sessionId"] == sid and ask["mode"] == "form"
    assert any("accept:Ada" in json.dumps(u.get("content")) for u in updates if u.get("status") == "completed")
    entity = [u for u in updates if u["sessionUpdate"] == "compaction_update"]
    assert entity and entity[0]["status"] == "in_progress" and entity[-1]["status"] == "completed"
