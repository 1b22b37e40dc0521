"""The `_bridge/*` extension methods, over the in-process daemon with the fake agent."""

from __future__ import annotations

import pytest

from tests.acp_client import RpcFailure
from tests.conftest import InProcess, connect
from tests.store.test_durability import all_events, assert_gap_free

pytestmark = pytest.mark.anyio


async def test_events_page_in_order(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    await c.prompt(sid, "stream 120")
    page1 = await c.request("_bridge/session/events", {"sessionId": sid, "limit": 50})
    assert [e["seq"] for e in page1["events"]] == list(range(1, 51))
    page2 = await c.request("_bridge/session/events", {"sessionId": sid, "after": page1["next"], "limit": 50})
    assert page2["events"][0]["seq"] == 51
    everything = await all_events(c, sid)
    assert_gap_free(everything)
    assert everything[-1]["message"]["result"]["stopReason"] == "end_turn"
    assert all(e["at"].endswith("Z") for e in everything)
    with pytest.raises(RpcFailure) as err:
        await c.request("_bridge/session/events", {"sessionId": sid, "limit": 5000})
    assert err.value.code == -32602 and err.value.data["field"] == "limit"


async def test_attach_replays_then_follows_live(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    await c.prompt(sid, "echo before attach")
    async with connect(daemon.bridge) as c2:
        await c2.initialize()
        result = await c2.request("_bridge/session/attach", {"sessionId": sid})
        assert result["live"] is True and result["cursor"] > 0
        replayed = [n for n in c2.notifications if n["method"] == "session/update"]
        assert any("before attach" in str(n) for n in replayed)
        assert all(n["params"]["_meta"]["bridge"]["replay"] == "log" for n in replayed)
        await c.prompt(sid, "echo live one")
        live = await c2.wait_for(lambda m: "live one" in str(m))
        assert live["params"]["sessionId"] == sid and "_meta" not in live["params"]
        # The follower attached from a cursor gets only what came after it.
        async with connect(daemon.bridge) as c3:
            await c3.request("_bridge/session/attach", {"sessionId": sid, "after": result["cursor"]})
            texts = str([n for n in c3.notifications if n["method"] == "session/update"])
            assert "live one" in texts and "before attach" not in texts


async def test_metrics_info_and_update(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    await c.prompt(sid, "stream 10")
    await c.prompt(sid, "permission")
    m = await c.request("_bridge/session/metrics", {"sessionId": sid})
    assert m["turns"] == 2
    assert m["toolCalls"] == 1 and m["toolUsage"] == {"edit": 1}
    assert m["messages"] >= 13
    assert m["process"]["pid"] > 0 and m["process"]["rssBytes"] > 1_000_000

    assert await c.request("_bridge/session/update", {"sessionId": sid, "title": "Fix the tests"}) == {}
    await c.wait_for(lambda n: n["params"]["update"].get("sessionUpdate") == "session_info_update")
    await c.request("_bridge/session/update", {"sessionId": sid, "archived": True})
    info = await c.request("_bridge/session/info", {"sessionId": sid})
    assert info["title"] == "Fix the tests" and info["archived"] is True
    listed = await c.request("session/list", {})
    assert listed["sessions"][0]["title"] == "Fix the tests"

    # The shell: tests/acp/test_shell_and_files.py.


async def test_agents_extension_lists_the_table(daemon: InProcess) -> None:
    result = await daemon.client.request("_bridge/agents", {})
    names = {a["name"]: a for a in result["agents"]}
    assert {
        "claude",
        "codex",
        "gemini",
        "opencode",
        "qwen",
        "goose",
        "claude-acp",
        "codex-acp",
        "fake",
    } <= set(names)
    assert names["fake"]["installed"] is True and names["fake"]["protocol"] == "acp"


async def test_fork_gets_a_new_session_with_the_parent(daemon: InProcess) -> None:
    c = daemon.client
    parent = await c.new_session(daemon.cwd)
    await c.prompt(parent, "echo in parent")
    fork = await c.request("session/fork", {"sessionId": parent, "cwd": daemon.cwd, "mcpServers": []})
    child = fork["sessionId"]
    assert child != parent
    info = await c.request("_bridge/session/info", {"sessionId": child})
    assert info["parentId"] == parent
    assert (await c.prompt(child, "echo in child"))["stopReason"] == "end_turn"
    parent_info = await c.request("_bridge/session/info", {"sessionId": parent})
    assert parent_info["agentSessionId"] != info["agentSessionId"]


async def test_vendor_extension_requests_reach_the_agent(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    result = await c.request("_fake/echo", {"sessionId": sid, "x": 1})
    assert result["echo"]["x"] == 1
    with pytest.raises(RpcFailure) as err:
        await c.request("_fake/nothing", {"sessionId": sid})
    assert err.value.code == -32601
