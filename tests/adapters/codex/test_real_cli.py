"""The Codex adapter against the real, pinned `codex app-server` and a fake Responses server."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import pytest

from bridge.errors import INVALID_PARAMS, RpcError
from tests.adapters.codex.support import (
    ECHO_MCP,
    Codex,
    Host,
    option,
    prompt,
    request_text,
    select,
    text_of,
    validate,
)
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.openai_responses import mcp_call, patch_call, shell_call

JsonObj = dict[str, Any]

pytestmark = pytest.mark.anyio


async def test_text_answer(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="Hello from the fake model", chunks=3))
    host = Host()
    async with codex.session(host) as session:
        setup = session.setup
        assert setup.agent_session_id
        validate("SessionModeState", setup.modes)
        for config_option in setup.config_options or []:
            validate("SessionConfigOption", config_option)
        assert [o["id"] for o in setup.config_options or []] == ["mode", "model", "thought_level"]
        assert {o["value"] for o in option(session, "model")["options"]} == {"mock-model", "mock-model-mini"}
        result = await session.prompt(prompt("say hello"))
    validate("PromptResponse", result, unstable=True)
    assert result["stopReason"] == "end_turn"
    assert result["usage"]["totalTokens"] > 0
    assert text_of(host.updates) == "Hello from the fake model"
    assert len(host.of("agent_message_chunk")) == 3
    assert host.of("usage_update")[-1]["size"] > 0
    assert fake.requests[-1].body["model"] == "mock-model"


@pytest.mark.parametrize("choice", ["allow_once", "reject_once"])
async def test_shell_command_needing_approval(codex: Codex, fake: FakeModelServer, choice: str) -> None:
    # Read-only preset (Codex's default here): a command that asks to leave the sandbox
    # needs the user's approval.
    cmd = "touch created.txt && echo made-it"
    fake.script(Reply(tools=[shell_call(cmd, "call_sh", escalate=True)]), Reply(text="done"))
    host = Host(answer=select(choice))
    async with codex.session(host) as session:
        assert session.setup.modes and session.setup.modes["currentModeId"] == "read-only"
        result = await session.prompt(prompt("create a file"))
    assert result["stopReason"] == "end_turn"
    [(method, ask)] = host.requests
    assert method == "session/request_permission"
    assert ask["toolCall"]["toolCallId"] == "call_sh"
    assert ask["toolCall"]["kind"] == "execute"
    assert ask["toolCall"]["title"] == cmd
    assert {o["kind"] for o in ask["options"]} >= {"allow_once", "reject_once"}
    [start] = host.of("tool_call")
    assert start["toolCallId"] == "call_sh" and start["kind"] == "execute"
    end = host.of("tool_call_update")[-1]
    created = (codex.workspace / "created.txt").exists()
    if choice == "allow_once":
        assert created
        assert end["status"] == "completed"
        assert "made-it" in end["content"][0]["content"]["text"]
    else:
        assert not created
        assert end["status"] == "failed"
        assert "rejected" in json.dumps(fake.requests[-1].body["input"][-1])


async def test_file_change_with_diff(codex: Codex, fake: FakeModelServer) -> None:
    (codex.workspace / "hello.txt").write_text("old line\n")
    patch = (
        "*** Begin Patch\n*** Update File: hello.txt\n@@\n-old line\n+new line\n"
        "*** Add File: added.txt\n+brand new\n*** End Patch\n"
    )
    fake.script(Reply(tools=[patch_call(patch, "call_patch")]), Reply(text="patched"))
    host = Host(answer=select("allow_once"))
    async with codex.session(host) as session:
        await session.prompt(prompt("edit the file"))
    hello, added = str(codex.workspace / "hello.txt"), str(codex.workspace / "added.txt")
    expected = [
        {"type": "diff", "path": added, "oldText": None, "newText": "brand new\n"},
        {"type": "diff", "path": hello, "oldText": "old line\n", "newText": "new line\n"},
    ]
    [(_, ask)] = host.requests
    assert ask["toolCall"]["kind"] == "edit"
    assert sorted(ask["toolCall"]["content"], key=lambda d: d["path"]) == expected
    end = host.of("tool_call_update")[-1]
    assert end["status"] == "completed"
    assert sorted(end["content"], key=lambda d: d["path"]) == expected
    assert (codex.workspace / "hello.txt").read_text() == "new line\n"
    assert (codex.workspace / "added.txt").read_text() == "brand new\n"


def _echo_server(name: str = "echo") -> JsonObj:
    return {"name": name, "command": sys.executable, "args": [str(ECHO_MCP)], "env": []}


async def test_mcp_tool_from_client_server(codex: Codex, fake: FakeModelServer) -> None:
    # The user's own config has an MCP server too: the client's is added, not swapped in.
    codex.configure(fake.url, f'[mcp_servers.mine]\ncommand = "{sys.executable}"\nargs = ["{ECHO_MCP}"]\n')
    fake.script(Reply(tools=[mcp_call("echo", "echo", {"text": "ping"}, "call_mcp")]), Reply(text="mcp done"))
    host = Host(answer=select("allow_once"))
    async with codex.session(host, mcp_servers=[_echo_server()]) as session:
        await session.set_mode("full-access")
        result = await session.prompt(prompt("call the echo tool"))
    assert result["stopReason"] == "end_turn"
    namespaces = {t["name"] for t in fake.requests[0].body["tools"] if t.get("type") == "namespace"}
    assert {"mcp__echo", "mcp__mine"} <= namespaces
    [start] = host.of("tool_call")
    assert start["toolCallId"] == "call_mcp" and start["title"] == "echo: echo"
    assert start["rawInput"] == {"text": "ping"}
    end = host.of("tool_call_update")[-1]
    assert end["status"] == "completed"
    assert end["content"] == [{"type": "content", "content": {"type": "text", "text": "mcp-echo:ping"}}]
    assert "mcp-echo:ping" in request_text(fake.requests[-1].body["input"])


async def test_mcp_tool_approval(codex: Codex, fake: FakeModelServer) -> None:
    # Under on-request, Codex asks before calling a tool of an MCP server (an elicitation).
    fake.script(Reply(tools=[mcp_call("echo", "echo", {"text": "ping"}, "call_mcp")]), Reply(text="mcp done"))
    host = Host(answer=select("allow_always"))
    async with codex.session(host, mcp_servers=[_echo_server()]) as session:
        await session.prompt(prompt("call the echo tool"))
    [(_, ask)] = host.requests
    assert ask["toolCall"]["toolCallId"] == "call_mcp"
    assert [o["optionId"] for o in ask["options"]] == ["accept", "accept_session", "decline"]
    assert host.of("tool_call_update")[-1]["status"] == "completed"


async def test_sse_mcp_server_is_refused(codex: Codex) -> None:
    sse = {"type": "sse", "name": "old", "url": "http://127.0.0.1:1/sse", "headers": []}
    with pytest.raises(RpcError) as info:
        async with codex.session(Host(), mcp_servers=[sse]):
            pass
    assert info.value.code == INVALID_PARAMS
    assert "SSE" in info.value.message


async def test_cancel_mid_turn(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="slow " * 60, chunks=60, delay=0.1), Reply(text="after"))
    host = Host()
    async with codex.session(host) as session:
        async with anyio.create_task_group() as tg:
            results: list[JsonObj] = []
            done = anyio.Event()

            async def run_prompt() -> None:
                results.append(await session.prompt(prompt("go slow")))
                done.set()

            tg.start_soon(run_prompt)
            with anyio.fail_after(20):
                await host.wait_for(lambda u: u["sessionUpdate"] == "agent_message_chunk")
            with anyio.fail_after(10):
                await session.cancel()
                await done.wait()
        assert results == [{"stopReason": "cancelled"}]
        assert len(text_of(host.updates)) < len("slow " * 60)
        # The session is usable afterwards.
        again = await session.prompt(prompt("next"))
        assert again["stopReason"] == "end_turn"
    assert text_of(host.updates).endswith("after")
