"""`agent-bridge mcp check`: start each configured MCP server with the `mcp` client, list its
tools, and when it fails say exactly what is wrong (command not found, exits, bad handshake,
timeout, HTTP status) with a fix. Imported only by `agent-bridge mcp` and `doctor`."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

from bridge.mcp.config import ConfigProblem, McpServerEntry, to_acp

DEFAULT_TIMEOUT = 15.0


@dataclass
class ServerCheck:
    name: str
    scope: str  # "mcp_servers" or "agents.NAME.mcp_servers"
    transport: str
    ok: bool
    summary: str
    fix: str | None = None
    tools: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def entries(
    global_entries: Mapping[str, McpServerEntry], by_agent: Mapping[str, Mapping[str, McpServerEntry]]
) -> list[tuple[str, str, McpServerEntry]]:
    """Every enabled entry as (scope, name, entry): the global ones, then each agent's own."""
    out = [("mcp_servers", n, e) for n, e in global_entries.items() if e.enabled]
    for agent, own in by_agent.items():
        out += [(f"agents.{agent}.mcp_servers", n, e) for n, e in own.items() if e.enabled]
    return out


def target(entry: McpServerEntry) -> str:
    """What the entry starts or reaches, without a value that could be a secret."""
    if entry.command is not None:
        return " ".join([entry.command, *(entry.args or [])])
    url = entry.url or ""
    return url.split("?", 1)[0]


async def check(
    scope: str, name: str, entry: McpServerEntry, environ: Mapping[str, str], seconds: float = DEFAULT_TIMEOUT
) -> ServerCheck:
    started = time.monotonic()
    result = ServerCheck(name, scope, entry.kind, False, "")
    try:
        server = to_acp(name, entry, environ, [])
    except ConfigProblem as exc:
        result.summary, result.fix = (
            str(exc),
            "set the variable in the daemon's environment, or change the entry",
        )
        return result
    try:
        if entry.command is not None:
            await _stdio(result, entry, server, environ, seconds)
        else:
            await _remote(result, entry, server, seconds)
    finally:
        result.seconds = round(time.monotonic() - started, 2)
    return result


async def _stdio(
    result: ServerCheck,
    entry: McpServerEntry,
    server: dict[str, Any],
    environ: Mapping[str, str],
    seconds: float,
) -> None:
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    command = server["command"] if entry.cwd is None else str(server["args"][4])
    cwd = server["args"][3] if entry.cwd is not None else None
    args = server["args"] if entry.cwd is None else server["args"][5:]
    found = _locate(result, command, cwd, environ)
    if found is None:
        return
    env = {**environ, **{e["name"]: e["value"] for e in server["env"]}}
    params = StdioServerParameters(command=found, args=list(args), env=env, cwd=cwd)
    with tempfile.TemporaryFile(mode="w+") as errlog, _stdout_garbage() as garbage:
        try:
            with anyio.fail_after(seconds):
                async with stdio_client(params, errlog=errlog) as (read, write):
                    await _session(result, read, write)
        except TimeoutError:
            if garbage:
                result.summary = (
                    f"bad MCP handshake: it wrote {garbage[0]!r} on stdout, which is not MCP JSON-RPC"
                )
                result.fix = "an MCP stdio server must write only JSON-RPC on stdout (logs go to stderr); check the command and its args"
                return
            result.summary = f"no answer to the MCP handshake within {seconds:g} s"
            result.fix = (
                "check that it is an MCP server speaking stdio (JSON-RPC on stdin/stdout) that starts "
                f"without prompting; run `{target(entry)}` yourself to see what it does"
            )
        except Exception as exc:
            errlog.seek(0)
            tail = [line for line in errlog.read().splitlines() if line.strip()]
            last = tail[-1][:300] if tail else ""
            leaf = _leaf(exc)
            if _closed(leaf):
                result.summary = "it exited during the MCP handshake" + (
                    f": {last}" if last else " (nothing on stderr)"
                )
                result.fix = f"run `{target(entry)}` yourself to see why it stops"
            else:
                result.summary = f"bad MCP handshake: {_describe(leaf)}" + (
                    f" (stderr: {last})" if last else ""
                )
                result.fix = "it must speak MCP JSON-RPC on stdout and log only to stderr; check it is the right command"


def _locate(result: ServerCheck, command: str, cwd: str | None, environ: Mapping[str, str]) -> str | None:
    """The executable a stdio entry starts, or None with the problem set on `result`."""
    where = f"{result.scope}.{result.name}"
    if cwd is not None and not os.path.isdir(cwd):
        result.summary = f"cwd {cwd} is not a directory"
        result.fix = f"create it, or change {where}.cwd"
        return None
    found = shutil.which(command, path=environ.get("PATH")) if os.sep not in command else command
    if found is None or not os.path.exists(found):
        result.summary = f"command {command!r} not found" + ("" if os.sep in command else " on PATH")
        result.fix = f"install it, or give its absolute path in {where}.command"
        return None
    if not os.access(found, os.X_OK):
        result.summary, result.fix = f"{found} is not executable", f"chmod +x {found}"
        return None
    return found


async def _remote(result: ServerCheck, entry: McpServerEntry, server: dict[str, Any], seconds: float) -> None:
    import httpx2
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {h["name"]: h["value"] for h in server["headers"]}
    url = server["url"]
    shown = target(entry)
    # The transport turns an HTTP error into a bare "error response": keep its status.
    statuses: list[int] = []

    async def record_status(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            statuses.append(response.status_code)

    try:
        with anyio.fail_after(seconds):
            if entry.kind == "sse":
                async with sse_client(url, headers=headers, timeout=seconds) as (read, write):
                    await _session(result, read, write)
            else:
                http = create_mcp_http_client(headers=headers, timeout=httpx2.Timeout(seconds))
                http.event_hooks["response"].append(record_status)
                async with http, streamable_http_client(url, http_client=http) as (read, write):
                    await _session(result, read, write)
    except TimeoutError:
        result.summary = f"no answer from {shown} within {seconds:g} s"
        result.fix = "check that the server is up and the URL is its MCP endpoint"
    except Exception as exc:
        leaf = _leaf(exc)
        status = getattr(getattr(leaf, "response", None), "status_code", None) or (
            statuses[0] if statuses else None
        )
        if isinstance(status, int):
            result.summary = f"{shown} answered HTTP {status}"
            result.fix = {
                401: "the server wants credentials: check headers (a token from ${VAR})",
                403: "the credentials in headers are refused: check the token and its scopes",
                404: "no MCP endpoint at this path: check the URL (often /mcp, or /sse for an sse server)",
                405: "the URL does not take MCP requests: check the path, and transport (http or sse)",
            }.get(status, "check the URL and the server's logs")
        elif isinstance(leaf, httpx2.ConnectError | OSError):
            result.summary = f"cannot connect to {shown}: {_describe(leaf)}"
            result.fix = "start the server, or check the host and port in the URL"
        else:
            result.summary = f"bad MCP handshake with {shown}: {_describe(leaf)}"
            result.fix = f"check that it is an MCP server using transport {entry.kind!r}"


async def _session(result: ServerCheck, read: Any, write: Any) -> None:
    from mcp import ClientSession

    async with ClientSession(read, write) as session:
        init = await session.initialize()
        tools = await session.list_tools()
    result.ok = True
    result.tools = [t.name for t in tools.tools]
    info = init.server_info
    n = len(result.tools)
    result.summary = f"{info.name} {info.version or ''}".rstrip() + f": {n} tool{'s' * (n != 1)}"


_GARBAGE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("mcp_check_garbage", default=None)


class _CatchGarbage(logging.Handler):
    """The SDK logs (and skips) each stdout line of a stdio server that is not JSON-RPC; its
    reader task runs in the context of the check that started it, so the line is that check's."""

    def emit(self, record: logging.LogRecord) -> None:
        seen = _GARBAGE.get()
        exc = record.exc_info[1] if record.exc_info else None
        found = re.search(r"input_value='((?:[^'\\]|\\.)*)'", str(exc)) if exc is not None else None
        if seen is not None and found:
            seen.append(found.group(1)[:200])


@contextlib.contextmanager
def _stdout_garbage() -> Iterator[list[str]]:
    logger = logging.getLogger("mcp.client.stdio")
    if not any(isinstance(h, _CatchGarbage) for h in logger.handlers):
        logger.addHandler(_CatchGarbage())
        logger.propagate = False  # said in the check's result instead, not as a traceback
    seen: list[str] = []
    token = _GARBAGE.set(seen)
    try:
        yield seen
    finally:
        _GARBAGE.reset(token)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _closed(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("closed", "endofstream", "brokenresource", "connection lost"))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
