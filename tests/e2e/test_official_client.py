"""An off-the-shelf ACP client (the `agent-client-protocol` package's client side) drives
`agent-bridge` as a subprocess, with the fake ACP agent behind it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from acp import text_block
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    FileSystemCapabilities,
    ReadTextFileResponse,
    RequestPermissionResponse,
)
from acp.stdio import spawn_agent_process

from tests.conftest import ROOT, fake_agent_config, subprocess_env

pytestmark = pytest.mark.anyio


class RecordingClient:
    """The SDK calls these for agent→client traffic."""

    def __init__(self) -> None:
        self.updates: list[Any] = []
        self.permissions: list[Any] = []

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append((session_id, update))

    async def request_permission(self, session_id: str, tool_call: Any, options: Any, **kwargs: Any) -> Any:
        self.permissions.append((session_id, tool_call, options))
        return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id="allow"))

    async def read_text_file(self, session_id: str, path: str, **kwargs: Any) -> Any:
        return ReadTextFileResponse(content=Path(path).read_text())

    def on_connect(self, conn: Any) -> None:
        return None


async def test_sdk_client_runs_a_session_through_the_bridge(tmp_path: Path) -> None:
    config = fake_agent_config(tmp_path)
    client = RecordingClient()
    env = subprocess_env()
    (tmp_path / "note.txt").write_text("from the SDK's client")
    with anyio.fail_after(60):
        async with spawn_agent_process(
            client,  # type: ignore[arg-type]
            sys.executable,
            "-m",
            "bridge",
            "--config",
            str(config),
            "--state-dir",
            str(tmp_path / "state"),
            env=env,
            cwd=str(ROOT),
        ) as (conn, _process):
            init = await conn.initialize(
                protocol_version=1,
                client_capabilities=ClientCapabilities(fs=FileSystemCapabilities(read_text_file=True)),
            )
            assert init.protocol_version == 1
            assert init.agent_capabilities is not None and init.agent_capabilities.load_session
            session = await conn.new_session(cwd=str(tmp_path), mcp_servers=[])
            result = await conn.prompt(session_id=session.session_id, prompt=[text_block("stream 25")])
            assert result.stop_reason == "end_turn"
            texts = [u.content.text for sid, u in client.updates if getattr(u, "session_update", "") == "agent_message_chunk"]
            assert texts == [f"chunk {i} " for i in range(25)]
            assert all(sid == session.session_id for sid, _ in client.updates)

            result = await conn.prompt(session_id=session.session_id, prompt=[text_block("permission")])
            assert result.stop_reason == "end_turn"
            assert client.permissions and client.permissions[0][0] == session.session_id

            await conn.prompt(session_id=session.session_id, prompt=[text_block(f"read {tmp_path / 'note.txt'}")])
            assert any("from the SDK's client" in str(u) for _, u in client.updates)

            listed = await conn.list_sessions()
            assert [s.session_id for s in listed.sessions] == [session.session_id]
