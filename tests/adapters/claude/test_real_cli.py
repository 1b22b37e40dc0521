"""The Claude adapter against the real, pinned `claude` CLI and the fake
Anthropic server: every update and permission request is schema-checked by the host."""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
from pathlib import Path

import anyio
import psutil
import pytest
from anyio.abc import TaskStatus

from adapters.claude import create
from adapters.claude.session import ClaudeSession
from bridge.core.adapter import AdapterEnv, AgentSpec, StartRequest
from bridge.errors import INVALID_PARAMS, AgentExitedError, AgentStartError, RpcError
from tests.fakes.anthropic import AnthropicDialect
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse
from tests.real_agents import installed_version

from .support import ECHO_MCP, ClaudeWorld, Host, open_session, prompt, select

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
    assert "compact" in {c["name"] for c in commands}
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


async def test_mcp_tool_from_session_new(world: ClaudeWorld, fake: FakeModelServer) -> None:
    fake.script(Reply(tools=[ToolUse("mcp__echo__echo", {"text": "ping"})]), Reply(text="done"))
    server = {"name": "echo", "command": sys.executable, "args": [str(ECHO_MCP)], "env": []}
    host = Host(select("allow"))
    async with open_session(world, host, world.request(mcp_servers=[server])) as session:
        meta = session.setup.meta or {}
        assert meta["claudeCode"]["mcpServers"] == [{"name": "echo", "status": "connected", "serverInfo": {"name": "echo", "version": ""}, "scope": "dynamic"}]
        with anyio.fail_after(30):
            await session.prompt(prompt("echo ping"))
        status = await session.call("_claude/mcp_status", {})
    assert status["mcpServers"][0]["status"] == "connected"
    assert "config" not in status["mcpServers"][0]
    assert "mcp__echo__echo" in [t["name"] for t in fake.requests[0].body["tools"]]
    # The bridge's own status at start (bridge/mcp/status.py), then the init's with both.
    start, info = host.of("session_info_update")
    assert start["_meta"]["bridge"]["mcpServers"] == [{"name": "echo", "status": "connected", "tools": ["echo"]}]
    assert info["_meta"]["bridge"]["mcpServers"] == [{"name": "echo", "status": "connected", "tools": ["echo"]}]
    assert info["_meta"]["claudeCode"]["mcpServers"] == [{"name": "echo", "status": "connected"}]
    final = host.of("tool_call_update")[-1]
    assert final["status"] == "completed" and "mcp-echo:ping" in final["content"][0]["content"]["text"]


async def test_cancel_mid_stream(world: ClaudeWorld, fake: FakeModelServer) -> None:
    fake.script(Reply(text="word " * 400, chunks=400, delay=0.02), Reply(text="still here"))
    host = Host()
    async with open_session(world, host) as session:
        results: list[dict[str, object]] = []

        async def run_prompt() -> None:
            results.append(await session.prompt(prompt("talk a lot")))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_prompt)
                await host.wait_for(lambda u: u["sessionUpdate"] == "agent_message_chunk")
                await session.cancel()
            assert results == [{"stopReason": "cancelled", "usage": results[0]["usage"]}]
            assert len(host.text()) < len("word " * 400)
            # The same process takes the next prompt.
            pid = session.pid()
            again = await session.prompt(prompt("still there?"))
        assert again["stopReason"] == "end_turn" and session.pid() == pid
    assert host.text().endswith("still here")


async def test_cancel_while_asking_permission(world: ClaudeWorld, fake: FakeModelServer) -> None:
    target = world.ws / "created.txt"
    fake.script(bash(f"touch {target}"), Reply(text="done"))
    asked = anyio.Event()

    async def never(params: dict[str, object]) -> object:
        asked.set()
        await anyio.sleep_forever()

    host = Host(never)
    async with open_session(world, host) as session:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                results: list[dict[str, object]] = []

                async def run_prompt() -> None:
                    results.append(await session.prompt(prompt("make a file")))

                tg.start_soon(run_prompt)
                await asked.wait()
                await session.cancel()
    assert results[0]["stopReason"] == "cancelled"
    assert not target.exists()


async def test_mode_model_and_effort_change(world: ClaudeWorld, fake: FakeModelServer) -> None:
    target = world.ws / "new.txt"
    fake.script(Reply(text="first"), Reply(tools=[ToolUse("Write", {"file_path": str(target), "content": "x\n"})]),
                Reply(text="written"))
    host = Host(select("reject"))
    async with open_session(world, host) as session:
        with anyio.fail_after(30):
            options = await session.set_config_option({"configId": "model", "value": "sonnet"})
            assert current(options["configOptions"], "model") == "sonnet"
            options = await session.set_config_option({"configId": "thought_level", "value": "low"})
            assert current(options["configOptions"], "thought_level") == "low"
            await session.prompt(prompt("hi"))
            # The alias's model moves with releases (2.1.197: claude-sonnet-5, 2.1.332: -5-5).
            assert world.last_body()["model"].startswith("claude-sonnet-5")
            assert world.last_body()["output_config"] == {"effort": "low"}

            options = await session.set_config_option({"configId": "mode", "value": "acceptEdits"})
            assert current(options["configOptions"], "mode") == "acceptEdits"
            assert host.of("current_mode_update")[-1]["currentModeId"] == "acceptEdits"
            # acceptEdits: the CLI writes without asking (the client would have rejected).
            await session.prompt(prompt("write it"))
        assert target.read_text() == "x\n" and not host.permission_requests

        with anyio.fail_after(30):
            assert await session.set_mode("plan") == {}
        assert host.of("config_option_update")[-1]["configOptions"][0]["currentValue"] == "plan"
        # The CLI refuses bypass unless the user launched it so; we never add the flag.
        with pytest.raises(RpcError) as err:
            await session.set_mode("bypassPermissions")
        assert err.value.code == INVALID_PARAMS
    # Session choices went through control requests: nothing was written to settings files.
    assert not (world.home / ".claude" / "settings.json").exists()
    assert not (world.ws / ".claude").exists()


def current(options: list[dict[str, object]], cid: str) -> object:
    return next(o["currentValue"] for o in options if o["id"] == cid)


async def test_bypass_when_the_user_allows_it(world: ClaudeWorld, fake: FakeModelServer) -> None:
    world.args = ("--allow-dangerously-skip-permissions",)
    target = world.ws / "created.txt"
    fake.script(bash(f"touch {target}"), Reply(text="done"))
    host = Host(select("reject"))
    async with open_session(world, host) as session:
        assert "bypassPermissions" in [m["id"] for m in (session.setup.modes or {})["availableModes"]]
        with anyio.fail_after(30):
            await session.set_mode("bypassPermissions")
            await session.prompt(prompt("make a file"))
    assert target.exists() and not host.permission_requests


async def test_user_settings_are_respected(world: ClaudeWorld, fake: FakeModelServer) -> None:
    user = {"model": "sonnet", "permissions": {"defaultMode": "acceptEdits", "allow": ["Bash(touch:*)"]}}
    project = {"permissions": {"deny": ["Bash(rm:*)"]}}
    (world.home / ".claude" / "settings.json").write_text(json.dumps(user))
    (world.ws / ".claude").mkdir()
    (world.ws / ".claude" / "settings.json").write_text(json.dumps(project))
    keep, made = world.ws / "keep.txt", world.ws / "made.txt"
    keep.write_text("x")
    fake.script(bash(f"touch {made}"), bash(f"rm -f {keep}"), Reply(text="done"))
    host = Host(select("allow"))
    async with open_session(world, host) as session:
        assert (session.setup.modes or {})["currentModeId"] == "acceptEdits"
        assert current(session.setup.config_options or [], "model") == "sonnet"
        with anyio.fail_after(30):
            await session.prompt(prompt("touch then rm"))
    assert world.last_body()["model"].startswith("claude-sonnet-5")
    # Their allow rule let touch run, their project's deny rule stopped rm: nobody was asked.
    assert made.exists() and keep.exists() and not host.permission_requests
    assert json.loads((world.home / ".claude" / "settings.json").read_text()) == user
    assert json.loads((world.ws / ".claude" / "settings.json").read_text()) == project


async def test_resume_load_and_fork_in_new_processes(world: ClaudeWorld, fake: FakeModelServer) -> None:
    fake.script(Reply(text="I will remember 42."), Reply(text="It was 42."), Reply(text="Forked."))
    async with open_session(world, Host()) as first:
        sid = first.setup.agent_session_id
        with anyio.fail_after(30):
            await first.prompt(prompt("remember 42"))

    # Resume: a new adapter and process continue the same conversation (no replay).
    host = Host()
    async with open_session(world, host, world.request("resume", sid)) as resumed:
        assert resumed.setup.agent_session_id == sid and not host.of("user_message_chunk")
        with anyio.fail_after(30):
            await resumed.prompt(prompt("what number?"))
    texts = json.dumps(world.last_body()["messages"])
    assert "remember 42" in texts and "I will remember 42." in texts

    # Load: the history comes back as updates before the session is handed over.
    host = Host()
    async with open_session(world, host, world.request("load", sid)) as loaded:
        assert loaded.setup.replayed and loaded.setup.agent_session_id == sid
    assert host.text("user_message_chunk") == "remember 42what number?"
    assert host.text() == "I will remember 42.It was 42."

    # Fork: a new id, the history of the original, and the original left as it was.
    original = next((world.home / ".claude" / "projects").glob(f"*/{sid}.jsonl")).read_text()
    async with open_session(world, Host(), world.request("fork", sid)) as forked:
        fid = forked.setup.agent_session_id
        assert fid != sid
        with anyio.fail_after(30):
            await forked.prompt(prompt("fork question"))
    assert "It was 42." in json.dumps(world.last_body()["messages"])
    assert next((world.home / ".claude" / "projects").glob(f"*/{fid}.jsonl")).exists()
    assert next((world.home / ".claude" / "projects").glob(f"*/{sid}.jsonl")).read_text() == original


async def test_resume_of_a_session_never_prompted(world: ClaudeWorld, fake: FakeModelServer) -> None:
    async with open_session(world, Host()) as first:
        sid = first.setup.agent_session_id
    fake.script(Reply(text="fresh"))
    host = Host()
    async with open_session(world, host, world.request("resume", sid)) as resumed:
        assert resumed.setup.agent_session_id == sid
        with anyio.fail_after(30):
            assert (await resumed.prompt(prompt("hi")))["stopReason"] == "end_turn"
    assert host.records == [{"type": "claude_session_missing", "agentSessionId": sid}]


async def test_agent_death_fails_the_prompt_at_once(world: ClaudeWorld, fake: FakeModelServer) -> None:
    fake.script(Reply(text="word " * 400, chunks=400, delay=0.05))
    host = Host()
    adapter = world.adapter()
    with pytest.RaisesGroup(AgentExitedError) as run_err:
        async with anyio.create_task_group() as tg:
            session = await tg.start(adapter.run, host, world.request())
            with anyio.fail_after(30):
                async with anyio.create_task_group() as inner:
                    errors: list[BaseException] = []

                    async def run_prompt() -> None:
                        try:
                            await session.prompt(prompt("talk"))
                        except AgentExitedError as exc:
                            errors.append(exc)

                    inner.start_soon(run_prompt)
                    await host.wait_for(lambda u: u["sessionUpdate"] == "agent_message_chunk")
                    os.killpg(session.pid(), signal.SIGKILL)
            assert isinstance(errors[0], AgentExitedError) and errors[0].returncode == -signal.SIGKILL
            await anyio.sleep_forever()  # run() itself ends with the same error
    (exc,) = run_err.value.exceptions
    assert isinstance(exc, AgentExitedError) and exc.returncode == -signal.SIGKILL


async def test_probe(world: ClaudeWorld) -> None:
    with anyio.fail_after(30):
        probe = await world.adapter().probe()
    assert probe.agent_info == {"name": "claude-code", "title": "Claude Code", "version": installed_version("claude")}
    assert probe.agent_capabilities["loadSession"] is True


async def test_missing_binary_is_a_clear_start_error(world: ClaudeWorld) -> None:
    spec = AgentSpec(name="claude", protocol="claude", command=str(world.tmp / "nope" / "claude"))
    with pytest.raises(AgentStartError) as err:
        await create(spec, AdapterEnv(state_dir=str(world.tmp))).probe()
    assert "does not exist" in err.value.message


async def test_stop_reasons_and_api_errors_keep_the_session(world: ClaudeWorld, fake: FakeModelServer) -> None:
    dialect = fake.dialects[0]
    assert isinstance(dialect, AnthropicDialect)
    refused = Reply(text="no", stop="refusal")
    fake.script(*[Reply(text="partial", stop="max_tokens")] * 4, refused, refused, Reply(text="ok"))
    async with open_session(world, Host()) as session:
        pid = session.pid()
        with anyio.fail_after(60):
            assert (await session.prompt(prompt("write a novel")))["stopReason"] == "max_tokens"
            assert (await session.prompt(prompt("something bad")))["stopReason"] == "refusal"
            # Claude Code 2.1.332 asks once more after a refusal; older ones did not.
            if fake.replies and fake.replies[0] is refused:
                fake.replies.popleft()
            # Claude Code 2.1.332 sends a failed request up to 6 times; older ones once.
            dialect.fail_next(400, "bad request from the fake", times=10)
            with pytest.raises(RpcError) as err:
                await session.prompt(prompt("this fails"))
            dialect.clear_failures()
            assert "bad request from the fake" in err.value.message
            assert (await session.prompt(prompt("and now?")))["stopReason"] == "end_turn"
        assert session.pid() == pid


async def test_max_turns_from_the_users_args(world: ClaudeWorld, fake: FakeModelServer) -> None:
    world.args = ("--max-turns", "1")
    fake.script(Reply(tools=[ToolUse("Bash", {"command": "echo a", "description": "echo"})]))
    async with open_session(world, Host()) as session:
        with anyio.fail_after(30):
            assert (await session.prompt(prompt("loop")))["stopReason"] == "max_turn_requests"


async def test_image_and_embedded_resource_in_the_prompt(world: ClaudeWorld, fake: FakeModelServer) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    fake.script(Reply(text="seen"))
    blocks = [{"type": "text", "text": "look"}, {"type": "image", "data": png, "mimeType": "image/png"},
              {"type": "resource", "resource": {"uri": "file:///w/a.py", "text": "print(1)", "mimeType": "text/x-python"}}]
    async with open_session(world, Host()) as session:
        with anyio.fail_after(30):
            await session.prompt({"sessionId": "bridge-session", "prompt": blocks})
    content = world.last_body()["messages"][0]["content"]
    assert {"type": "base64", "media_type": "image/png", "data": png} in [b.get("source") for b in content]
    assert any('<context ref="file:///w/a.py">\nprint(1)' in b.get("text", "") for b in content)


async def test_load_in_another_directory_is_refused_clearly(world: ClaudeWorld, fake: FakeModelServer) -> None:
    fake.script(Reply(text="hi"))
    async with open_session(world, Host()) as first:
        sid = first.setup.agent_session_id
        with anyio.fail_after(30):
            await first.prompt(prompt("hi"))
    other = world.tmp / "other"
    other.mkdir()
    request = StartRequest(mode="load", cwd=str(other), mcp_servers=[], agent_session_id=sid)
    with pytest.RaisesGroup(RpcError) as err:
        async with open_session(world, Host(), request):
            pass
    (exc,) = err.value.exceptions
    assert isinstance(exc, RpcError) and exc.code == INVALID_PARAMS and str(world.ws) in exc.message


async def test_closing_the_session_ends_a_running_prompt(world: ClaudeWorld, fake: FakeModelServer) -> None:
    fake.script(Reply(text="word " * 400, chunks=400, delay=0.05))
    adapter, host = world.adapter(), Host()
    errors: list[Exception] = []
    run_scope = anyio.CancelScope()

    async def run_session(*, task_status: TaskStatus[ClaudeSession]) -> None:
        with run_scope:
            await adapter.run(host, world.request(), task_status=task_status)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            session = await tg.start(run_session)
            pid = session.pid()

            async def run_prompt() -> None:
                try:
                    await session.prompt(prompt("talk"))
                except AgentExitedError as exc:
                    errors.append(exc)

            tg.start_soon(run_prompt)
            await host.wait_for(lambda u: u["sessionUpdate"] == "agent_message_chunk")
            run_scope.cancel()
    assert len(errors) == 1
    assert pid is not None and gone(pid)  # the CLI was stopped with the session


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_subagent_work_is_visible_and_asks_the_user(world: ClaudeWorld, fake: FakeModelServer) -> None:
    """An Agent call whose subagent speaks, runs a command that needs permission, and reports:
    its updates and its permission request carry `_meta.bridge.parentToolCallId`."""
    target = world.ws / "created.txt"
    fake.script(
        Reply(
            tools=[
                ToolUse(
                    "Agent",
                    {
                        "description": "Make a file",
                        "prompt": "create it",
                        "subagent_type": "general-purpose",
                        "run_in_background": False,
                    },
                )
            ]
        ),
        Reply(
            text="I will create it.",
            tools=[
                ToolUse(
                    "Bash", {"command": f"touch {target} && echo created", "description": "Create a file"}
                )
            ],
        ),
        Reply(text="Subagent report."),
        Reply(text="All done."),
    )
    host = Host(select("allow"))
    async with open_session(world, host) as session:
        with anyio.fail_after(60):
            result = await session.prompt(prompt("delegate"))
    assert result["stopReason"] == "end_turn" and target.exists()
    parent = next(u for u in host.updates if u["sessionUpdate"] == "tool_call")["toolCallId"]
    (asked,) = host.permission_requests
    assert asked["toolCall"]["kind"] == "execute"
    assert asked["toolCall"]["_meta"] == {"bridge": {"parentToolCallId": parent}}

    def nested(u: dict[str, object]) -> bool:
        meta = u.get("_meta")
        return isinstance(meta, dict) and meta.get("bridge", {}).get("parentToolCallId") == parent

    inner = [u for u in host.updates if nested(u)]
    assert (
        "".join(u["content"]["text"] for u in inner if u["sessionUpdate"] == "agent_message_chunk")
        == "I will create it.Subagent report."
    )
    bash_id = asked["toolCall"]["toolCallId"]
    assert next(u["sessionUpdate"] for u in inner if u.get("toolCallId") == bash_id) == "tool_call"
    assert [u for u in inner if u.get("toolCallId") == bash_id][-1]["status"] == "completed"
    own = [u.get("status") for u in host.updates if u.get("toolCallId") == parent and u.get("status")]
    assert own == ["pending", "in_progress", "completed"]
    assert host.text().endswith("All done.")


ELICIT_MCP = Path(__file__).resolve().parents[2] / "fixtures" / "acp" / "elicit_mcp.py"


@pytest.mark.parametrize("capable", [True, False])
async def test_mcp_elicitation_reaches_a_capable_client(world: ClaudeWorld, fake: FakeModelServer, capable: bool) -> None:
    """A real MCP server's `ctx.elicit` during a tool call: with `elicitation.form` advertised
    the client is asked (`elicitation/create`) and its answer reaches the server; without it
    the server gets `decline` and the client is not asked."""
    fake.script(Reply(tools=[ToolUse("mcp__elicit__ask_name", {})]), Reply(text="done"))
    server = {"name": "elicit", "command": sys.executable, "args": [str(ELICIT_MCP)], "env": []}
    host = Host(select("allow"))

    async def answer(params: dict[str, object]) -> object:
        return {"action": "accept", "content": {"name": "Ada"}}

    host.elicit = answer
    caps = {"elicitation": {"form": {}}} if capable else {}
    request = world.request(mcp_servers=[server], client_capabilities=caps)
    async with open_session(world, host, request) as session:
        with anyio.fail_after(60):
            await session.prompt(prompt("ask my name"))
    final = host.of("tool_call_update")[-1]
    text = final["content"][0]["content"]["text"]
    if capable:
        assert host.elicitations, (text, host.records[-5:])
        (asked,) = host.elicitations
        assert asked["mode"] == "form" and asked["message"] == "What is your name?"
        assert asked["requestedSchema"]["properties"]["name"]["type"] == "string"
        assert asked["toolCallId"] == final["toolCallId"]
        assert asked["_meta"] == {"bridge": {"mcpServer": "elicit"}}
        assert "accept:Ada" in text
    else:
        assert host.elicitations == []
        assert "decline" in text and "accept" not in text


@pytest.mark.parametrize("capable", [False, True])
async def test_compact_command(world: ClaudeWorld, fake: FakeModelServer, capable: bool) -> None:
    """`/compact` as a prompt: the CLI summarizes with one model call; the client sees a
    "Compact the conversation" tool call carrying the summary, or ACP's unstable
    `compaction_update` entity when it advertises `session.compaction`."""
    fake.script(Reply(text="Hi."), Reply(text="Summary: the user said hello."))
    host = Host()
    caps = {"session": {"compaction": {}}} if capable else {}
    async with open_session(world, host, world.request(client_capabilities=caps)) as session:
        with anyio.fail_after(60):
            await session.prompt(prompt("hello"))
            result = await session.prompt(prompt("/compact"))
    assert result["stopReason"] == "end_turn"
    # The CLI asked the model for a summary (its compaction prompt is the request's last message).
    asks = [json.dumps(r.body["messages"][-1]).lower() for r in fake.requests
            if r.path.startswith("/v1/messages?") and isinstance(r.body, dict) and r.body.get("messages")]
    assert any("summar" in a for a in asks[1:])
    if capable:
        entity = host.of("compaction_update")
        assert [u["status"] for u in entity][:2] == ["in_progress", "completed"]
        assert "Summary: the user said hello." in entity[-1]["summary"][0]["text"]
        return
    assert host.of("compaction_update") == []
    calls = [u for u in host.updates if str(u.get("toolCallId", "")).startswith("compact-")]
    assert calls[0]["title"] == "Compact the conversation"
    assert [u.get("status") for u in calls if u.get("status")] == ["in_progress", "completed"]
    assert "Summary: the user said hello." in calls[-1]["content"][0]["content"]["text"]
