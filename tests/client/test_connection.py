"""The client's connection to a spawned daemon: start-up failures explained, a daemon that
dies mid-turn, errors from the `async with` body, and a clean stop that leaves no process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import psutil
import pytest

from bridge.client import BridgeClient, ConnectFailed, ConnectionLost, TurnFailed
from tests.client.support import client_config, spawned

pytestmark = pytest.mark.anyio


async def test_a_daemon_that_refuses_to_start_is_explained(tmp_path: Path) -> None:
    with anyio.fail_after(60), pytest.raises(ConnectionLost) as lost:
        async with BridgeClient.spawn(agent="nope", config=client_config(tmp_path), state_dir=tmp_path / "s"):
            pass
    assert lost.value.exit_code == 2 and "unknown agent 'nope'" in lost.value.stderr_tail
    assert "unknown agent 'nope'" in str(lost.value)


async def test_a_missing_daemon_command(tmp_path: Path) -> None:
    with pytest.raises(ConnectFailed, match="cannot start the daemon"):
        async with BridgeClient.spawn(command=[str(tmp_path / "no-such-agent-bridge")]):
            pass


async def test_daemon_killed_mid_turn(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            turn = session.stream("slow 500 0.05")
            async for _ in turn:
                assert client.daemon_pid is not None
                os.kill(client.daemon_pid, signal.SIGKILL)
                break
            with pytest.raises(TurnFailed) as failed:
                await turn.wait()
            assert isinstance(failed.value.error, ConnectionLost)
            assert failed.value.error.exit_code == -signal.SIGKILL
            assert client.closed
            with pytest.raises(ConnectionLost):
                await session.info()
            with pytest.raises(ConnectionLost):
                await client.create_session(cwd=tmp_path)


async def test_an_error_in_the_body_is_raised_as_itself(tmp_path: Path) -> None:
    with anyio.fail_after(60), pytest.raises(ValueError, match="mine"):
        async with spawned(tmp_path) as (client, _):
            await client.create_session(cwd=tmp_path)
            raise ValueError("mine")


async def test_leaving_the_block_stops_the_daemon_and_its_agents(tmp_path: Path) -> None:
    seen: list[bytes] = []
    async with spawned(tmp_path, log_level="info", stderr=seen.append) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            await session.send("echo hi")
            pid = client.daemon_pid
            assert pid is not None
            tree = [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
            assert len(tree) >= 2  # the daemon and the fake agent
    alive = [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert b"INFO" in b"".join(seen)  # the daemon's stderr reached the sink


async def test_subscriptions_end_when_the_daemon_goes(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            async with session.updates() as updates:
                await session.send("echo before")
                assert client.daemon_pid is not None
                os.kill(client.daemon_pid, signal.SIGKILL)
                received = [u async for u in updates]
            assert [u.text for u in received] == ["before"]  # type: ignore[attr-defined]
            assert client.closed
