"""End to end: `agent-bridge` (a real subprocess, ACP over stdio) with `protocol = "codex"`
driving the real `codex app-server`; the session survives a daemon restart (`session/load`
replays it through `thread/resume` + `thread/items/list`) and forks."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.adapters.codex.support import CODEX, Codex
from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.openai_responses import last_tool_output, mcp_call, shell_call

pytestmark = pytest.mark.anyio


def config(codex: Codex) -> Path:
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in codex.spec().env.items())
    path = codex.home / "bridge.toml"
    path.write_text(
        f'default_agent = "codex"\n[agents.codex]\nprotocol = "codex"\ncommand = {json.dumps(str(CODEX))}\n'
        f'args = ["app-server"]\nenv = {{ {env} }}\n'
    )
    return path


async def allow_once(method: str, params: dict[str, Any]) -> Any:
    assert method == "session/request_permission"
    option = next(o for o in params["options"] if o["kind"] == "allow_once")
    return {"outcome": {"outcome": "selected", "optionId": option["optionId"]}}


async def test_session_through_the_daemon_and_across_a_restart(codex: Codex, fake: FakeModelServer) -> None:
    target = codex.workspace / "created.txt"
    fake.script(
        Reply(tools=[shell_call(f"touch {target} && echo made", "call_touch", escalate=True)]),
        Reply(text="Made the file."),
        Reply(text="You asked me to make a file."),
        Reply(text="Forked answer."),
    )
    args = ["--config", str(config(codex)), "--state-dir", str(codex.home / "state")]
    ws = str(codex.workspace)

    with anyio.fail_after(90):
        async with daemon_process(args) as d:
            d.client.handler = allow_once
            await d.client.initialize()
            new = await d.client.request("session/new", {"cwd": ws, "mcpServers": []})
            sid = new["sessionId"]
            assert [o["id"] for o in new["configOptions"]] == ["mode", "model", "thought_level"]
            assert new["modes"]["currentModeId"] == "read-only"
            result = await d.client.prompt(sid, "make a file")
            assert result["stopReason"] == "end_turn"
            assert target.exists()
            assert d.client.text(sid) == "Made the file."
            asked = [m for m in d.client.received if m.get("method") == "session/request_permission"]
            assert len(asked) == 1 and asked[0]["params"]["toolCall"]["kind"] == "execute"
            options = await d.client.request(
                "session/set_config_option",
                {"sessionId": sid, "configId": "model", "value": "mock-model-mini"},
            )
            assert (
                next(o for o in options["configOptions"] if o["id"] == "model")["currentValue"]
                == "mock-model-mini"
            )
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]

        async with daemon_process(args) as d:
            await d.client.initialize()
            await d.client.request("session/load", {"sessionId": sid, "cwd": ws, "mcpServers": []})
            kinds = [u["sessionUpdate"] for u in d.client.updates(sid)]
            assert "user_message_chunk" in kinds and "tool_call" in kinds
            assert d.client.text(sid) == "Made the file."
            result = await d.client.prompt(sid, "what did I ask?")
            assert result["stopReason"] == "end_turn"
            assert d.client.text(sid).endswith("You asked me to make a file.")
            fork = await d.client.request("session/fork", {"sessionId": sid, "cwd": ws, "mcpServers": []})
            assert fork["sessionId"] != sid
            result = await d.client.prompt(fork["sessionId"], "and now?")
            assert result["stopReason"] == "end_turn"
            assert d.client.text(fork["sessionId"]) == "Forked answer."
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    history = json.dumps(fake.generations[-1].body["input"])
    assert "make a file" in history and "Made the file." in history and "what did I ask?" in history


ELICIT_MCP = Path(__file__).resolve().parents[2] / "fixtures" / "acp" / "elicit_mcp.py"


async def test_elicitation_and_compaction_through_the_daemon(codex: Codex, fake: FakeModelServer) -> None:
    """Through the daemon, every message it sends schema-checked by the client: an MCP
    server's elicitation answered by a client that advertises forms, then `/compact` as a
    compaction entity for a client that advertises `session.compaction`."""
    fake.script(Reply(tools=[mcp_call("elicit", "ask_name", {}, "call_ask")]), Reply(text="Asked."),
                Reply(text="Summary: a name was asked."))
    elicit = {"name": "elicit", "command": sys.executable, "args": [str(ELICIT_MCP)], "env": []}
    asked: list[tuple[str, dict[str, Any]]] = []

    async def client(method: str, params: dict[str, Any]) -> Any:
        asked.append((method, params))
        if method == "elicitation/create":
            return {"action": "accept", "content": {"name": "Ada"}}
        return await allow_once(method, params)

    args = ["--config", str(config(codex)), "--state-dir", str(codex.home / "state")]
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            d.client.handler = client
            await d.client.initialize(elicitation={"form": {}}, session={"compaction": {}})
            new = await d.client.request("session/new", {"cwd": str(codex.workspace), "mcpServers": [elicit]})
            sid = new["sessionId"]
            for text in ("ask my name", "/compact"):
                assert (await d.client.prompt(sid, text))["stopReason"] == "end_turn"
            updates = d.client.updates(sid)
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    (ask,) = [p for m, p in asked if m == "elicitation/create"]
    assert ask["sessionId"] == sid and ask["message"] == "What is your name?"
    assert "accept:Ada" in (last_tool_output(fake.requests[1]) or "")
    entity = [u for u in updates if u["sessionUpdate"] == "compaction_update"]
    assert [u["status"] for u in entity] == ["in_progress", "completed"]
    commands = [u for u in updates if u["sessionUpdate"] == "available_commands_update"]
    assert commands and commands[0]["availableCommands"][0]["name"] == "compact"
