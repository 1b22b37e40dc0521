"""MCP secrets given in `session/new` stay secret with the real Claude Code CLI behind the
daemon: on no process's command line, masked in the event log, its pages and the trace,
gone from the database after `session/delete` — while the MCP servers (real ones, built
with `mcp`) still receive the real values."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse

from .secret_mcp import digest
from .support import CLAUDE, ClaudeWorld
from .test_daemon import allow_once

pytestmark = pytest.mark.anyio

SECRET_MCP = Path(__file__).resolve().parent / "secret_mcp.py"


def cmdlines_with(*needles: str) -> list[tuple[int, str]]:
    """Every process on the machine whose command line holds one of `needles`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            if any(n.encode() in raw for n in needles):
                found.append((int(entry), raw.replace(b"\0", b" ").decode("utf-8", "replace")))
    return found


@contextlib.asynccontextmanager
async def http_mcp(digests: Path) -> AsyncIterator[str]:
    """The HTTP MCP server in a subprocess; yields its URL."""
    process = await anyio.open_process(
        [sys.executable, str(SECRET_MCP), "http", str(digests)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(30):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
    finally:
        process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


def config(world: ClaudeWorld, trace: Path) -> Path:
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in world.env().items())
    path = world.tmp / "config.toml"
    path.write_text(
        f"login_shell_env = false\ntrace = {json.dumps(str(trace))}\n"
        f'default_agent = "claude"\n[agents.claude]\nprotocol = "claude"\n'
        f"command = {json.dumps(str(CLAUDE))}\nenv = {{ {env} }}\n"
    )
    return path


def db_bytes(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state.glob("sessions.db*"))


async def all_events(client: Any, sid: str) -> list[Any]:
    events: list[Any] = []
    after = 0
    while True:
        page = await client.request("_bridge/session/events", {"sessionId": sid, "after": after, "limit": 1000})
        events += page["events"]
        if "next" not in page:
            return events
        after = page["next"]


async def test_mcp_secrets_stay_out_of_argv_logs_trace_and_a_deleted_session(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    env_secret = "envsecret-" + secrets.token_hex(16)
    header_secret = "hdrsecret-" + secrets.token_hex(16)
    state, trace, digests = world.tmp / "state", world.tmp / "trace.jsonl", world.tmp / "digests"
    fake.script(Reply(tools=[ToolUse("mcp__secret__env_digest", {})]), Reply(text="checked"))
    args = ["--config", str(config(world, trace)), "--state-dir", str(state)]
    with anyio.fail_after(120):
        async with http_mcp(digests) as url, daemon_process(args) as d:
            d.client.handler = allow_once
            await d.client.initialize()
            servers = [
                {"name": "secret", "command": sys.executable, "args": [str(SECRET_MCP), "stdio"],
                 "env": [{"name": "MCP_SECRET", "value": env_secret}]},
                {"type": "http", "name": "web", "url": url,
                 "headers": [{"name": "Authorization", "value": f"Bearer {header_secret}"}]},
            ]
            new = await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": servers})
            sid = new["sessionId"]
            status = {s["name"]: s["status"] for s in new["_meta"]["claudeCode"]["mcpServers"]}
            # `editor`: the bridge's own client tools (spec/client-tools.md), with a secret too.
            assert status == {"secret": "connected", "web": "connected", "editor": "connected"}

            # The CLI and both MCP servers run now: no command line holds either secret.
            assert cmdlines_with(env_secret, header_secret) == []
            (mcp_file,) = (state / "mcp").iterdir()
            assert stat.S_IMODE(mcp_file.stat().st_mode) == 0o600
            # What the CLI's command line names instead: the file.
            assert any("--mcp-config " + str(mcp_file) in c for _, c in cmdlines_with(str(mcp_file)))

            result = await d.client.prompt(sid, "check the secret")
            assert result["stopReason"] == "end_turn"
            assert cmdlines_with(env_secret, header_secret) == []
            # The servers got the real values.
            done = [u for u in d.client.updates(sid) if u.get("status") == "completed"]
            assert any(f"digest:{digest(env_secret)}" in json.dumps(u.get("content")) for u in done)
            assert digest(f"Bearer {header_secret}") in digests.read_text().split()

            events = json.dumps(await all_events(d.client, sid))
            assert env_secret not in events and header_secret not in events
            assert '"value":"***"' in events.replace(" ", "")
            assert env_secret not in trace.read_text() and header_secret not in trace.read_text()

            assert await d.client.request("session/delete", {"sessionId": sid}) == {}
            assert not mcp_file.exists()
            stored = db_bytes(state)
            assert env_secret.encode() not in stored and header_secret.encode() not in stored
            assert b"check the secret" not in stored
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    assert env_secret not in trace.read_text() and header_secret not in trace.read_text()
