"""Client tools with the real `codex app-server`: `agent-bridge` (a real subprocess, ACP over
stdio) adds its loopback MCP server to the thread's `config.mcp_servers`; the model (the fake
Responses server) calls `editor.read_text_file` and `editor.write_text_file`, and they become
`fs/read_text_file` / `fs/write_text_file` requests to the ACP client. The client answers the
read with its unsaved buffer (not what is on disk) and keeps the write to itself."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest

from tests.adapters.codex.support import Codex, request_text
from tests.adapters.codex.test_daemon import config
from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.openai_responses import mcp_call
from tests.waiting import running_tree

pytestmark = pytest.mark.anyio

BUFFER = "editor buffer, not saved yet: 42\n"


def argv_of_tree(pid: int) -> str:
    return "\n".join(argv for _, argv in running_tree(pid))


async def test_codex_reads_and_writes_through_the_client(codex: Codex, fake: FakeModelServer) -> None:
    notes, out = codex.workspace / "notes.txt", codex.workspace / "out.txt"
    notes.write_text("the stale copy on disk\n")
    fake.script(
        Reply(tools=[mcp_call("editor", "read_text_file", {"path": "notes.txt"}, "call_read")]),
        Reply(
            tools=[
                mcp_call(
                    "editor", "write_text_file", {"path": str(out), "content": "from codex\n"}, "call_write"
                )
            ]
        ),
        Reply(text="Read and wrote."),
    )
    asked: list[tuple[str, dict[str, Any]]] = []
    argv: list[str] = []
    pid: list[int] = []

    async def editor(method: str, params: dict[str, Any]) -> Any:
        asked.append((method, params))
        if method == "session/request_permission":
            option = next(o for o in params["options"] if o["kind"] == "allow_once")
            return {"outcome": {"outcome": "selected", "optionId": option["optionId"]}}
        argv.append(argv_of_tree(pid[0]))
        if method == "fs/read_text_file":
            assert params["path"] == str(notes)
            return {"content": BUFFER}
        if method == "fs/write_text_file":
            return {}
        raise AssertionError(method)

    trace = codex.home / "trace.jsonl"
    args = [
        *("--config", str(config(codex)), "--state-dir", str(codex.home / "state")),
        *("--trace", str(trace)),
    ]
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            pid.append(d.process.pid)
            d.client.handler = editor
            await d.client.initialize()  # fs.readTextFile and fs.writeTextFile
            new = await d.client.request("session/new", {"cwd": str(codex.workspace), "mcpServers": []})
            sid = new["sessionId"]
            result = await d.client.prompt(sid, "read notes.txt, then write out.txt")
            assert result["stopReason"] == "end_turn"
            assert d.client.text(sid) == "Read and wrote."
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]

    namespaces = {t["name"] for t in fake.requests[0].body["tools"] if t.get("type") == "namespace"}
    assert "mcp__editor" in namespaces
    # The model's tool result is the client's buffer, not the disk.
    after_read = request_text(fake.requests[1].body["input"])
    assert "editor buffer, not saved yet: 42" in after_read and "stale copy" not in after_read
    # The write reached the client and nothing else: the agent did not touch the disk.
    writes = [p for m, p in asked if m == "fs/write_text_file"]
    assert writes == [{"sessionId": sid, "path": str(out), "content": "from codex\n"}]
    assert not out.exists() and notes.read_text() == "the stale copy on disk\n"
    assert f"wrote 11 characters to {out}" in request_text(fake.requests[2].body["input"])
    # Codex's approval flow still applies: under its default policy it asks before the write
    # (the read is marked read-only, so Codex runs it without asking); the client sees an edit
    # with its diff, as for Codex's own file changes.
    [call] = [p["toolCall"] for m, p in asked if m == "session/request_permission"]
    assert call["title"] == "editor: write_text_file" and call["kind"] == "edit"
    assert call["content"] == [{"type": "diff", "path": str(out), "oldText": None, "newText": "from codex\n"}]
    kinds = {
        u["toolCallId"]: u.get("kind") for u in d.client.updates(sid) if u["sessionUpdate"] == "tool_call"
    }
    assert kinds == {"call_read": "read", "call_write": "edit"}
    # The per-session secret never reaches a command line or the daemon's log.
    assert argv and not any("Bearer" in a for a in argv)
    # ... nor the protocol trace (the header is there, masked) or the catalog.
    assert "Bearer ***" in trace.read_text() and not re.search(r"Bearer (?!\*\*\*)", trace.read_text())
    assert b"Bearer" not in b"".join(p.read_bytes() for p in (codex.home / "state").glob("sessions.db*"))
    assert b"Bearer" not in d.stderr


async def test_declined_write_never_reaches_the_client(codex: Codex, fake: FakeModelServer) -> None:
    out = codex.workspace / "out.txt"
    fake.script(
        Reply(
            tools=[mcp_call("editor", "write_text_file", {"path": str(out), "content": "x"}, "call_write")]
        ),
        Reply(text="Not written."),
    )
    asked: list[str] = []

    async def refuse(method: str, params: dict[str, Any]) -> Any:
        asked.append(method)
        assert method == "session/request_permission"
        option = next(o for o in params["options"] if o["kind"] == "reject_once")
        return {"outcome": {"outcome": "selected", "optionId": option["optionId"]}}

    args = ["--config", str(config(codex)), "--state-dir", str(codex.home / "state")]
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            d.client.handler = refuse
            await d.client.initialize()
            sid = (await d.client.request("session/new", {"cwd": str(codex.workspace), "mcpServers": []}))[
                "sessionId"
            ]
            assert (await d.client.prompt(sid, "write out.txt"))["stopReason"] == "end_turn"
    assert asked == ["session/request_permission"]
    assert not out.exists()
