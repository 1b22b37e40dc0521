"""The Claude adapter against the real, pinned `claude` CLI (2.1.197) and the fake
Anthropic server: every update and permission request is schema-checked by the host."""

from __future__ import annotations

import anyio
import pytest

from tests.fakes.model_server import FakeModelServer, Reply, ToolUse

from .support import ClaudeWorld, Host, open_session, prompt, select

pytestmark = pytest.mark.anyio


async def test_text_answer(world: ClaudeWorld, fake: FakeModelServer) -> None:
    fake.script(Reply(text="Hello from the fake model", chunks=3))
    host = Host()
    async with open_session(world, host) as session:
        setup = session.setup
        assert setup.agent_session_id and not setup.replayed
        assert [o["id"] for o in setup.config_options or []] == ["mode", "model", "thought_level"]
        assert setup.modes is not None and setup.modes["currentModeId"] == "default"
        with anyio.fail_after(30):
            result = await session.prompt(prompt("say hello"))
    assert result["stopReason"] == "end_turn"
    assert host.text() == "Hello from the fake model"
    assert len(host.of("agent_message_chunk")) == 3
    commands = host.of("available_commands_update")[0]["availableCommands"]
    assert {"compact", "review"} <= {c["name"] for c in commands}
    assert host.of("usage_update")[-1]["cost"]["currency"] == "USD"
    assert world.last_body()["messages"][0]["content"][-1]["text"] == "say hello"


def bash(command: str) -> Reply:
    return Reply(tools=[ToolUse("Bash", {"command": command, "description": "Create a file"})])


@pytest.mark.parametrize("choice", ["allow", "reject"])
async def test_shell_command_needing_permission(world: ClaudeWorld, fake: FakeModelServer, choice: str) -> None:
    target = world.ws / "created.txt"
    fake.script(bash(f"touch {target} && echo created"), Reply(text="done"))
    host = Host(select(choice))
    async with open_session(world, host) as session:
        with anyio.fail_after(30):
            result = await session.prompt(prompt("make a file"))
    assert result["stopReason"] == "end_turn"
    (asked,) = host.permission_requests
    assert asked["toolCall"]["kind"] == "execute"
    assert [o["kind"] for o in asked["options"]] == ["allow_always", "allow_once", "reject_once"]
    final = host.of("tool_call_update")[-1]
    assert target.exists() == (choice == "allow")
    assert final["status"] == ("completed" if choice == "allow" else "failed")
    # What the model was told about the tool's outcome.
    (tool_result,) = [b for b in world.last_body()["messages"][-1]["content"] if b.get("type") == "tool_result"]
    assert bool(tool_result.get("is_error")) == (choice == "reject")


async def test_client_failure_denies(world: ClaudeWorld, fake: FakeModelServer) -> None:
    target = world.ws / "created.txt"
    fake.script(bash(f"touch {target}"), Reply(text="done"))

    async def broken(params: dict[str, object]) -> object:
        raise RuntimeError("client went away")

    host = Host(broken)
    async with open_session(world, host) as session:
        with anyio.fail_after(30):
            await session.prompt(prompt("make a file"))
    assert host.permission_requests and not target.exists()


async def test_edit_with_diff(world: ClaudeWorld, fake: FakeModelServer) -> None:
    path = world.ws / "hello.txt"
    path.write_text("hello world\n")
    fake.script(
        Reply(tools=[ToolUse("Read", {"file_path": str(path)})]),
        Reply(tools=[ToolUse("Edit", {"file_path": str(path), "old_string": "world", "new_string": "there"})]),
        Reply(text="edited"),
    )
    host = Host(select("allow"))
    async with open_session(world, host) as session:
        with anyio.fail_after(30):
            await session.prompt(prompt("edit it"))
    assert path.read_text() == "hello there\n"
    (asked,) = host.permission_requests
    assert asked["toolCall"]["kind"] == "edit"
    assert asked["toolCall"]["content"] == [{"type": "diff", "path": str(path), "oldText": "world", "newText": "there"}]
    diffs = [c for u in host.of("tool_call_update") for c in u.get("content") or [] if c["type"] == "diff"]
    assert {"type": "diff", "path": str(path), "oldText": "hello world\n", "newText": "hello there\n"} in diffs
    assert any(u.get("locations") == [{"path": str(path)}] for u in host.of("tool_call_update"))
