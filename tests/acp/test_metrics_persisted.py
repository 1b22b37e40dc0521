"""`_bridge/session/metrics` over a session's whole life, with the fake ACP agent: kept in
the catalog across close, reopen (with the agent's own replay) and a daemon restart; tokens
once per turn, thoughts included; cost with its currency, summed over the agent's runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.acp_client import AcpClient
from tests.acp_schema import check_bridge_result
from tests.conftest import in_process

pytestmark = pytest.mark.anyio


async def metrics(c: AcpClient, sid: str) -> dict[str, Any]:
    m: dict[str, Any] = await c.request("_bridge/session/metrics", {"sessionId": sid})
    check_bridge_result("_bridge/session/metrics", m)
    return m


def tokens(turns: int) -> dict[str, int]:
    # What the fake agent reports for each `costly` turn.
    return {
        "input": 20 * turns,
        "output": 10 * turns,
        "thought": 4 * turns,
        "cachedRead": 5 * turns,
        "cachedWrite": 0,
        "total": 30 * turns,
    }


async def test_metrics_outlive_close_reopen_and_the_daemon(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        await c.prompt(sid, "costly")
        await c.prompt(sid, "costly")
        live = await metrics(c, sid)
        assert live["turns"] == 2 and live["tokens"] == tokens(2)
        assert live["cost"] == {"amount": 1.0, "currency": "EUR"} and "costUsd" not in live
        assert live["process"]["pid"] > 0
        messages = live["messages"]
        await c.request("session/close", {"sessionId": sid})
        closed = await metrics(c, sid)
        assert "process" not in closed
        assert {k: v for k, v in live.items() if k != "process"} == closed

        # The agent's session/load replays its history, old usage_updates included: none of it
        # counts again. Its new process counts its cost from zero: the bridge adds it on.
        await c.request("session/load", {"sessionId": sid, "cwd": d.cwd, "mcpServers": []})
        assert await metrics(c, sid) == {**closed, "process": (await metrics(c, sid))["process"]}
        await c.prompt(sid, "costly")
        after = await metrics(c, sid)
        assert after["turns"] == 3 and after["tokens"] == tokens(3)
        assert after["cost"] == {"amount": 1.5, "currency": "EUR"}
        assert after["costs"] == [{"amount": 1.5, "currency": "EUR"}]
        assert after["messages"] == messages + 2  # the chunk and the usage_update of one turn
    # Another daemon on the same state dir: the numbers the first one saved, not zeros.
    async with in_process(tmp_path) as d:
        await d.client.initialize()
        again = await metrics(d.client, sid)
        assert {k: v for k, v in after.items() if k != "process"} == again


async def test_a_turn_without_usage_adds_no_tokens_and_no_cost(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(d.cwd)
        await c.prompt(sid, "echo hi")
        m = await metrics(c, sid)
        assert m["turns"] == 1 and m["tokens"] == tokens(0) and "cost" not in m and m["messages"] >= 1
