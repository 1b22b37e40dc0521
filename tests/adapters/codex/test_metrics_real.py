"""`_bridge/session/metrics` with the real Codex CLI (`codex app-server`) against the fake
Responses server: the tokens are what the server reported, reasoning included, counted once
per turn — also for the first turn after a daemon restart, where Codex's thread totals
already hold the earlier turns."""

from __future__ import annotations

import anyio
import pytest

from tests.adapters.codex.support import Codex
from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply, Reported
from tests.real_agents import session_metrics, third_turn_after_restart

from .test_daemon import config

pytestmark = pytest.mark.anyio

DETAILED = {
    "input_tokens_details": {"cached_tokens": 12},
    "output_tokens": 9,
    "output_tokens_details": {"reasoning_tokens": 3},
    "total_tokens": 51,
}


def expected(reported: list[Reported]) -> dict[str, int]:
    """The bridge's token counters for these Responses answers."""

    def total(key: str, detail: str | None = None) -> int:
        if detail is None:
            return sum(int(r.usage.get(key) or 0) for r in reported)
        return sum(int((r.usage.get(key) or {}).get(detail) or 0) for r in reported)

    return {
        "input": total("input_tokens"),
        "output": total("output_tokens"),
        "thought": total("output_tokens_details", "reasoning_tokens"),
        "cachedRead": total("input_tokens_details", "cached_tokens"),
        "cachedWrite": 0,
        "total": total("total_tokens"),
    }


async def test_tokens_are_the_servers_once_per_turn_across_a_restart(
    codex: Codex, fake: FakeModelServer
) -> None:
    fake.script(
        Reply(text="one", usage=DETAILED),
        Reply(text="two", usage=DETAILED),
        Reply(text="three", usage=DETAILED),
    )
    args = ["--config", str(config(codex)), "--state-dir", str(codex.home / "state")]
    ws = str(codex.workspace)
    with anyio.fail_after(120):
        async with daemon_process(args) as d:
            await d.client.initialize()
            sid = (await d.client.request("session/new", {"cwd": ws, "mcpServers": []}))["sessionId"]
            await d.client.prompt(sid, "first")
            await d.client.prompt(sid, "second")
            second = await session_metrics(d.client, sid)
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
        scripted = [r for r in fake.reported if r.scripted]
        assert len(scripted) == 2
        assert second["turns"] == 2 and second["tokens"] == expected(scripted)
        assert second["tokens"]["thought"] == 6

        third = await third_turn_after_restart(args, sid, ws, second)
    scripted = [r for r in fake.reported if r.scripted]
    assert len(scripted) == 3
    assert third["turns"] == 3 and third["tokens"] == expected(scripted)
