"""Client tools with the real Claude Code CLI: `agent-bridge` (a real subprocess, ACP over
stdio) gives Claude its loopback MCP server; the model (the fake Anthropic server) calls
`mcp__editor__read_text_file` and `mcp__editor__write_text_file`, and they become
`fs/read_text_file` / `fs/write_text_file` requests to the ACP client. The client answers the
read with its unsaved buffer (not what is on disk) and keeps the write to itself."""

from __future__ import annotations

import json
import os
import re
import signal
from typing import Any

import anyio
import httpx2
import psutil
import pytest

from tests.adapters.claude.test_daemon import config
from tests.daemon_proc import daemon_process
from tests.fakes.anthropic import tool_results
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse
from tests.faults.support import agent_pid
from tests.waiting import running_tree, wait_until

from .support import ClaudeWorld

pytestmark = pytest.mark.anyio

BUFFER = "editor buffer, not saved yet: 42\n"


def listening(pid: int) -> list[int]:
    """The TCP ports the daemon itself listens on (its stdio transport has none of its own)."""
    conns = psutil.Process(pid).net_connections(kind="tcp")
    return [c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN]


def argv_of_tree(pid: int) -> str:
    return "\n".join(argv for _, argv in running_tree(pid))


async def test_claude_reads_and_writes_through_the_client(world: ClaudeWorld, fake: FakeModelServer) -> None:
    notes, out = world.ws / "notes.txt", world.ws / "out.txt"
    notes.write_text("the stale copy on disk\n")
    fake.script(
        Reply(tools=[ToolUse("mcp__editor__read_text_file", {"path": "notes.txt"})]),
        Reply(
            tools=[ToolUse("mcp__editor__write_text_file", {"path": str(out), "content": "from claude\n"})]
        ),
        Reply(text="Read and wrote."),
    )
    asked: list[tuple[str, dict[str, Any]]] = []
    argv: list[str] = []
    pid: list[int] = []

    async def editor(method: str, params: dict[str, Any]) -> Any:
        asked.append((method, params))
        if method == "session/request_permission":
            return {"outcome": {"outcome": "selected", "optionId": "allow"}}
        argv.append(argv_of_tree(pid[0]))
        if method == "fs/read_text_file":
            assert params["path"] == str(notes)
            return {"content": BUFFER}
        if method == "fs/write_text_file":
            return None  # ACP's WriteTextFileResponse may be null
        raise AssertionError(method)

    trace = world.tmp / "trace.jsonl"
    args = [
        *("--config", str(config(world)), "--state-dir", str(world.tmp / "state")),
        *("--trace", str(trace)),
    ]
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            pid.append(d.process.pid)
            d.client.handler = editor
            await d.client.initialize()  # fs.readTextFile and fs.writeTextFile
            new = await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []})
            sid = new["sessionId"]
            assert new["_meta"]["claudeCode"]["mcpServers"][0]["name"] == "editor"
            result = await d.client.prompt(sid, "read notes.txt, then write out.txt")
            assert result["stopReason"] == "end_turn"
            assert d.client.text(sid) == "Read and wrote."
            # The daemon listens for the session's agent only, and only with the secret.
            [port] = listening(d.process.pid)
            async with httpx2.AsyncClient() as http:
                resp = await http.post(
                    f"http://127.0.0.1:{port}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
                )
            assert resp.status_code == 401
            # Closing the session stops the server with the agent.
            await d.client.request("session/close", {"sessionId": sid})
            assert listening(d.process.pid) == []
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]

    # The model's tool result is the client's buffer, not the disk.
    [read_result] = tool_results(fake.requests[1].body)
    assert BUFFER.strip() in json.dumps(read_result) and "stale copy" not in json.dumps(read_result)
    # The write reached the client and nothing else: the agent did not touch the disk.
    writes = [p for m, p in asked if m == "fs/write_text_file"]
    assert writes == [{"sessionId": sid, "path": str(out), "content": "from claude\n"}]
    assert not out.exists() and notes.read_text() == "the stale copy on disk\n"
    # Claude's permission flow still applies to the tools (default mode asks for MCP tools).
    # The client sees a read, then an edit with its diff, as for Claude's own tools.
    calls = [p["toolCall"] for m, p in asked if m == "session/request_permission"]
    assert [(c["title"], c["kind"]) for c in calls] == [
        ("editor: read_text_file", "read"),
        ("editor: write_text_file", "edit"),
    ]
    assert calls[0]["locations"] == [{"path": "notes.txt"}]
    assert calls[1]["content"] == [
        {"type": "diff", "path": str(out), "oldText": None, "newText": "from claude\n"}
    ]
    # The per-session secret never reaches a command line or the daemon's log.
    assert argv and not any("Bearer" in a for a in argv)
    # ... nor the protocol trace (the header is there, masked) or the catalog.
    assert "Bearer ***" in trace.read_text() and not re.search(r"Bearer (?!\*\*\*)", trace.read_text())
    assert b"Bearer" not in b"".join(p.read_bytes() for p in (world.tmp / "state").glob("sessions.db*"))
    assert b"Bearer" not in d.stderr and b"127.0.0.1:" not in d.stderr


async def test_client_tools_off_in_config(world: ClaudeWorld, fake: FakeModelServer) -> None:
    path = config(world)
    path.write_text(path.read_text() + "client_tools = false\n")
    fake.script(Reply(text="plain"))
    with anyio.fail_after(90):
        async with daemon_process(["--config", str(path), "--state-dir", str(world.tmp / "state")]) as d:
            await d.client.initialize()
            new = await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []})
            assert new["_meta"]["claudeCode"]["mcpServers"] == []
            await d.client.prompt(new["sessionId"], "hi")
    tools = [t["name"] for t in fake.requests[0].body.get("tools", [])]
    assert tools and not any(t.startswith("mcp__editor") for t in tools)


async def test_no_tools_without_the_client_capability(world: ClaudeWorld, fake: FakeModelServer) -> None:
    fake.script(Reply(text="plain"))
    with anyio.fail_after(90):
        async with daemon_process(
            ["--config", str(config(world)), "--state-dir", str(world.tmp / "state")]
        ) as d:
            await d.client.initialize(fs={"readTextFile": False, "writeTextFile": False}, terminal=False)
            new = await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []})
            assert new["_meta"]["claudeCode"]["mcpServers"] == []
            await d.client.prompt(new["sessionId"], "hi")
    assert not any(t["name"].startswith("mcp__editor") for t in fake.requests[0].body.get("tools", []))


async def test_claude_runs_a_command_in_the_client_terminal(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    fake.script(
        Reply(tools=[ToolUse("mcp__editor__run_command", {"command": "make", "args": ["check"]})]),
        Reply(text="Ran it."),
    )
    asked: list[tuple[str, dict[str, Any]]] = []

    async def editor(method: str, params: dict[str, Any]) -> Any:
        asked.append((method, params))
        if method == "session/request_permission":
            return {"outcome": {"outcome": "selected", "optionId": "allow"}}
        if method == "terminal/create":
            return {"terminalId": "term-7"}
        if method == "terminal/wait_for_exit":
            return {"exitCode": 3, "signal": None}
        if method == "terminal/output":
            return {
                "output": "2 checks failed\n",
                "truncated": False,
                "exitStatus": {"exitCode": 3, "signal": None},
            }
        if method == "terminal/release":
            return None
        raise AssertionError(method)

    with anyio.fail_after(120):
        async with daemon_process(
            ["--config", str(config(world)), "--state-dir", str(world.tmp / "state")]
        ) as d:
            d.client.handler = editor
            await d.client.initialize(fs={"readTextFile": False, "writeTextFile": False}, terminal=True)
            new = await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []})
            assert (await d.client.prompt(new["sessionId"], "run make check"))["stopReason"] == "end_turn"
    offered = [t["name"] for t in fake.requests[0].body["tools"] if t["name"].startswith("mcp__editor")]
    assert offered == ["mcp__editor__run_command"]  # only what the client declared
    methods = [m for m, _ in asked if m != "session/request_permission"]
    assert methods == ["terminal/create", "terminal/wait_for_exit", "terminal/output", "terminal/release"]
    assert asked[1][1] == {
        "sessionId": new["sessionId"],
        "command": "make",
        "args": ["check"],
        "cwd": str(world.ws),
        "outputByteLimit": 256 * 1024,
    }
    [result] = tool_results(fake.requests[1].body)
    assert "2 checks failed" in json.dumps(result) and "exit code 3" in json.dumps(result)


async def test_user_settings_may_allow_the_read_without_asking(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    # The bridge widens nothing; the user's own Claude settings can (spec/client-tools.md).
    settings = world.home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"permissions": {"allow": ["mcp__editor__read_text_file"]}}))
    fake.script(Reply(tools=[ToolUse("mcp__editor__read_text_file", {"path": "a.txt"})]), Reply(text="ok"))
    asked: list[str] = []

    async def editor(method: str, params: dict[str, Any]) -> Any:
        asked.append(method)
        assert method == "fs/read_text_file"
        return {"content": "buffer"}

    with anyio.fail_after(90):
        async with daemon_process(
            ["--config", str(config(world)), "--state-dir", str(world.tmp / "state")]
        ) as d:
            d.client.handler = editor
            await d.client.initialize()
            sid = (await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []}))[
                "sessionId"
            ]
            assert (await d.client.prompt(sid, "read a.txt"))["stopReason"] == "end_turn"
    assert asked == ["fs/read_text_file"]


async def test_a_restarted_agent_gets_a_new_server(world: ClaudeWorld, fake: FakeModelServer) -> None:
    # The server lives with the agent process: the CLI killed between turns takes its server
    # (and secret) with it; the agent restarted for the next prompt gets a fresh one.
    read = ToolUse("mcp__editor__read_text_file", {"path": "a.txt"})
    fake.script(Reply(tools=[read]), Reply(text="one"), Reply(tools=[read]), Reply(text="two"))
    answers = iter(["first buffer", "second buffer"])

    async def editor(method: str, params: dict[str, Any]) -> Any:
        if method == "session/request_permission":
            return {"outcome": {"outcome": "selected", "optionId": "allow"}}
        assert method == "fs/read_text_file"
        return {"content": next(answers)}

    with anyio.fail_after(120):
        async with daemon_process(
            ["--config", str(config(world)), "--state-dir", str(world.tmp / "state")]
        ) as d:
            d.client.handler = editor
            await d.client.initialize()
            sid = (await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []}))[
                "sessionId"
            ]
            assert (await d.client.prompt(sid, "read it"))["stopReason"] == "end_turn"
            [first] = listening(d.process.pid)
            os.kill(await agent_pid(d.client, sid), signal.SIGKILL)
            await wait_until(
                lambda: listening(d.process.pid) == [], 15, "the killed CLI's tool server to close"
            )
            assert (await d.client.prompt(sid, "read it again"))["stopReason"] == "end_turn"
            [second] = listening(d.process.pid)
    assert second != first
    assert "first buffer" in json.dumps(tool_results(fake.requests[1].body))
    assert "second buffer" in json.dumps(tool_results(fake.generations[-1].body))
