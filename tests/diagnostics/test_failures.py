"""Agents failing in each known way: the client gets, within a bounded time, an error that
says what happened and what to do — through the whole daemon (store, manager, ACP server)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from bridge.errors import AGENT_START_FAILED, AUTH_REQUIRED
from bridge.process import versions
from tests.acp_client import RpcFailure
from tests.conftest import in_process
from tests.diagnostics.support import LEAKY_AGENT, broken_agents, fake_acp, write_config

pytestmark = pytest.mark.anyio

HANDSHAKE = 2.0
BOUND = 30.0  # every failure must be reported well within this (2 cores, tests in parallel)


async def start(tmp: Path, agent: str) -> RpcFailure:
    """`session/new` with `agent`; returns the error it must fail with."""
    config = write_config(tmp / "config.toml", broken_agents(tmp))
    async with in_process(tmp, config, handshake_timeout=HANDSHAKE, login_shell_env=False) as d:
        await d.client.initialize()
        with anyio.fail_after(BOUND), pytest.raises(RpcFailure) as info:
            await d.client.new_session(d.cwd, agent=agent)
        # The daemon is still serving, and nothing was left half-created.
        sessions = await d.client.request("session/list", {})
        assert sessions["sessions"] == []
    return info.value


def fields(err: RpcFailure) -> dict[str, Any]:
    assert isinstance(err.data, dict), err
    return err.data


async def test_missing_binary_says_where_it_looked(tmp_path: Path) -> None:
    err = await start(tmp_path, "missing")
    data = fields(err)
    assert err.code == AGENT_START_FAILED and data["kind"] == "not_found"
    assert "'agent-bridge-test-no-such-agent' was not found on PATH (looked in" in str(err.message)
    assert data["searched"] and all(isinstance(p, str) for p in data["searched"])
    assert "[agents.missing]" in data["fix"] and "agent-bridge doctor" in data["fix"]


async def test_not_executable(tmp_path: Path) -> None:
    err = await start(tmp_path, "noexec")
    assert err.code == AGENT_START_FAILED and fields(err)["kind"] == "not_executable"
    assert "chmod +x" in str(err.message)


async def test_exits_at_once_with_a_login_error(tmp_path: Path) -> None:
    err = await start(tmp_path, "nologin")
    data = fields(err)
    assert err.code == AUTH_REQUIRED and data["kind"] == "auth" and data["originalCode"] == AGENT_START_FAILED
    message = str(err.message)
    assert message.startswith("Agent 'nologin' is not logged in")
    assert "Fix: log in with" in message
    assert "run `fake login` first" in message  # what the agent itself said
    assert data["exitCode"] == 7 and "not logged in" in data["stderrTail"]


async def test_exits_at_once_shows_its_stderr(tmp_path: Path) -> None:
    err = await start(tmp_path, "crashy")
    data = fields(err)
    assert err.code == AGENT_START_FAILED and data["kind"] == "exited_at_start"
    assert "panic: index out of range" in str(err.message) and "run `/bin/sh -c " in str(err.message)


async def test_node_missing(tmp_path: Path) -> None:
    err = await start(tmp_path, "nonode")
    assert fields(err)["kind"] == "node_missing"
    assert "`node` was not found" in str(err.message) and "path_prepend" in str(err.message)


async def test_never_answers_initialize(tmp_path: Path) -> None:
    started = anyio.current_time()
    err = await start(tmp_path, "mute")
    assert anyio.current_time() - started < HANDSHAKE + 15
    assert fields(err)["kind"] == "handshake_timeout"
    assert "never answered the protocol handshake" in str(err.message)
    assert "--acp" in str(err.message)


async def test_a_cli_too_old_for_its_flags(tmp_path: Path) -> None:
    err = await start(tmp_path, "oldcli")
    assert fields(err)["kind"] == "wrong_version"
    assert "probably too old" in str(err.message) and "unknown option '--acp'" in str(err.message)


async def test_an_agent_speaking_another_protocol_version(tmp_path: Path) -> None:
    err = await start(tmp_path, "future")
    assert err.code == AGENT_START_FAILED and fields(err)["kind"] == "wrong_version"
    assert "it speaks ACP version 2; agent-bridge speaks version 1" in str(err.message)


async def test_agent_says_auth_required(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", {"gated": fake_acp(FAKE_ACP_START="authreq")})
    async with in_process(tmp_path, config, login_shell_env=False) as d:
        await d.client.initialize()
        with anyio.fail_after(BOUND), pytest.raises(RpcFailure) as info:
            await d.client.new_session(d.cwd, agent="gated")
    err = info.value
    assert err.code == AUTH_REQUIRED and fields(err)["kind"] == "auth"
    assert "Details: Authentication required" in str(err.message)


async def test_a_banner_on_stdout_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path / "config.toml", broken_agents(tmp_path))
    caplog.set_level(logging.WARNING)
    async with in_process(tmp_path, config, login_shell_env=False) as d:
        await d.client.initialize()
        with anyio.fail_after(BOUND):
            sid = await d.client.new_session(d.cwd, agent="chatty")
            result = await d.client.prompt(sid, "echo still fine")
        assert result["stopReason"] == "end_turn"
        assert d.client.text(sid) == "still fine"
    # Never forwarded: the client checks every line it gets is JSON-RPC valid against the schema.
    assert all("Welcome to fake agent" not in str(m) for m in d.client.received)
    assert any("non-JSON-RPC line" in r.getMessage() and "chatty" in r.getMessage() for r in caplog.records)


async def test_the_catalog_records_the_agents_path_and_version(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", {"fake": fake_acp()}, default_agent="fake")
    spec_env = {"PATH": "/usr/bin:/bin"}
    version = await versions.version_of(sys.executable, spec_env)
    assert version.version and version.version.startswith("Python 3")
    async with in_process(tmp_path, config, login_shell_env=False) as d:
        await d.client.initialize()
        with anyio.fail_after(BOUND):
            sid = await d.client.new_session(d.cwd)
        rec = await d.bridge.store.get_session(sid)
        assert rec is not None
        assert rec.agent_path == sys.executable
        assert rec.agent_version == version.version
        with anyio.fail_after(BOUND):
            events = await d.client.request("_bridge/session/events", {"sessionId": sid})
        started = [e["message"]["bridge"] for e in events["events"] if "bridge" in e["message"]]
        assert {
            "type": "agent_started",
            "path": sys.executable,
            "version": version.version,
        }.items() <= started[0].items()


async def test_an_agent_dying_with_a_key_in_its_stderr(tmp_path: Path) -> None:
    key = "leaky-key-0123456789abcdef"
    agent = {
        "protocol": "acp",
        "command": sys.executable,
        "args": ["-c", LEAKY_AGENT],
        "env": {"LEAKY_API_KEY": key},
    }
    config = write_config(tmp_path / "config.toml", {"leaky": agent}, default_agent="leaky")
    async with in_process(tmp_path, config, login_shell_env=False) as d:
        await d.client.initialize()
        with anyio.fail_after(BOUND):
            sid = await d.client.new_session(d.cwd)
            with pytest.raises(RpcFailure) as info:
                await d.client.prompt(sid, "go")
            events = await d.client.request("_bridge/session/events", {"sessionId": sid})
    err = info.value
    assert err.code == AUTH_REQUIRED and fields(err)["kind"] == "auth"
    assert "401 from upstream with key ***" in fields(err)["stderrTail"]
    everything = f"{err.message} {err.data} {events}"
    assert key not in everything and "***" in everything
