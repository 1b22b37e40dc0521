"""Client tools: the ACP client's `fs/*` and `terminal/*` methods as MCP tools for the native
agents (Claude Code, Codex), which have no ACP client of their own to call.

An ACP agent reads and writes through the client (`fs/read_text_file`, `fs/write_text_file`),
so it sees the editor's unsaved buffers and its writes land in the editor. Claude Code and Codex
read and write the disk. For their sessions the bridge serves these tools on a loopback MCP
server (`bridge/core/tool_server.py`), one per agent process, and adds it to the session's MCP
servers; a tool call becomes one request to the client that owns the session.

Which tools: only those whose capability the client declared in `initialize`
(`fs.readTextFile`, `fs.writeTextFile`, `terminal`); none at all when the agent's
`client_tools = false`. Paths are confined to the session's cwd and additional directories,
as `_bridge/session/read_file` is. A failed or refused request is a tool error (fail closed):
nothing ever falls back to the disk. Permission: these are MCP tools, so the agent's own
permission flow asks for them as for any MCP tool (the adapters turn that into
`session/request_permission`), and the client still decides what it writes or runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from bridge.core.adapter import SessionHost, StartRequest
from bridge.errors import RpcError
from bridge.wire.types import JsonObj

# What the model sees as the server's name: `mcp__editor__read_text_file` (Claude),
# `editor: read_text_file` (Codex).
SERVER_NAME = "editor"
# A command run through `run_command` is killed after this many seconds unless it says less.
COMMAND_TIMEOUT = 120.0
OUTPUT_LIMIT = 256 * 1024

INSTRUCTIONS = (
    "These tools go through the user's editor (the ACP client). read_text_file returns the file as the "
    "editor has it, unsaved changes included; write_text_file saves through the editor, which shows the "
    "change to the user. Prefer them over reading or writing the disk directly. Paths are absolute or "
    "relative to the session's working directory."
)


class ToolFailure(Exception):
    """The tool call failed; the message is what the model reads."""


@dataclass(frozen=True)
class ClientTool:
    name: str
    description: str
    schema: JsonObj
    read_only: bool
    run: Callable[[ToolContext, JsonObj], Awaitable[str]]


@dataclass(frozen=True)
class ToolContext:
    host: SessionHost
    cwd: str
    directories: tuple[str, ...]

    async def path(self, raw: Any) -> str:
        """The absolute path the client is asked about, when inside the session's roots."""
        if not isinstance(raw, str) or not raw or "\0" in raw:
            raise ToolFailure("path must be a non-empty string")
        # Resolving symlinks touches the disk: a slow one must not stall the event loop.
        return await anyio.to_thread.run_sync(self._confined, raw)

    def _confined(self, raw: str) -> str:
        path = os.path.normpath(os.path.join(self.cwd, raw))
        roots = [os.path.realpath(r) for r in (self.cwd, *self.directories)]
        real = os.path.realpath(path)
        if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
            raise ToolFailure(
                f"{raw} is outside the session's directories ({', '.join([self.cwd, *self.directories])})"
            )
        # The path as given (absolute): the editor knows its buffers by that name, not by
        # where a symlink leads.
        return path

    async def ask(self, method: str, params: JsonObj) -> Any:
        try:
            return await self.host.request_client(method, params)
        except RpcError as exc:
            raise ToolFailure(f"the client refused {method}: {exc.message}") from None


def _int(args: JsonObj, key: str, *, minimum: int) -> int | None:
    value = args.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ToolFailure(f"{key} must be an integer >= {minimum}")
    return value


async def _read(ctx: ToolContext, args: JsonObj) -> str:
    params: JsonObj = {"path": await ctx.path(args.get("path"))}
    for key in ("line", "limit"):
        if (value := _int(args, key, minimum=1)) is not None:
            params[key] = value
    result = await ctx.ask("fs/read_text_file", params)
    content = result.get("content") if isinstance(result, dict) else None
    if not isinstance(content, str):
        raise ToolFailure("the client answered fs/read_text_file without content")
    return content


async def _write(ctx: ToolContext, args: JsonObj) -> str:
    path, content = await ctx.path(args.get("path")), args.get("content")
    if not isinstance(content, str):
        raise ToolFailure("content must be a string")
    await ctx.ask("fs/write_text_file", {"path": path, "content": content})
    return f"wrote {len(content)} characters to {path}"


async def _run_command(ctx: ToolContext, args: JsonObj) -> str:
    command, argv = args.get("command"), args.get("args") or []
    if not isinstance(command, str) or not command:
        raise ToolFailure("command must be a non-empty string")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ToolFailure("args must be a list of strings")
    cwd = await ctx.path(args["cwd"]) if args.get("cwd") is not None else ctx.cwd
    timeout = args.get("timeout_seconds", COMMAND_TIMEOUT)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ToolFailure("timeout_seconds must be a positive number")
    created = await ctx.ask(
        "terminal/create", {"command": command, "args": argv, "cwd": cwd, "outputByteLimit": OUTPUT_LIMIT}
    )
    terminal = created.get("terminalId") if isinstance(created, dict) else None
    if not isinstance(terminal, str):
        raise ToolFailure("the client answered terminal/create without a terminalId")
    ids = {"terminalId": terminal}
    exited: Any = None
    try:
        with anyio.move_on_after(float(timeout)):
            exited = await ctx.ask("terminal/wait_for_exit", ids)
        if exited is None:
            await ctx.ask("terminal/kill", ids)
        out = await ctx.ask("terminal/output", ids)
    finally:
        # The terminal is the client's: a failed release leaves nothing of ours behind.
        with anyio.CancelScope(shield=True), anyio.move_on_after(5), contextlib.suppress(ToolFailure):
            await ctx.ask("terminal/release", ids)
    output = str(out.get("output") or "") if isinstance(out, dict) else ""
    status = _status(out.get("exitStatus") if isinstance(out, dict) else None) or _status(exited) or {}
    how = (
        f"killed after {timeout:g} s"
        if exited is None
        else f"exit code {status.get('exitCode')}"
        if status.get("signal") is None
        else f"signal {status.get('signal')}"
    )
    truncated = " (output truncated)" if isinstance(out, dict) and out.get("truncated") else ""
    return f"{output}\n[{how}{truncated}]"


def _status(value: Any) -> JsonObj | None:
    return value if isinstance(value, dict) else None


_PATH = {"type": "string", "description": "Absolute, or relative to the session's working directory."}

READ = ClientTool(
    "read_text_file",
    "Read a text file as the user's editor has it (unsaved changes included).",
    {
        "type": "object",
        "properties": {
            "path": _PATH,
            "line": {"type": "integer", "minimum": 1, "description": "First line to read (1-based)."},
            "limit": {"type": "integer", "minimum": 1, "description": "How many lines to read."},
        },
        "required": ["path"],
    },
    True,
    _read,
)
WRITE = ClientTool(
    "write_text_file",
    "Write a whole text file through the user's editor (creates it, or replaces its content).",
    {
        "type": "object",
        "properties": {"path": _PATH, "content": {"type": "string", "description": "The new content."}},
        "required": ["path", "content"],
    },
    False,
    _write,
)
RUN = ClientTool(
    "run_command",
    "Run a command in a terminal of the user's editor and return its output and exit status.",
    {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The program to run."},
            "args": {"type": "array", "items": {"type": "string"}},
            "cwd": _PATH,
            "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["command"],
    },
    False,
    _run_command,
)


def offered_tools(client_capabilities: JsonObj) -> list[ClientTool]:
    """The tools the client's `initialize` capabilities allow."""
    fs = client_capabilities.get("fs")
    fs = fs if isinstance(fs, dict) else {}
    tools = []
    if fs.get("readTextFile") is True:
        tools.append(READ)
    if fs.get("writeTextFile") is True:
        tools.append(WRITE)
    if client_capabilities.get("terminal") is True:
        tools.append(RUN)
    return tools


def describe(server: str, tool: str, args: Any) -> JsonObj:
    """The ACP `kind`, `locations` and `content` of a call of one of these tools, for the
    adapters' tool calls and permission requests (an edit shows its diff); {} when the call is
    not one of ours (pure)."""
    if server != SERVER_NAME or not isinstance(args, dict):
        return {}
    path = args.get("path") if isinstance(args.get("path"), str) else None
    where = {"locations": [{"path": path}]} if path else {}
    if tool == "read_text_file":
        return {"kind": "read", **where}
    if tool == "write_text_file" and path and isinstance(args.get("content"), str):
        diff = {"type": "diff", "path": path, "oldText": None, "newText": args["content"]}
        return {"kind": "edit", **where, "content": [diff]}
    if tool == "run_command":
        return {"kind": "execute"}
    return {}


def server_name(request: StartRequest) -> str:
    """SERVER_NAME, or a variant when one of the client's own servers has that name."""
    taken = {s.get("name") for s in request.mcp_servers}
    name = SERVER_NAME
    while name in taken:
        name += "_bridge"
    return name
