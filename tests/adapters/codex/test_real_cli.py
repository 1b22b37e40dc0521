"""The Codex adapter against the real, pinned `codex app-server` and a fake Responses server."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters.codex import create
from bridge.core.adapter import StartRequest
from bridge.errors import INVALID_PARAMS, METHOD_NOT_FOUND, AgentError, AgentExitedError, RpcError
from bridge.wire.types import JsonObj
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
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse
from tests.fakes.openai_responses import last_tool_output, mcp_call, patch_call, shell_call
from tests.real_agents import installed_version

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
    assert fake.generations[-1].body["model"] == "mock-model"


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
        assert "rejected" in json.dumps(fake.generations[-1].body["input"][-1])


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
    assert "mcp-echo:ping" in request_text(fake.generations[-1].body["input"])


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


def _permissions_text(body: Any) -> str:
    """The permissions instructions Codex gives the model (they state the active policy)."""
    texts = [
        c.get("text", "") for item in body["input"] for c in item.get("content") or [] if isinstance(c, dict)
    ]
    return next(t for t in reversed(texts) if "<permissions instructions>" in t)


async def test_model_effort_and_mode_apply_to_the_next_turn(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="one"), Reply(text="two"))
    host = Host()
    user_config = (codex.codex_home / "config.toml").read_text()
    async with codex.session(host) as session:
        assert option(session, "thought_level")["currentValue"] == "medium"
        await session.prompt(prompt("first"))
        first = fake.generations[-1].body
        options = await session.set_config_option({"configId": "model", "value": "mock-model-mini"})
        for config_option in options["configOptions"]:
            validate("SessionConfigOption", config_option)
        effort = next(o for o in options["configOptions"] if o["id"] == "thought_level")
        # mini cannot think at "medium"'s neighbour "high"; its levels replace the old ones.
        assert [o["value"] for o in effort["options"]] == ["low", "medium"]
        await session.set_config_option({"configId": "thought_level", "value": "low"})
        await session.set_mode("full-access")
        assert host.of("current_mode_update")[-1]["currentModeId"] == "full-access"
        assert option(session, "mode")["currentValue"] == "full-access"
        with pytest.raises(RpcError):
            await session.set_config_option({"configId": "model", "value": "no-such-model"})
        await session.prompt(prompt("second"))
        second = fake.generations[-1].body
    assert first["model"] == "mock-model" and first["reasoning"]["effort"] == "medium"
    assert "`sandbox_mode` is `read-only`" in _permissions_text(first)
    assert second["model"] == "mock-model-mini" and second["reasoning"]["effort"] == "low"
    assert "`sandbox_mode` is `danger-full-access`" in _permissions_text(second)
    # Session settings travel as overrides: the user's config.toml is left as it was.
    assert (codex.codex_home / "config.toml").read_text() == user_config


async def test_policy_from_config_is_kept_until_a_mode_is_chosen(codex: Codex, fake: FakeModelServer) -> None:
    # A policy the user set that matches no preset shows as mode "config" and is not replaced.
    codex.configure(fake.url, 'approval_policy = "never"\nsandbox_mode = "read-only"\n')
    fake.script(Reply(text="one"), Reply(text="two"), Reply(text="three"))
    async with codex.session(Host()) as session:
        modes = session.setup.modes or {}
        assert modes["currentModeId"] == "config"
        assert "config" in [m["id"] for m in modes["availableModes"]]
        assert "approval_policy = never" in (option(session, "mode")["description"] or "")
        await session.prompt(prompt("one"))
        await session.set_mode("auto")
        await session.prompt(prompt("two"))
        await session.set_mode("config")
        await session.prompt(prompt("three"))
    never, read_only = "Approval policy is currently never", "`sandbox_mode` is `read-only`"
    texts = [_permissions_text(r.body) for r in fake.requests]
    assert never in texts[0] and read_only in texts[0]
    assert never not in texts[1] and "`sandbox_mode` is `workspace-write`" in texts[1]
    assert never in texts[2] and read_only in texts[2]


async def test_sandboxed_command_runs_in_auto_mode(codex: Codex, fake: FakeModelServer) -> None:
    # auto = workspace-write sandbox through bubblewrap (the copy bundled with Codex).
    fake.script(Reply(tools=[shell_call("echo sandboxed > in-sandbox.txt", "call_sb")]), Reply(text="ok"))
    host = Host()
    async with codex.session(host) as session:
        await session.set_mode("auto")
        await session.prompt(prompt("write in the workspace"))
    output = last_tool_output(fake.generations[-1]) or ""
    if "bwrap:" in output and ("namespace" in output or "not permitted" in output):
        pytest.skip(
            f"bubblewrap cannot create a sandbox on this machine (mode mapping is covered above): {output}"
        )
    end = host.of("tool_call_update")[-1]
    assert host.requests == []
    assert end["status"] == "completed"
    assert (codex.workspace / "in-sandbox.txt").read_text() == "sandboxed\n"


async def test_cancel_while_approval_is_pending(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(
        Reply(tools=[shell_call("touch never.txt", "call_wait", escalate=True)]), Reply(text="unused")
    )
    asked, released = anyio.Event(), anyio.Event()

    async def answer(method: str, params: JsonObj) -> JsonObj:
        asked.set()
        await released.wait()  # like a client that never answers before the cancel
        return {"outcome": {"outcome": "cancelled"}}

    host = Host(answer=answer)
    async with codex.session(host) as session, anyio.create_task_group() as tg:
        results: list[JsonObj] = []

        async def run_prompt() -> None:
            results.append(await session.prompt(prompt("touch it")))

        tg.start_soon(run_prompt)
        with anyio.fail_after(20):
            await asked.wait()
            await session.cancel()
            released.set()  # the bridge answers open permission requests "cancelled" on cancel
    assert [r["stopReason"] for r in results] == ["cancelled"]
    assert not (codex.workspace / "never.txt").exists()
    assert host.of("tool_call_update")[-1]["status"] == "failed"


async def test_resume_and_load_in_a_new_process(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(
        Reply(tools=[shell_call("echo earlier", "call_early")]),
        Reply(text="first answer"),
        Reply(text="second answer"),
        Reply(text="third answer"),
    )
    first = Host()
    async with codex.session(first) as session:
        await session.set_mode("full-access")
        await session.prompt(prompt("first question"))
        thread = session.setup.agent_session_id
    # resume: a new app-server process continues the thread, without replay.
    resumed = Host()
    async with codex.session(resumed, mode="resume", thread=thread) as session:
        assert session.setup.agent_session_id == thread
        # Codex may restate the context usage on resume, the commands are announced again;
        # nothing of the history is replayed.
        kept = ("usage_update", "available_commands_update")
        assert [u for u in resumed.updates if u["sessionUpdate"] not in kept] == []
        await session.prompt(prompt("second question"))
    history = request_text(fake.generations[-1].body["input"])
    assert "first question" in history and "first answer" in history and "earlier" in history
    # load: replays the thread's history as updates before the session opens.
    loaded = Host()
    async with codex.session(loaded, mode="load", thread=thread) as session:
        replayed = list(loaded.updates)
        await session.prompt(prompt("third question"))
    assert text_of(replayed, "user_message_chunk") == "first questionsecond question"
    assert text_of(replayed) == "first answersecond answer"
    [call] = [u for u in replayed if u["sessionUpdate"] == "tool_call"]
    assert call["toolCallId"] == "call_early" and call["kind"] == "execute"
    done = next(u for u in replayed if u["sessionUpdate"] == "tool_call_update")
    assert done["status"] == "completed" and "earlier" in done["content"][0]["content"]["text"]


async def test_fork(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="parent answer"), Reply(text="child answer"), Reply(text="parent again"))
    async with codex.session(Host()) as session:
        await session.prompt(prompt("parent question"))
        parent = session.setup.agent_session_id
    async with codex.session(Host(), mode="fork", thread=parent) as child:
        assert child.setup.agent_session_id != parent
        assert (child.setup.meta or {})["codex"]["forkedFromId"] == parent
        await child.prompt(prompt("child question"))
    assert "parent answer" in request_text(fake.generations[-1].body["input"])
    # The parent did not see the child's turn.
    async with codex.session(Host(), mode="resume", thread=parent) as session:
        await session.prompt(prompt("parent again"))
    assert "child question" not in request_text(fake.generations[-1].body["input"])


async def test_agent_death_fails_the_prompt_at_once(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="slow " * 100, chunks=100, delay=0.2))
    host = Host()
    adapter = create(codex.spec(), codex.adapter_env())
    request = StartRequest(mode="new", cwd=str(codex.workspace), mcp_servers=[])
    errors: list[BaseException] = []

    async def run(*, task_status: Any) -> None:
        try:
            await adapter.run(host, request, task_status=task_status)
        except AgentExitedError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        session = await tg.start(run)
        pid = session.pid()
        assert pid is not None
        with anyio.fail_after(20):
            async with anyio.create_task_group() as turn:
                turn.start_soon(_kill_when_streaming, host, pid)
                with pytest.raises(AgentExitedError) as info:
                    await session.prompt(prompt("go"))
    assert info.value.returncode == -signal.SIGKILL
    assert errors and isinstance(errors[0], AgentExitedError)
    assert session.pid() is None


async def _kill_when_streaming(host: Host, pid: int) -> None:
    await host.wait_for(lambda u: u["sessionUpdate"] == "agent_message_chunk")
    os.kill(pid, signal.SIGKILL)


async def test_probe(codex: Codex) -> None:
    probe = await create(codex.spec(), codex.adapter_env()).probe()
    validate("AgentCapabilities", probe.agent_capabilities)
    assert probe.agent_info == {"name": "codex", "title": "Codex", "version": installed_version("codex")}


async def test_image_in_prompt(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="a red dot"))
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    async with codex.session(Host()) as session:
        blocks = [
            {"type": "text", "text": "what is this?"},
            {"type": "image", "mimeType": "image/png", "data": pixel},
        ]
        await session.prompt({"sessionId": "s", "prompt": blocks})
    assert f"data:image/png;base64,{pixel}" in request_text(fake.generations[-1].body["input"])


async def test_codex_config_error_is_reported_with_its_reason(codex: Codex, fake: FakeModelServer) -> None:
    codex.configure(fake.url, 'approval_policy = "untrusted"\n')  # refused by Codex 0.169
    with pytest.raises(AgentExitedError) as info:
        async with codex.session(Host()):
            pass
    assert info.value.returncode == 1
    assert "no longer supported" in info.value.message  # Codex's own reason, not a backtrace line


async def test_unknown_thread_cannot_be_resumed(codex: Codex) -> None:
    # A session that had turns (one never prompted has no rollout, and is opened afresh).
    with pytest.raises(AgentError) as info:
        async with codex.session(
            Host(), mode="resume", thread="01a1fc00-0000-7000-8000-000000000000", history_turns=1
        ):
            pass
    assert "thread/resume" in info.value.message


async def test_failed_turn_is_an_error_with_codex_reason(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="partial", stop="failed"), Reply(text="recovered"))
    host = Host()
    async with codex.session(host) as session:
        with pytest.raises(AgentError) as info:
            await session.prompt(prompt("this will fail"))
        assert "scripted failure" in info.value.message
        assert (await session.prompt(prompt("again")))["stopReason"] == "end_turn"


async def test_mcp_tool_from_client_http_server(codex: Codex, fake: FakeModelServer) -> None:
    # The server refuses requests without the right header: the tool works only if the ACP
    # headers reach it.
    mcp_proc = await anyio.open_process([sys.executable, str(ECHO_MCP), "--http", "s3cret"])
    try:
        assert mcp_proc.stdout is not None
        with anyio.fail_after(20):
            port = int((await mcp_proc.stdout.receive()).decode().split()[0])
        web = {
            "type": "http",
            "name": "web",
            "url": f"http://127.0.0.1:{port}/mcp",
            "headers": [{"name": "X-Test-Token", "value": "s3cret"}],
        }
        fake.script(
            Reply(tools=[mcp_call("web", "echo", {"text": "over http"}, "call_http")]), Reply(text="ok")
        )
        host = Host()
        async with codex.session(host, mcp_servers=[web]) as session:
            await session.set_mode("full-access")
            await session.prompt(prompt("call it"))
    finally:
        mcp_proc.kill()
        await mcp_proc.aclose()
    end = host.of("tool_call_update")[-1]
    assert end["status"] == "completed"
    assert end["content"][0]["content"]["text"] == "mcp-echo:over http"


async def test_cancel_while_waiting_for_mcp_servers(codex: Codex, fake: FakeModelServer) -> None:
    # A client MCP server that never finishes starting holds the first prompt back (so the
    # turn would not run without its tools); a cancel ends that wait at once.
    stuck = {"name": "stuck", "command": "sleep", "args": ["60"], "env": []}
    async with codex.session(Host(), mcp_servers=[stuck]) as session:
        results: list[JsonObj] = []
        async with anyio.create_task_group() as tg:

            async def run_prompt() -> None:
                results.append(await session.prompt(prompt("hello")))

            tg.start_soon(run_prompt)
            with anyio.fail_after(5):
                while session._turn is None:  # the prompt registered its turn
                    await anyio.lowlevel.checkpoint()
                await session.cancel()
    assert results == [{"stopReason": "cancelled"}]
    assert fake.requests == []  # the model was never called


async def test_read_only_codex_methods_pass_through(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="listed"))
    async with codex.session(Host()) as session:
        await session.prompt(prompt("hello"))
        listed = await session.call("_codex/thread/list", {"sessionId": "s"})
        assert session.setup.agent_session_id in [t["id"] for t in listed["data"]]
        read = await session.call("_codex/thread/read", {"sessionId": "s"})  # threadId defaults to ours
        assert read["thread"]["id"] == session.setup.agent_session_id
        for method in ("_codex/config/value/write", "_codex/turn/start", "thread/list"):
            with pytest.raises(RpcError) as info:
                await session.call(method, {})
            assert info.value.code == METHOD_NOT_FOUND


ELICIT_MCP = Path(__file__).resolve().parents[2] / "fixtures" / "acp" / "elicit_mcp.py"


@pytest.mark.parametrize("capable", [True, False])
async def test_mcp_elicitation_reaches_a_capable_client(codex: Codex, fake: FakeModelServer, capable: bool) -> None:
    """A real MCP server asks for input during its tool call (`mcpServer/elicitation/request`):
    with `elicitation.form` advertised the client gets `elicitation/create` and its answer
    reaches the server; without it the server gets `decline` and the client is not asked."""
    fake.script(Reply(tools=[mcp_call("elicit", "ask_name", {}, "call_ask")]), Reply(text="asked"))
    server = {"name": "elicit", "command": sys.executable, "args": [str(ELICIT_MCP)], "env": []}

    def answer(method: str, params: JsonObj) -> Any:
        if method == "session/request_permission":  # Codex asks before calling the MCP tool
            return select("allow_once")(method, params)
        assert method == "elicitation/create", method
        return {"action": "accept", "content": {"name": "Ada"}}

    host = Host(answer=answer)
    caps = {"elicitation": {"form": {}}} if capable else {}
    # Not full-access: under approval policy `never` Codex declines elicitations itself.
    async with codex.session(host, mcp_servers=[server], client_capabilities=caps) as session:
        with anyio.fail_after(60):
            await session.prompt(prompt("ask my name"))
    output = last_tool_output(fake.requests[-1]) or ""
    asked = [p for m, p in host.requests if m == "elicitation/create"]
    if capable:
        assert asked, (output, host.requests)
        (ask,) = asked
        assert ask["mode"] == "form" and ask["message"] == "What is your name?"
        assert ask["requestedSchema"]["properties"]["name"]["type"] == "string"
        assert "accept:Ada" in output
    else:
        assert asked == []
        assert "decline" in output and "accept" not in output


@pytest.mark.parametrize("capable", [False, True])
async def test_compact_command(codex: Codex, fake: FakeModelServer, capable: bool) -> None:
    """`/compact` is advertised and runs Codex's own compaction (`thread/compact/start`):
    the prompt ends when it does, with the compaction shown as a completed tool call, or as
    ACP's unstable `compaction_update` to a client that advertises `session.compaction`."""
    fake.script(Reply(text="first answer"), Reply(text="Summary: the user said hello."))
    host = Host()
    caps = {"session": {"compaction": {}}} if capable else {}
    async with codex.session(host, client_capabilities=caps) as session:
        with anyio.fail_after(60):
            await session.prompt(prompt("hello"))
            result = await session.prompt(prompt("/compact"))
    assert result["stopReason"] == "end_turn"
    (commands,) = host.of("available_commands_update")
    assert [c["name"] for c in commands["availableCommands"]] == ["compact"]
    assert len(fake.requests) == 2  # the compaction asked the model for its summary
    calls = [u for u in host.updates if u["sessionUpdate"] in ("tool_call", "tool_call_update")]
    if capable:
        entity = host.of("compaction_update")
        assert [u["status"] for u in entity] == ["in_progress", "completed"]
        assert len({u["compactionId"] for u in entity}) == 1
        assert not [u for u in calls if u.get("title") == "Compact the conversation"]
        return
    assert host.of("compaction_update") == []
    compaction = [u for u in calls if u.get("title") == "Compact the conversation"]
    assert compaction, calls
    cid = compaction[0]["toolCallId"]
    assert [u for u in calls if u["toolCallId"] == cid][-1]["status"] == "completed"


def _user_text(body: Any) -> str:
    items = body.get("input", []) if isinstance(body, dict) else []
    return json.dumps([i for i in items if isinstance(i, dict) and i.get("role") == "user"])


def _outputs(body: Any) -> set[str]:
    """The call ids whose results this request carries."""
    items = body.get("input", []) if isinstance(body, dict) else []
    return {str(i.get("call_id")) for i in items if isinstance(i, dict) and str(i.get("type", "")).endswith("call_output")}


def _child(*done: str) -> Any:
    return lambda body: "CHILD-TASK" in _user_text(body) and _outputs(body) == set(done)


def _main(*done: str) -> Any:
    return lambda body: "CHILD-TASK" not in _user_text(body) and _outputs(body) == set(done)


async def test_sub_agent_work_is_visible_and_asks_the_user(codex: Codex, fake: FakeModelServer) -> None:
    """Codex spawns a sub-agent (its multi-agent `spawn_agent` tool); the sub-agent's own
    thread runs a command that needs approval and answers. Its updates and its permission
    request carry `_meta.bridge.parentToolCallId`: the spawn call. (Both threads ask the fake
    model concurrently, so each scripted reply says which request it answers.)"""
    target = codex.workspace / "created.txt"
    # The main agent waits for its sub-agent, whose id (a thread id) is in the spawn call's
    # output: the reply is filled in when the request that carries it arrives.
    wait: JsonObj = {"targets": [], "timeout_ms": 60000}

    def waits(body: Any) -> bool:
        if not _main("call_spawn")(body):
            return False
        out = next(i["output"] for i in body["input"] if i.get("call_id") == "call_spawn" and "output" in i)
        wait["targets"] = [json.loads(out)["agent_id"]]
        return True

    fake.script(
        Reply(tools=[ToolUse("multi_agent_v1__spawn_agent", {"message": "CHILD-TASK: make the file"},
                             id="call_spawn")], when=_main()),
        Reply(tools=[shell_call(f"touch {target} && echo made", "call_child_touch", escalate=True)], when=_child()),
        Reply(text="child made it", when=_child("call_child_touch")),
        Reply(tools=[ToolUse("multi_agent_v1__wait_agent", wait, id="call_wait")], when=waits),
        Reply(text="all done", when=_main("call_spawn", "call_wait")),
    )
    host = Host(answer=select("allow_once"))
    async with codex.session(host) as session:
        with anyio.fail_after(90):
            result = await session.prompt(prompt("delegate"))
    assert result["stopReason"] == "end_turn"
    spawn = next(u for u in host.of("tool_call") if u["toolCallId"] == "call_spawn")
    assert spawn["_meta"]["bridge"]["toolName"] == "agents" and "parentToolCallId" not in spawn["_meta"]["bridge"]

    def nested(u: JsonObj) -> bool:
        return (u.get("_meta") or {}).get("bridge", {}).get("parentToolCallId") == "call_spawn"

    inner = [u for u in host.updates if nested(u)]
    assert text_of(inner) == "child made it"
    touch = [u for u in inner if u.get("toolCallId") == "call_child_touch"]
    assert touch and touch[0]["sessionUpdate"] == "tool_call" and touch[-1]["status"] == "completed"
    assert target.exists()
    [(_, ask)] = [r for r in host.requests if r[0] == "session/request_permission"]
    assert ask["toolCall"]["toolCallId"] == "call_child_touch"
    assert ask["toolCall"]["_meta"]["bridge"]["parentToolCallId"] == "call_spawn"
    # The main agent's own words are not nested; the sub-agent's usage is not the session's.
    assert text_of([u for u in host.updates if not nested(u)]) == "all done"
    assert not [u for u in inner if u["sessionUpdate"] == "usage_update"]


async def test_cancel_during_compact(codex: Codex, fake: FakeModelServer) -> None:
    """Cancelling a `/compact` interrupts Codex's compaction turn (its id comes from
    `turn/started`, as `thread/compact/start` answers none): the prompt ends `cancelled`."""
    fake.script(Reply(text="first answer"), Reply(text="summary " * 40, chunks=40, delay=0.1))
    host = Host()
    async with codex.session(host) as session:
        await session.prompt(prompt("hello"))
        results: list[JsonObj] = []
        ended = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def compact() -> None:
                results.append(await session.prompt(prompt("/compact")))
                ended.set()

            tg.start_soon(compact)
            with anyio.fail_after(30):
                await host.wait_for(lambda u: u.get("title") == "Compact the conversation")
            # The scripted summary streams for 4 s: ending well before that means Codex was
            # interrupted, not that the compaction finished.
            with anyio.fail_after(2.5):
                await session.cancel()
                await ended.wait()
    assert results[0]["stopReason"] == "cancelled"
    compaction = next(u for u in host.updates if u.get("title") == "Compact the conversation")["toolCallId"]
    assert [u for u in host.updates if u.get("toolCallId") == compaction][-1]["status"] != "completed"
