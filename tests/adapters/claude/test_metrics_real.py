"""`_bridge/session/metrics` with the real Claude Code CLI against the fake Anthropic server:
the tokens are what the server reported, counted once per turn, and they (and the cost, in
USD) carry on across a daemon restart and `session/load` — where Claude Code's own cost
counter resumes with the session's earlier turns, which must not count twice."""

from __future__ import annotations

import anyio
import pytest

from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply, Reported
from tests.real_agents import session_metrics, third_turn_after_restart

from .support import ClaudeWorld
from .test_daemon import config

pytestmark = pytest.mark.anyio

CACHED = {"cache_read_input_tokens": 11, "cache_creation_input_tokens": 5}


def expected(reported: list[Reported]) -> dict[str, int]:
    """The bridge's token counters for these Anthropic responses."""
    n = {
        k: sum(int(r.usage.get(k) or 0) for r in reported)
        for k in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    }
    return {
        "input": n["input_tokens"],
        "output": n["output_tokens"],
        "thought": 0,
        "cachedRead": n["cache_read_input_tokens"],
        "cachedWrite": n["cache_creation_input_tokens"],
        "total": sum(n.values()),
    }


async def test_tokens_are_the_servers_and_everything_survives_a_restart(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    fake.script(
        Reply(text="one", usage=CACHED), Reply(text="two", usage=CACHED), Reply(text="three", usage=CACHED)
    )
    args = ["--config", str(config(world)), "--state-dir", str(world.tmp / "state")]
    ws = str(world.ws)
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            await d.client.initialize()
            sid = (await d.client.request("session/new", {"cwd": ws, "mcpServers": []}))["sessionId"]
            await d.client.prompt(sid, "first")
            first = await session_metrics(d.client, sid)
            await d.client.prompt(sid, "second")
            second = await session_metrics(d.client, sid)
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
        scripted = [r for r in fake.reported if r.scripted]
        assert len(scripted) == 2
        assert second["turns"] == 2 and second["tokens"] == expected(scripted)
        assert second["cost"]["currency"] == "USD" and second["cost"]["amount"] > first["cost"]["amount"] > 0

        third = await third_turn_after_restart(args, sid, ws, second)
    scripted = [r for r in fake.reported if r.scripted]
    assert len(scripted) == 3
    assert third["turns"] == 3 and third["tokens"] == expected(scripted)
    # Each turn cost the same (same usage, same model). Claude Code's cost after `--resume`
    # includes the earlier turns: the session cost three turns, not five (no double count).
    assert second["cost"]["amount"] == pytest.approx(2 * first["cost"]["amount"], rel=1e-6)
    assert third["cost"]["amount"] == pytest.approx(3 * first["cost"]["amount"], rel=1e-6)
    assert third["costUsd"] == third["cost"]["amount"] and third["costs"] == [third["cost"]]
