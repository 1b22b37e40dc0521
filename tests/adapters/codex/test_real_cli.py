"""The Codex adapter against the real, pinned `codex app-server` and a fake Responses server."""

from __future__ import annotations

import json

import pytest

from tests.adapters.codex.support import Codex, Host, option, prompt, select, text_of, validate
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.openai_responses import patch_call, shell_call

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
