"""The loopback MCP server behind the client tools (`bridge/core/client_tools.py`).

One per agent process: a Streamable HTTP endpoint (the `mcp` package's low-level server,
stateless, JSON responses) on 127.0.0.1 at a free port, served by uvicorn's HTTP/1.1 protocol
on the daemon's event loop, inside the agent task's scope: it stops with the agent, and a
restarted agent gets a new one. Every request must carry `Authorization: Bearer <secret>`, a
fresh secret per server: another local user (or another session's agent) that finds the port
gets 401. The secret reaches the agent as an MCP header (a 0600 file for Claude Code, the
app-server pipe for Codex), never argv; it is added to the process-wide redactor, so the logs
and the protocol trace show `***`; it is never stored in the catalog.

`mcp`, Starlette and uvicorn are imported only when a session gets this server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio

from bridge.core.adapter import SessionHost, StartRequest
from bridge.core.client_tools import (
    INSTRUCTIONS,
    ClientTool,
    ToolContext,
    ToolFailure,
    offered_tools,
    server_name,
)
from bridge.diagnostics.redact import default as default_redactor
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MAX_BODY = 16 * 1024 * 1024  # a whole file written in one call
# How long the stop waits for responses still being written.
STOP_WAIT = 2.0


def wanted(enabled: bool, adapter: object, request: StartRequest) -> list[ClientTool]:
    """The tools to offer: none unless the agent's config allows them and its adapter is one
    of the native ones (an ACP agent calls the client itself)."""
    if not enabled or not getattr(adapter, "client_tools", False):
        return []
    return offered_tools(request.client_capabilities)


@contextlib.asynccontextmanager
async def offered(
    host: SessionHost, request: StartRequest, tools: list[ClientTool]
) -> AsyncIterator[StartRequest]:
    """`request` with this server added to its MCP servers while the block runs."""
    if not tools:
        yield request
        return
    secret = secrets.token_urlsafe(32)
    default_redactor().add([secret])
    ctx = ToolContext(host, request.cwd, tuple(request.additional_directories or ()))
    async with _serving(ctx, tools, secret) as port:
        log.debug(
            "session %s: client tools %s on 127.0.0.1:%d", host.session_id, [t.name for t in tools], port
        )
        entry: JsonObj = {
            "type": "http",
            "name": server_name(request),
            "url": f"http://127.0.0.1:{port}{MCP_PATH}",
            "headers": [{"name": "Authorization", "value": f"Bearer {secret}"}],
        }
        yield dataclasses.replace(request, mcp_servers=[*request.mcp_servers, entry])


def _mcp_server(ctx: ToolContext, tools: list[ClientTool]) -> Any:
    import mcp.types as types
    from mcp.server.lowlevel import Server

    by_name = {t.name: t for t in tools}

    async def list_tools(_: Any, __: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=t.name,
                    description=t.description,
                    input_schema=t.schema,
                    annotations=types.ToolAnnotations(
                        read_only_hint=t.read_only, destructive_hint=not t.read_only, open_world_hint=False
                    ),
                )
                for t in tools
            ]
        )

    async def call_tool(_: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = by_name.get(params.name)
        try:
            if tool is None:
                raise ToolFailure(f"unknown tool {params.name!r}; this server has {', '.join(by_name)}")
            text = await tool.run(ctx, dict(params.arguments or {}))
        except ToolFailure as exc:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server("agent-bridge", instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool)


def _guarded(app: Any, secret: str) -> Any:
    expected = f"Bearer {secret}".encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope.get("headers") or [])
        if not hmac.compare_digest(headers.get(b"authorization", b""), expected):
            await _plain(send, 401, b"missing or wrong bearer token")
            return
        if scope.get("path") != MCP_PATH:
            await _plain(send, 404, b"not found")
            return
        await app(scope, receive, send)

    return guarded


async def _plain(send: Any, status: int, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def _serving(ctx: ToolContext, tools: list[ClientTool], secret: str) -> AsyncIterator[int]:
    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings
    from uvicorn.server import ServerState

    manager = StreamableHTTPSessionManager(
        app=_mcp_server(ctx, tools),
        json_response=True,
        stateless=True,
        max_request_body_size=MAX_BODY,
        # DNS rebinding: only loopback Host headers (the bearer secret is the real gate).
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
        ),
    )
    config = uvicorn.Config(
        _guarded(manager.handle_request, secret),
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
    )
    config.load()
    state = ServerState()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    loop = asyncio.get_running_loop()

    def protocol() -> asyncio.Protocol:
        return config.http_protocol_class(config=config, server_state=state, app_state={})  # type: ignore[call-arg]

    async with manager.run():
        server = await loop.create_server(protocol, sock=sock)
        try:
            yield int(sock.getsockname()[1])
        finally:
            with anyio.CancelScope(shield=True):
                server.close()
                for connection in list(state.connections):
                    connection.shutdown()
                tasks = list(state.tasks)
                for task in tasks:
                    task.cancel()
                with anyio.move_on_after(STOP_WAIT):
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await server.wait_closed()
