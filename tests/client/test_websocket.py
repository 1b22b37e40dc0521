"""The client over WebSocket against the real daemon (`agent-bridge serve --listen
ws://127.0.0.1:0`, a subprocess): bearer token (given, from a file, from the state
directory), refusals, several clients on one daemon (attach, take over after a drop), and
the CLI's `--connect`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import pytest

from bridge.client import AgentMessageChunk, BridgeClient, ConnectFailed
from tests.client.support import WireCheck, client_config
from tests.conftest import bridge_cmd, subprocess_env
from tests.e2e.ws_support import ws_daemon

pytestmark = pytest.mark.anyio


async def test_session_over_websocket_with_the_token_from_the_state_dir(tmp_path: Path) -> None:
    wire = WireCheck()
    async with ws_daemon(tmp_path, config=client_config(tmp_path)) as d:
        with anyio.fail_after(60):
            async with BridgeClient.connect(
                d.url, state_dir=str(d.state_dir), permissions="allow_once", on_message=wire
            ) as client:
                session = await client.create_session(cwd=tmp_path, model="smart")
                streamed = [u async for u in session.stream("stream 40")]
                result = await session.send("permission")
                listed = await client.list_sessions()
    assert len(streamed) == 40 and all(isinstance(u, AgentMessageChunk) for u in streamed)
    assert result.text == "permission: allow"
    assert [s.id for s in listed] == [session.id]
    assert "session/set_config_option" in wire.methods_sent()
    wire.assert_clean()


async def test_token_given_or_from_a_file_and_refusals(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path, config=client_config(tmp_path)) as d:
        with anyio.fail_after(60):
            async with BridgeClient.connect(d.url, token=d.token) as client:
                assert client.daemon["agentInfo"]["name"] == "agent-bridge"
            async with BridgeClient.connect(d.url, token_file=d.state_dir / "ws-token") as client:
                assert [a.name for a in await client.agents() if a.name == "fake"] == ["fake"]
            with pytest.raises(ConnectFailed, match="HTTP 401") as refused:
                async with BridgeClient.connect(d.url, token="wrong-" + d.token):
                    pass
            assert refused.value.status == 401
            with pytest.raises(ConnectFailed, match="HTTP 403"):
                async with BridgeClient.connect(d.url, token=d.token, origin="https://evil.example"):
                    pass
            with pytest.raises(ConnectFailed, match="no WebSocket token"):
                async with BridgeClient.connect(d.url, token_file=tmp_path / "missing-token"):
                    pass
        port = d.port
    with pytest.raises(ConnectFailed, match="cannot connect"):
        async with BridgeClient.connect(f"ws://127.0.0.1:{port}/acp", token="x"):
            pass


async def test_attach_from_a_second_client_and_take_over_after_a_drop(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path, config=client_config(tmp_path)) as d:
        with anyio.fail_after(90):
            async with BridgeClient.connect(d.url, token=d.token) as a:
                session = await a.create_session(cwd=tmp_path)
                await session.send("echo from a")
                async with (
                    BridgeClient.connect(d.url, token=d.token) as b,
                    b.follow(session.id) as updates,
                ):
                    replayed = await updates.receive()
                    while not isinstance(replayed, AgentMessageChunk):
                        replayed = await updates.receive()
                    assert replayed.replayed and replayed.text == "from a"
                    await session.send("echo live from a")
                    live = await updates.receive()
                    assert isinstance(live, AgentMessageChunk) and live.text == "live from a"
                    assert not live.replayed
            # `a` is gone; the session stays live in the daemon for the grace period and a
            # new client takes it over.
            async with BridgeClient.connect(d.url, token=d.token) as c:
                assert (await c.get_info(session.id)).status == "idle"
                again = c.session(session.id)
                assert (await again.send("echo from c")).text == "from c"


async def cli(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*bridge_cmd(), "--state-dir", str(tmp / "state"), *args]
    with anyio.fail_after(120):
        done = await anyio.run_process(cmd, check=False, env=subprocess_env(**(env or {})))
    return subprocess.CompletedProcess(cmd, done.returncode, done.stdout.decode(), done.stderr.decode())


async def test_cli_connect(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path, config=client_config(tmp_path)) as d:
        first = await cli(
            tmp_path, "prompt", "--connect", d.url, "--json", "--cwd", str(tmp_path), "echo over ws"
        )
        assert first.returncode == 0, first.stderr
        sid = json.loads(first.stdout.splitlines()[0])["sessionId"]
        token_file = tmp_path / "token"
        token_file.write_text(d.token)
        again = await cli(
            tmp_path,
            "prompt",
            "--connect",
            d.url,
            "--token-file",
            str(token_file),
            "--session",
            sid,
            "echo again",
        )
        assert (again.returncode, again.stdout) == (0, "again\n"), again.stderr
        listed = await cli(tmp_path, "sessions", "--connect", d.url, env={"AGENT_BRIDGE_TOKEN": d.token})
        assert sid in listed.stdout
        history = await cli(tmp_path, "events", "--connect", d.url, sid)
        assert (
            'session/prompt "echo over ws"' in history.stdout
            and 'session/prompt "echo again"' in history.stdout
        )
        refused = await cli(tmp_path, "sessions", "--connect", d.url, env={"AGENT_BRIDGE_TOKEN": "nope"})
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr
