"""Config-wired MCP servers through the whole daemon (in process) and the fake ACP agent, which
echoes the servers each session open carried: every start (new, fork, resume, a restart after
a crash) gets them merged with the session's own; a server the agent cannot take is left out
with its reason in the status; their values stay out of the store, the log and the trace."""

from __future__ import annotations

import json
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge.app import configured_mcp_servers
from bridge.config import load_config
from bridge.diagnostics import redact
from tests.acp_client import RpcFailure
from tests.acp_schema import SchemaError, check, check_bridge_result
from tests.conftest import fake_agent_config, in_process
from tests.store.test_durability import all_events

pytestmark = pytest.mark.anyio


def mcp_config(tmp: Path) -> Path:
    path = fake_agent_config(tmp)
    path.write_text(
        path.read_text()
        + """
[mcp_servers.tools]
command = "/bin/true"
args = ["--serve"]
env = { API_KEY = "${AB_TEST_MCP_VALUE}" }

[mcp_servers.old]
url = "http://127.0.0.1:9/sse"
transport = "sse"

[mcp_servers.shared]
command = "/bin/false"
"""
    )
    return path


def echoed(result: dict[str, Any]) -> list[dict[str, Any]]:
    servers: list[dict[str, Any]] = result["_meta"]["fake"]["mcpServers"]
    return servers


def status_updates(updates: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [
        u["_meta"]["bridge"]["mcpServers"]
        for u in updates
        if u.get("sessionUpdate") == "session_info_update"
        and "mcpServers" in u.get("_meta", {}).get("bridge", {})
    ]


async def test_config_servers_reach_every_start_and_stay_out_of_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "cfg-" + secrets.token_hex(12)
    monkeypatch.setenv("AB_TEST_MCP_VALUE", secret)
    trace = tmp_path / "trace.jsonl"
    own = {"name": "shared", "command": "/bin/echo", "args": ["client"], "env": []}
    tools = {
        "name": "tools",
        "command": "/bin/true",
        "args": ["--serve"],
        "env": [{"name": "API_KEY", "value": secret}],
    }
    async with in_process(tmp_path, mcp_config(tmp_path), trace=str(trace)) as d:
        c = d.client
        await c.initialize()
        new = await c.request("session/new", {"cwd": d.cwd, "mcpServers": [own]})
        sid = new["sessionId"]
        # The config's first, then the session's own (which wins on `shared`); SSE, which the
        # agent does not take, is left out rather than failing the session.
        assert echoed(new) == [tools, own]
        expected = [
            {"name": "tools", "source": "config", "transport": "stdio", "status": "sent"},
            {
                "name": "old",
                "source": "config",
                "transport": "sse",
                "status": "failed",
                "error": "agent 'fake' does not support sse MCP servers",
            },
            {"name": "shared", "source": "session", "transport": "stdio", "status": "sent"},
        ]
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert info["mcpServers"] == expected
        check_bridge_result("_bridge/session/info", info)
        with pytest.raises(SchemaError):  # the schema does pin the states
            check_bridge_result(
                "_bridge/session/info", {**info, "mcpServers": [{"name": "x", "status": "fine"}]}
            )
        await c.prompt(sid, "echo hi")
        (update,) = [u for u in c.updates(sid) if u.get("sessionUpdate") == "session_info_update"]
        assert status_updates([update]) == [expected]
        check("SessionNotification", {"sessionId": sid, "update": update})

        # Fork: the child gets the config's servers too (and its parent's own).
        fork = await c.request("session/fork", {"sessionId": sid, "cwd": d.cwd, "mcpServers": []})
        assert [s["name"] for s in echoed(fork)] == ["tools", "shared"]

        # A crash, then the next prompt restarts the agent (resume): merged again.
        with pytest.raises(RpcFailure):
            await c.prompt(sid, "crash")
        await c.prompt(sid, "echo again")
        info = await c.request("_bridge/session/info", {"sessionId": sid})
        assert echoed(info) == [tools, own] and info["mcpServers"] == expected

        # Closed, then resumed without servers: the stored own ones plus the config's.
        await c.request("session/close", {"sessionId": sid})
        resumed = await c.request("session/resume", {"sessionId": sid, "cwd": d.cwd, "mcpServers": []})
        assert echoed(resumed) == [tools, own]
        # And loaded: the same again.
        await c.request("session/close", {"sessionId": sid})
        loaded = await c.request("session/load", {"sessionId": sid, "cwd": d.cwd, "mcpServers": []})
        assert echoed(loaded) == [tools, own]

        # The daemon's redactor knows the expanded values (an agent echoing one is masked).
        assert redact.redact(f"key {secret} end") == "key *** end"
        rec = await d.bridge.store.get_session(sid)
        assert rec is not None and rec.mcp_servers == [own]
        page = json.dumps(await all_events(c, sid))
        assert secret not in page
    # The catalog never held them (the event log keeps what the fake agent echoes back, as
    # it keeps anything an agent says; it is masked when read, as checked above).
    with sqlite3.connect(tmp_path / "state" / "sessions.db") as db:
        rows = db.execute("SELECT mcp_servers FROM sessions").fetchall()
    assert len(rows) == 2 and all(secret not in row[0] and "tools" not in row[0] for row in rows)
    text = trace.read_text()
    assert secret not in text and "echo again" in text


def test_expanded_values_are_secrets_to_the_redactor_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Claude Code and Codex get them in no ACP message the trace would mask: the redactor must
    # know them before any session starts.
    secret = "val-" + secrets.token_hex(12)
    monkeypatch.setenv("AB_TEST_MCP_VALUE", secret)
    cfg = load_config(str(mcp_config(tmp_path)))
    assert not redact.default().knows(secret)
    configured_mcp_servers(cfg)
    assert redact.default().knows(secret)
