"""MCP `env` and header values from `session/new`: the agent gets them, the log, its pages
and the trace show `***`, and `session/delete` erases the session's rows from the database.
(With the real Claude Code CLI and real MCP servers: tests/adapters/claude/test_secrets.py.)"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.acp_client import RpcFailure
from tests.conftest import fake_agent_config, in_process
from tests.store.test_durability import all_events

pytestmark = pytest.mark.anyio


def servers(env_secret: str, header_secret: str) -> list[dict[str, object]]:
    return [
        {"name": "tools", "command": "/bin/true", "args": [], "env": [{"name": "API_KEY", "value": env_secret}]},
        {"type": "http", "name": "web", "url": "http://127.0.0.1:9/mcp",
         "headers": [{"name": "X-Custom", "value": header_secret}]},
    ]


def db_bytes(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state.glob("sessions.db*"))


async def test_mcp_secrets_masked_in_log_pages_and_trace_and_erased_on_delete(tmp_path: Path) -> None:
    env_secret, header_secret = "env-" + secrets.token_hex(12), "hdr-" + secrets.token_hex(12)
    trace = tmp_path / "trace.jsonl"
    async with in_process(tmp_path, fake_agent_config(tmp_path), trace=str(trace)) as d:
        c = d.client
        await c.initialize()
        new = await c.request("session/new", {"cwd": d.cwd, "mcpServers": servers(env_secret, header_secret)})
        sid = new["sessionId"]
        # The agent received the real values (the fake agent echoes its MCP servers back).
        echoed = json.dumps(new["_meta"]["fake"]["mcpServers"])
        assert env_secret in echoed and header_secret in echoed
        await c.prompt(sid, "echo hello")
        keep = await c.new_session(d.cwd)
        await c.prompt(keep, "echo other")

        page = json.dumps(await all_events(c, sid))
        assert env_secret not in page and header_secret not in page
        assert page.count('"***"') >= 2 and "echo hello" in page
        text = trace.read_text()
        assert env_secret not in text and header_secret not in text and "echo hello" in text

        assert await c.request("session/delete", {"sessionId": sid}) == {}
        with pytest.raises(RpcFailure) as err:
            await c.request("_bridge/session/events", {"sessionId": sid})
        assert err.value.code == -32002
        assert await d.bridge.store.events(sid, 0, 10) == []
        # The other session's log is untouched.
        assert "echo other" in json.dumps(await all_events(c, keep))
        stored = db_bytes(tmp_path / "state")
        assert env_secret.encode() not in stored and header_secret.encode() not in stored
        assert b"echo hello" not in stored and b"echo other" in stored
