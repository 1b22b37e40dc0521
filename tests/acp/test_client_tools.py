"""The client-tools MCP server (bridge/core/tool_server.py) driven by the real `mcp` client over
Streamable HTTP, with a host that answers `fs/*` and `terminal/*` as an editor would: reads
return the editor's buffer (not the disk), writes are recorded (the disk stays untouched)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bridge.core.adapter import JsonObj, StartRequest
from bridge.core.client_tools import offered_tools
from bridge.core.tool_server import offered, wanted
from bridge.diagnostics.redact import default as default_redactor
from bridge.errors import RpcError

pytestmark = pytest.mark.anyio

ALL = {"fs": {"readTextFile": True, "writeTextFile": True}, "terminal": True}


class Editor:
    """A SessionHost whose client keeps buffers and terminals in memory."""

    session_id = "sess_test"

    def __init__(self, buffers: dict[str, str]) -> None:
        self.buffers = buffers
        self.requests: list[tuple[str, JsonObj]] = []
        self.refuse: set[str] = set()
        self.exit_code: int | None = 0

    async def request_client(self, method: str, params: JsonObj) -> Any:
        self.requests.append((method, params))
        if method in self.refuse:
            raise RpcError(-32603, f"the user said no to {method}")
        if method == "fs/read_text_file":
            lines = self.buffers[params["path"]].splitlines(keepends=True)
            start = params.get("line", 1) - 1
            end = start + params["limit"] if "limit" in params else None
            return {"content": "".join(lines[start:end])}
        if method == "fs/write_text_file":
            self.buffers[params["path"]] = params["content"]
            return {}
        if method == "terminal/create":
            return {"terminalId": "term_1"}
        if method == "terminal/wait_for_exit":
            if self.exit_code is None:
                await anyio.sleep_forever()
            return {"exitCode": self.exit_code, "signal": None}
        if method == "terminal/output":
            killed = ("terminal/kill", {"terminalId": "term_1"}) in self.requests
            status = {"exitStatus": {"exitCode": None, "signal": "SIGKILL"}} if killed else {}
            return {"output": "hello from the editor\n", "truncated": False, **status}
        if method in ("terminal/kill", "terminal/release"):
            return {}
        raise AssertionError(method)

    def of(self, method: str) -> list[JsonObj]:
        return [p for m, p in self.requests if m == method]


def start(tmp_path: Path, caps: JsonObj = ALL, servers: list[JsonObj] | None = None) -> StartRequest:
    return StartRequest(mode="new", cwd=str(tmp_path), mcp_servers=servers or [], client_capabilities=caps)


@contextlib.asynccontextmanager
async def connected(editor: Editor, request: StartRequest) -> AsyncIterator[tuple[Client, JsonObj]]:
    async with offered(editor, request, offered_tools(request.client_capabilities)) as req:  # type: ignore[arg-type]
        entry = req.mcp_servers[-1]
        headers = {h["name"]: h["value"] for h in entry["headers"]}
        transport = streamable_http_client(entry["url"], http_client=create_mcp_http_client(headers=headers))
        async with Client(transport, mode="legacy") as client:
            yield client, entry


def text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def test_read_and_write_go_to_the_client_not_the_disk(tmp_path: Path) -> None:
    disk = tmp_path / "notes.txt"
    disk.write_text("on disk\n")
    editor = Editor({str(disk): "unsaved line 1\nunsaved line 2\nline 3\n"})
    async with connected(editor, start(tmp_path)) as (client, entry):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"read_text_file", "write_text_file", "run_command"}
        assert tools["read_text_file"].annotations.read_only_hint is True
        assert tools["write_text_file"].annotations.read_only_hint is False
        assert entry["name"] == "editor" and entry["url"].startswith("http://127.0.0.1:")

        read = await client.call_tool("read_text_file", {"path": "notes.txt"})
        assert not read.is_error and text(read) == "unsaved line 1\nunsaved line 2\nline 3\n"
        part = await client.call_tool("read_text_file", {"path": str(disk), "line": 2, "limit": 1})
        assert text(part) == "unsaved line 2\n"
        assert editor.of("fs/read_text_file")[1] == {"path": str(disk), "line": 2, "limit": 1}

        wrote = await client.call_tool("write_text_file", {"path": "new/file.py", "content": "x = 1\n"})
        assert not wrote.is_error and "wrote 6 characters" in text(wrote)
    assert editor.buffers[str(tmp_path / "new" / "file.py")] == "x = 1\n"
    assert not (tmp_path / "new").exists() and disk.read_text() == "on disk\n"


async def test_refusals_and_bad_input_are_tool_errors(tmp_path: Path) -> None:
    outside = tmp_path.parent / "elsewhere.txt"
    (tmp_path / "link").symlink_to(tmp_path.parent)
    editor = Editor({})
    editor.refuse.add("fs/write_text_file")
    async with connected(editor, start(tmp_path)) as (client, _):
        denied = await client.call_tool("write_text_file", {"path": "a.txt", "content": "no"})
        assert denied.is_error and "the user said no to fs/write_text_file" in text(denied)
        for path in (str(outside), "../elsewhere.txt", "link/elsewhere.txt"):
            out = await client.call_tool("read_text_file", {"path": path})
            assert out.is_error and "outside the session's directories" in text(out)
        bad = await client.call_tool("read_text_file", {"path": "a.txt", "line": 0})
        assert bad.is_error and "line must be an integer >= 1" in text(bad)
        unknown = await client.call_tool("delete_everything", {})
        assert unknown.is_error
    # Nothing outside the roots, nothing malformed, ever reached the client.
    assert [m for m, _ in editor.requests] == ["fs/write_text_file"]


async def test_run_command_uses_the_client_terminal(tmp_path: Path) -> None:
    editor = Editor({})
    async with connected(editor, start(tmp_path)) as (client, _):
        ran = await client.call_tool("run_command", {"command": "make", "args": ["test"]})
        assert text(ran) == "hello from the editor\n\n[exit code 0]"
        editor.exit_code = None  # never exits on its own: killed at the timeout
        killed = await client.call_tool("run_command", {"command": "sleep", "timeout_seconds": 0.2})
        assert "[killed after 0.2 s]" in text(killed)
    assert editor.of("terminal/create")[0] == {
        "command": "make",
        "args": ["test"],
        "cwd": str(tmp_path),
        "outputByteLimit": 256 * 1024,
    }
    assert len(editor.of("terminal/kill")) == 1 and len(editor.of("terminal/release")) == 2
    assert len(editor.of("terminal/output")) == 2  # once per command, after it ended


async def test_only_declared_capabilities_and_native_adapters(tmp_path: Path) -> None:
    class Native:
        client_tools = True

    reads_only = start(tmp_path, {"fs": {"readTextFile": True}})
    assert [t.name for t in wanted(True, Native(), reads_only)] == ["read_text_file"]
    assert wanted(False, Native(), reads_only) == []  # `client_tools = false` in the config
    assert wanted(True, object(), reads_only) == []  # an ACP agent calls the client itself
    assert wanted(True, Native(), start(tmp_path, {"fs": {}, "terminal": False})) == []
    # Nothing to offer: the request is handed on unchanged.
    nothing = start(tmp_path, {})
    async with offered(Editor({}), nothing, []) as same:  # type: ignore[arg-type]
        assert same is nothing
    # A client server with our name keeps it; ours steps aside.
    theirs = {"name": "editor", "command": "x", "args": [], "env": []}
    async with offered(Editor({}), start(tmp_path, servers=[theirs]), [offered_tools(ALL)[0]]) as req:  # type: ignore[arg-type]
        assert [s["name"] for s in req.mcp_servers] == ["editor", "editor_bridge"]


async def test_secret_is_required_and_redacted(tmp_path: Path) -> None:
    editor = Editor({})
    async with offered(editor, start(tmp_path), offered_tools(ALL)) as req:  # type: ignore[arg-type]
        entry = req.mcp_servers[-1]
        secret = entry["headers"][0]["value"].removeprefix("Bearer ")
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        async with httpx2.AsyncClient() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": secret}):
                resp = await http.post(entry["url"], json=body, headers=headers)
                assert resp.status_code == 401
            # With the secret but from a page of another origin (DNS rebinding): refused too.
            auth = {"Authorization": f"Bearer {secret}"}
            for other in ({"Host": "evil.example:80"}, {"Origin": "http://evil.example"}):
                resp = await http.post(entry["url"], json=body, headers={**auth, **other})
                assert resp.status_code in (403, 421), resp.status_code
            # A body past the limit is refused before it is read whole.
            big = await http.post(entry["url"], content=b"x" * (17 * 1024 * 1024), headers=auth)
            assert big.status_code == 413
        assert default_redactor().text(f"token {secret} here") == "token *** here"
    assert editor.requests == []
    # Stopped with the block: the port no longer answers.
    with pytest.raises(httpx2.ConnectError):
        async with httpx2.AsyncClient() as http:
            await http.post(entry["url"], json=body)


def test_describe_gives_clients_a_read_an_edit_with_its_diff_and_a_command() -> None:
    from bridge.core.client_tools import describe

    assert describe("editor", "read_text_file", {"path": "a.py"}) == {
        "kind": "read",
        "locations": [{"path": "a.py"}],
    }
    assert describe("editor", "write_text_file", {"path": "/w/a.py", "content": "x"}) == {
        "kind": "edit",
        "locations": [{"path": "/w/a.py"}],
        "content": [{"type": "diff", "path": "/w/a.py", "oldText": None, "newText": "x"}],
    }
    assert describe("editor", "run_command", {"command": "ls"}) == {"kind": "execute"}
    # Someone else's server, a malformed call: nothing added.
    assert describe("other", "read_text_file", {"path": "a.py"}) == {}
    assert describe("editor", "write_text_file", "not an object") == {}
