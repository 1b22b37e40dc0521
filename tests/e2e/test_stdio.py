"""`python -m bridge` as a real subprocess speaking ACP over its stdio."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anyio
import psutil
import pytest

from tests.conftest import fake_agent_config
from tests.daemon_proc import daemon_process

pytestmark = pytest.mark.anyio


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--config", str(fake_agent_config(tmp_path)), "--state-dir", str(tmp_path / "state"), *extra]


async def test_full_session_over_stdio_and_clean_exit(tmp_path: Path) -> None:
    async with daemon_process(_args(tmp_path)) as d:
        await d.client.initialize()
        sid = await d.client.new_session(str(tmp_path))
        result = await d.client.prompt(sid, "stream 50")
        assert result["stopReason"] == "end_turn"
        assert d.client.text(sid).count("chunk") == 50
        agent_pids = [p.pid for p in psutil.Process(d.process.pid).children(recursive=True)]
        assert agent_pids
    # stdin EOF: exit 0 and no agent left behind.
    assert d.process.returncode == 0, d.stderr.decode()
    assert not [p for p in agent_pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


async def test_stdout_carries_only_protocol_messages(tmp_path: Path) -> None:
    async with daemon_process(_args(tmp_path, "--log-level", "debug"), env={}) as d:
        await d.client.initialize()
        sid = await d.client.new_session(str(tmp_path))
        await d.client.prompt(sid, "echo hi")
        # The client parses every stdout line as JSON-RPC and validates it against the schema.
        assert all(m.get("jsonrpc") == "2.0" for m in d.client.received)
    assert b"DEBUG" in d.stderr  # logs went to stderr


async def test_malformed_input_gets_precise_errors_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    async with daemon_process(_args(tmp_path)) as d:
        c = d.client
        await c.send_raw(b"{not json")
        await c.send_raw(b"[1,2,3]")
        await c.send_raw(b'{"jsonrpc":"2.0","id":77,"method":"no/such/method","params":{}}')
        await c.send_raw(b'{"jsonrpc":"2.0","method":"no/such/notification","params":{}}')
        await c.send_raw(b'{"jsonrpc":"2.0","id":78,"method":"session/new","params":{"cwd":"relative"}}')
        await c.send_raw(b'{"jsonrpc":"2.0","id":79,"method":"session/new","params":{"mcpServers":[]}}')
        await c.send_raw(b'{"jsonrpc":"1.0","id":80,"method":"initialize"}')
        with anyio.fail_after(10):
            errors = await c.wait_received(lambda m: "error" in m, 6)
        by_id = {m["id"]: m["error"] for m in errors}
        assert by_id[None]["code"] in (-32700, -32600)
        codes_for_null = sorted(m["error"]["code"] for m in errors if m["id"] is None)
        assert codes_for_null == [-32700, -32600]
        assert by_id[77]["code"] == -32601
        assert by_id[78]["code"] == -32602 and by_id[78]["data"]["field"] == "cwd"
        assert by_id[79]["code"] == -32602 and by_id[79]["data"]["field"] == "cwd"
        assert by_id[80]["code"] == -32600
        assert await c.initialize()


async def test_oversized_line_is_refused_with_its_id_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    async with daemon_process(_args(tmp_path)) as d:
        c = d.client
        big = json.dumps(
            {"jsonrpc": "2.0", "id": 5, "method": "initialize", "params": {"x": "a" * (17 << 20)}}
        )
        await c.send_raw(big.encode())
        resp = await c.wait_response(5)
        assert resp["error"]["code"] == -32600
        assert "size limit" in resp["error"]["message"]
        assert (await c.initialize())["protocolVersion"] == 1


async def test_sigterm_exits_zero_and_stops_agents(tmp_path: Path) -> None:
    async with daemon_process(_args(tmp_path)) as d:
        await d.client.initialize()
        await d.client.new_session(str(tmp_path))
        children = psutil.Process(d.process.pid).children(recursive=True)
        assert children
        d.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(15):
            await d.process.wait()
        assert d.process.returncode == 0
        assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


async def test_unknown_agent_and_missing_binary_are_clear_errors(tmp_path: Path) -> None:
    cfg = fake_agent_config(tmp_path)
    cfg.write_text(cfg.read_text() + '[agents.ghost]\nprotocol = "acp"\ncommand = "no-such-agent-binary"\n')
    async with daemon_process(["--config", str(cfg), "--state-dir", str(tmp_path / "s")]) as d:
        c = d.client
        await c.initialize()
        r = await c.request_raw(
            "session/new", {"cwd": str(tmp_path), "mcpServers": [], "_meta": {"bridge": {"agent": "nope"}}}
        )
        assert r["error"]["code"] == -32602 and "fake" in r["error"]["message"]
        r = await c.request_raw(
            "session/new", {"cwd": str(tmp_path), "mcpServers": [], "_meta": {"bridge": {"agent": "ghost"}}}
        )
        assert "no-such-agent-binary" in r["error"]["message"] and "PATH" in r["error"]["message"]
        assert r["error"]["data"]["agent"] == "ghost"


async def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("default_agent = [\n")
    async with daemon_process(["--config", str(bad)]) as d:
        with anyio.fail_after(10):
            await d.process.wait()
    assert d.process.returncode == 2
    assert d.stderr.decode().strip().count("\n") == 0 and "not valid TOML" in d.stderr.decode()
