"""Several clients on one daemon (in-process, over memory links): attach to a live session
and follow it, replayed history first (marked, with seq), then live updates."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bridge.client import AgentMessageChunk, BridgeClient, UserMessageChunk
from bridge.client.errors import RequestError
from tests.client.support import WireCheck, client_config, memory_link
from tests.conftest import in_process

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def two_clients(
    tmp: Path, a_opts: dict[str, Any] | None = None, b_opts: dict[str, Any] | None = None
) -> AsyncIterator[tuple[BridgeClient, BridgeClient]]:
    async with (
        in_process(tmp, client_config(tmp)) as daemon,
        BridgeClient.open(memory_link(daemon.bridge), **(a_opts or {})) as a,
        BridgeClient.open(memory_link(daemon.bridge), **(b_opts or {})) as b,
    ):
        yield a, b


async def test_attach_replays_history_then_follows_live(tmp_path: Path) -> None:
    wire_a, wire_b = WireCheck(), WireCheck()
    async with two_clients(tmp_path, {"on_message": wire_a}, {"on_message": wire_b}) as (a, b):
        with anyio.fail_after(60):
            owner = await a.create_session(cwd=tmp_path)
            await owner.send("echo before attach")
            seen: list[Any] = []
            follower = await b.attach(owner.id, on_event=seen.append)
            assert follower.live is True and follower.cursor is not None and follower.cursor > 0
            replayed = [u for u in seen if u.replayed]
            assert replayed and all(u.seq is not None for u in replayed)
            assert [u.text for u in replayed if isinstance(u, AgentMessageChunk)] == ["before attach"]
            assert [u.text for u in replayed if isinstance(u, UserMessageChunk)] == ["echo before attach"]
            assert follower.history == replayed

            async with follower.updates() as live:
                await owner.send("echo live one")
                update = await live.receive()
            assert isinstance(update, AgentMessageChunk) and update.text == "live one" and not update.replayed
            assert follower.agent == "fake" and follower.cwd == str(tmp_path)
    wire_a.assert_clean()
    wire_b.assert_clean()


async def test_follow_streams_history_and_live_updates_from_a_cursor(tmp_path: Path) -> None:
    async with two_clients(tmp_path) as (a, b):
        with anyio.fail_after(60):
            owner = await a.create_session(cwd=tmp_path)
            await owner.send("echo one")
            cursor = (await owner.events(limit=1000)).events[-1].seq
            await owner.send("echo two")
            async with b.follow(owner.id, after=cursor) as updates:
                first = await updates.receive()
                second = await updates.receive()
                turn = owner.start("echo three")
                third = await updates.receive()
                while not (isinstance(third, AgentMessageChunk) and third.text == "three"):
                    third = await updates.receive()
                await turn.wait()
    assert isinstance(first, UserMessageChunk) and first.text == "echo two" and first.replayed
    assert isinstance(second, AgentMessageChunk) and second.text == "two" and second.replayed
    assert not third.replayed


async def test_a_follower_can_take_over_and_prompt(tmp_path: Path) -> None:
    async with two_clients(tmp_path, b_opts={"permissions": "allow_once"}) as (a, b):
        with anyio.fail_after(60):
            owner = await a.create_session(cwd=tmp_path)
            follower = await b.attach(owner.id)
            # A follower may read, not drive: its prompt is refused while the owner is connected.
            with pytest.raises(RequestError) as refused:
                await follower.send("echo not yet")
            assert refused.value.code == -32020
            # An explicit takeover makes it the owner (and so the one asked for permissions).
            assert await follower.take_over() == "connected"
            result = await follower.send("permission")
    assert result.text == "permission: allow"
