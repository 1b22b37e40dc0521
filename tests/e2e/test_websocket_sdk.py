"""A client written for the ACP remote-transport RFD — the official Python SDK's WebSocket
transport (`acp.ws.create_websocket_stream`, its port of the RFD reference) — runs a whole
session against `agent-bridge serve --listen`, with only the bearer header added."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import pytest
from acp import connect_to_agent, text_block
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    FileSystemCapabilities,
    ReadTextFileResponse,
    RequestPermissionResponse,
)
from acp.ws import create_websocket_stream

from tests.e2e.ws_support import ws_daemon

pytestmark = pytest.mark.anyio


class Recorder:
    """The SDK calls these for agent→client traffic."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, Any]] = []
        self.permissions: list[str] = []

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append((session_id, update))

    async def request_permission(self, session_id: str, tool_call: Any, options: Any, **kwargs: Any) -> Any:
        self.permissions.append(session_id)
        return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id="allow"))

    async def read_text_file(self, session_id: str, path: str, **kwargs: Any) -> Any:
        return ReadTextFileResponse(content=Path(path).read_text())

    def on_connect(self, conn: Any) -> None:
        return None


async def test_the_official_sdk_websocket_client_runs_a_session(tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("read over the socket")
    async with ws_daemon(tmp_path) as d:
        transport = await create_websocket_stream(d.url, headers=d.auth())
        client = Recorder()
        conn = connect_to_agent(client, transport)  # type: ignore[arg-type]
        try:
            with anyio.fail_after(60):
                init = await conn.initialize(
                    protocol_version=1,
                    client_capabilities=ClientCapabilities(fs=FileSystemCapabilities(read_text_file=True)),
                )
                assert init.protocol_version == 1
                session = await conn.new_session(cwd=str(tmp_path), mcp_servers=[])
                result = await conn.prompt(session_id=session.session_id, prompt=[text_block("stream 25")])
                assert result.stop_reason == "end_turn"
                texts = [
                    u.content.text
                    for _, u in client.updates
                    if getattr(u, "session_update", "") == "agent_message_chunk"
                ]
                assert texts == [f"chunk {i} " for i in range(25)]
                await conn.prompt(session_id=session.session_id, prompt=[text_block("permission")])
                assert client.permissions == [session.session_id]
                note = tmp_path / "note.txt"
                await conn.prompt(session_id=session.session_id, prompt=[text_block(f"read {note}")])
                assert any("read over the socket" in str(u) for _, u in client.updates)
                listed = await conn.list_sessions()
                assert session.session_id in [s.session_id for s in listed.sessions]
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
            await transport.close()


async def test_the_official_sdk_client_without_the_token_is_refused(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        with pytest.raises(Exception, match="401"):
            await create_websocket_stream(d.url)
        assert d.agents() == []
