"""Session lifecycle and configuration through the client: create with agent / cwd / MCP
servers / model / mode / thought level / title, config options, list, resume, load, fork,
close, delete, lazy handles across daemon restarts, and the errors of each."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from bridge.client import (
    AgentMessageChunk,
    InvalidParams,
    InvalidValue,
    McpServer,
    NotSupported,
    SessionNotFound,
)
from tests.client.support import spawned

pytestmark = pytest.mark.anyio


async def test_create_with_everything_at_creation_time(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            session = await client.create_session(
                agent="fake",
                cwd=tmp_path,
                mcp_servers=[
                    McpServer("files", command="mcp-files", args=["--root", "/"], env={"K": "v"}),
                    McpServer("web", url="http://127.0.0.1:9/mcp", headers={"X-Key": "k"}),
                    {"name": "raw", "command": "raw-mcp", "args": [], "env": []},
                ],
                model="smart",
                mode="plan",
                thought_level="high",
                title="Build the API",
                additional_directories=[str(extra)],
            )
            modes = await session.get_modes()
            options = {o.id: o.current_value for o in await session.get_config_options()}
            info = await session.info()
    assert session.id.startswith("sess_") and session.agent == "fake"
    assert session.agent_session_id is not None and session.agent_session_id.startswith("agent-")
    assert session.cwd == str(tmp_path) and info.cwd == str(tmp_path)
    assert options == {"mode": "plan", "model": "smart", "effort": "high"}
    assert modes is not None and [m.id for m in modes.available_modes] == ["default", "plan"]
    assert info.title == "Build the API" and session.title == "Build the API"
    # The MCP servers reached the agent in ACP form (the fake agent echoes them in _meta).
    mcp = session.setup["_meta"]["fake"]["mcpServers"]
    assert mcp[0] == {
        "name": "files",
        "command": "mcp-files",
        "args": ["--root", "/"],
        "env": [{"name": "K", "value": "v"}],
    }
    assert mcp[1] == {
        "type": "http",
        "name": "web",
        "url": "http://127.0.0.1:9/mcp",
        "headers": [{"name": "X-Key", "value": "k"}],
    }
    assert mcp[2]["name"] == "raw"
    new = next(m for m in wire.sent if m.get("method") == "session/new")["params"]
    assert new["_meta"] == {"bridge": {"agent": "fake"}} and new["additionalDirectories"] == [str(extra)]


async def test_set_model_mode_thought_level_and_any_option(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            await session.set_model("Smart")  # a choice's name works too
            await session.set_mode("plan")
            await session.set_thought_level("high")
            assert session.config_option("model").current_value == "smart"  # type: ignore[union-attr]
            assert session.config_option("thought_level").current_value == "high"  # type: ignore[union-attr]
            assert session.config_option("mode").current_value == "plan"  # type: ignore[union-attr]
            options = await session.set_config_option("model", "fast")
            assert next(o for o in options if o.id == "model").current_value == "fast"
            await session.configure(model="smart", mode="default", thought_level="low")
            assert [o.current_value for o in session.config_options] == ["default", "smart", "low"]
            with pytest.raises(InvalidValue, match="choices: fast, smart"):
                await session.set_model("gigantic")
            # An option the agent does not have: the daemon passes the agent's error on.
            with pytest.raises(InvalidParams):
                await session.set_config_option("no-such-option", "x")
    sets = [m["params"] for m in wire.sent if m.get("method") == "session/set_config_option"]
    assert sets[0] == {"sessionId": session.id, "configId": "model", "value": "smart"}


async def test_a_category_the_agent_lacks_is_not_supported(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            session.config_options = [o for o in session.config_options if o.category != "thought_level"]
            with pytest.raises(NotSupported, match="no thought_level option"):
                await session.set_thought_level("high")


async def test_mode_falls_back_to_set_mode_for_agents_with_only_modes(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            session.config_options = []  # as an agent that only reports `modes`
            await session.set_mode("Plan")
            assert session.modes is not None and session.modes.current_mode_id == "plan"
            with pytest.raises(InvalidValue, match="modes: default, plan"):
                await session.set_mode("yolo")
    assert any(m.get("method") == "session/set_mode" for m in wire.sent)


async def test_failed_setting_at_creation_closes_the_new_session(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            with pytest.raises(InvalidValue):
                await client.create_session(cwd=tmp_path, model="nonexistent")
            (summary,) = await client.list_sessions()
    assert summary.status == "closed"
    assert "session/close" in wire.methods_sent()


async def test_list_resume_load_across_daemon_restarts(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            first = await client.create_session(cwd=tmp_path, title="first")
            await first.send("echo remember me")
            second = await client.create_session(cwd=tmp_path)
            listed = await client.list_sessions()
            assert [s.id for s in listed] == [second.id, first.id]
            assert all(s.running and s.agent == "fake" for s in listed)
            assert [s.id for s in await client.list_sessions(limit=1)] == [second.id]
            assert await client.list_sessions(cwd=str(tmp_path / "elsewhere")) == []
    # A new daemon on the same state directory: nothing is live, everything is listed.
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            listed = await client.list_sessions()
            assert [(s.id, s.status, s.running) for s in listed] == [
                (second.id, "closed", False),
                (first.id, "closed", False),
            ]
            resumed = await client.resume_session(first.id)
            assert resumed.history == [] and resumed.title == "first"
            assert (await resumed.send("Continue.")).text == "you said: Continue."
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            loaded = await client.load_session(first.id)
            texts = [u.text for u in loaded.history if isinstance(u, AgentMessageChunk)]
            assert "remember me" in texts and "you said: Continue." in texts


async def test_lazy_handle_resumes_on_first_prompt(tmp_path: Path) -> None:
    """`client.session(id)`: a handle without a round trip; the first send resumes it."""
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            created = await client.create_session(cwd=tmp_path)
            sid = created.id
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            handle = client.session(sid)
            assert client.session(sid) is handle
            assert (await handle.send("echo back again")).text == "back again"
            assert [m for m in wire.methods_sent() if m.startswith("session/")] == [
                "session/resume",
                "session/prompt",
            ]
            with pytest.raises(SessionNotFound):
                await client.session("sess_nope").send("hi")


async def test_fork_close_end_and_delete(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            parent = await client.create_session(cwd=tmp_path)
            await parent.send("echo before the fork")
            child = await parent.fork(mcp_servers=[McpServer("m", command="mcp-m")])
            fork = next(m for m in wire.sent if m.get("method") == "session/fork")["params"]
            assert fork["mcpServers"] == [{"name": "m", "command": "mcp-m", "args": [], "env": []}]
            assert child.id != parent.id and child.cwd == parent.cwd
            assert (await child.info()).parent_id == parent.id
            assert (await child.send("echo in the fork")).text == "in the fork"

            await parent.close()
            assert (await parent.info()).status == "closed"
            # A closed session resumes on the next prompt.
            assert (await parent.send("echo reopened")).text == "reopened"
            await parent.end()
            assert (await parent.info()).status == "closed"

            await child.end(delete=True)
            assert child.id not in [s.id for s in await client.list_sessions()]
            with pytest.raises(SessionNotFound):
                await child.info()
            await client.delete_session(parent.id)
            assert await client.list_sessions() == []
            # Deleting is idempotent, also for an id that never existed (as ACP asks).
            await client.delete_session("sess_nope")


async def test_agents_and_daemon_info(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            agents = {a.name: a for a in await client.agents()}
    assert agents["fake"].installed and agents["fake"].protocol == "acp"
    assert "claude" in agents and "codex" in agents
    assert client.daemon["agentInfo"]["name"] == "agent-bridge"
    assert client.daemon["agentCapabilities"]["loadSession"] is True
