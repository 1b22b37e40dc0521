"""The daemon over in-memory streams against the fake ACP agent: the session lifecycle."""

from __future__ import annotations

import anyio
import pytest

from tests.acp_client import RpcFailure
from tests.conftest import InProcess

pytestmark = pytest.mark.anyio


async def test_initialize_is_honest(daemon: InProcess) -> None:
    result = await daemon.client.initialize()
    assert result["protocolVersion"] == 1
    caps = result["agentCapabilities"]
    assert caps["loadSession"] is True
    assert set(caps["sessionCapabilities"]) >= {"list", "resume", "close", "delete"}
    assert result["agentInfo"]["name"] == "agent-bridge"


async def test_prompt_streams_updates_in_order_before_the_answer(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    assert sid.startswith("sess_")
    result = await c.prompt(sid, "stream 200")
    assert result["stopReason"] == "end_turn"
    texts = [u["content"]["text"] for u in c.updates(sid) if u["sessionUpdate"] == "agent_message_chunk"]
    assert texts == [f"chunk {i} " for i in range(200)]
    # The answer came after every update of the turn.
    answer_at = next(i for i, m in enumerate(c.received) if m.get("result", {}).get("stopReason"))
    last_update = max(i for i, m in enumerate(c.received) if m.get("method") == "session/update")
    assert last_update < answer_at


async def test_session_ids_are_the_bridges_and_cwd_is_kept(daemon: InProcess) -> None:
    c = daemon.client
    result = await c.request("session/new", {"cwd": daemon.cwd, "mcpServers": []})
    sid = result["sessionId"]
    assert result["_meta"]["fake"]["cwd"] == daemon.cwd
    info = await c.request("_bridge/session/info", {"sessionId": sid})
    assert info["cwd"] == daemon.cwd
    assert info["agent"] == "fake"
    assert info["agentSessionId"].startswith("agent-")
    assert info["agentSessionId"] != sid
    assert info["status"] == "idle"


async def test_unknown_session_is_32002(daemon: InProcess) -> None:
    for method, extra in (
        ("session/prompt", {"prompt": []}),
        ("session/set_mode", {"modeId": "plan"}),
        ("_bridge/session/info", {}),
        ("session/close", {}),
        ("session/load", {"cwd": "/", "mcpServers": []}),
    ):
        with pytest.raises(RpcFailure) as err:
            await daemon.client.request(method, {"sessionId": "sess_nope", **extra})
        assert err.value.code == -32002, method


async def test_permission_forwarded_with_id_remapping(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    seen: list[dict[str, object]] = []

    async def handler(method: str, params: dict[str, object]) -> object:
        seen.append({"method": method, **params})
        return {"outcome": {"outcome": "selected", "optionId": "reject"}}

    c.handler = handler
    await c.prompt(sid, "permission")
    assert seen and seen[0]["method"] == "session/request_permission"
    assert seen[0]["sessionId"] == sid
    assert "permission: reject" in c.text(sid)


async def test_fs_read_forwarded(daemon: InProcess, tmp_path: anyio.Path) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    path = f"{daemon.cwd}/hello.txt"
    with open(path, "w") as f:
        f.write("hello from the editor")
    await c.prompt(sid, f"read {path}")
    assert "content: hello from the editor" in c.text(sid)


async def test_cancel_ends_with_cancelled(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    async with anyio.create_task_group() as tg:
        results: list[object] = []

        async def run() -> None:
            results.append(await c.prompt(sid, "slow 100 0.05"))

        tg.start_soon(run)
        await c.wait_for(lambda m: m["method"] == "session/update" and "slow 2" in str(m))
        await c.notify("session/cancel", {"sessionId": sid})
    assert results == [{"stopReason": "cancelled", "_meta": {"fake": True}}]


async def test_set_mode_and_config_option(daemon: InProcess) -> None:
    c = daemon.client
    result = await c.request("session/new", {"cwd": daemon.cwd, "mcpServers": []})
    sid = result["sessionId"]
    assert {o["category"] for o in result["configOptions"]} == {"mode", "model"}
    await c.request("session/set_mode", {"sessionId": sid, "modeId": "plan"})
    await c.wait_for(lambda m: m["params"]["update"].get("currentModeId") == "plan")
    opts = await c.request(
        "session/set_config_option", {"sessionId": sid, "configId": "model", "value": "smart"}
    )
    model = next(o for o in opts["configOptions"] if o["id"] == "model")
    assert model["currentValue"] == "smart"


async def test_unknown_update_kinds_and_meta_pass_through(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    await c.prompt(sid, "unknown")
    raw = [n for n in c.notifications if n["method"] == "session/update" and n["params"]["sessionId"] == sid]
    unknown = next(n for n in raw if n["params"]["update"]["sessionUpdate"] == "future_kind_x")
    assert unknown["params"]["update"]["payload"] == {"a": [1, 2]}
    assert unknown["params"]["_meta"] == {"vendor.example/x": 1}
    after = next(n for n in raw if n["params"]["update"].get("_meta"))
    assert after["params"]["update"]["_meta"] == {"vendor.example/trace": "abc"}


async def test_busy_session_refuses_second_prompt(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    async with anyio.create_task_group() as tg:
        tg.start_soon(c.prompt, sid, "slow 20 0.05")
        await c.wait_for(lambda m: "slow 1" in str(m))
        with pytest.raises(RpcFailure) as err:
            await c.prompt(sid, "echo second")
        assert err.value.code == -32012
        assert "already running" in str(err.value.message)
        await c.notify("session/cancel", {"sessionId": sid})


async def test_content_the_agent_cannot_take_is_refused_clearly(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    image = {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"}
    # The fake agent takes images and embedded context, not audio.
    result = await c.request(
        "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "echo x"}, image]}
    )
    assert result["stopReason"] == "end_turn"
    audio = {"type": "audio", "data": "aGVsbG8=", "mimeType": "audio/wav"}
    with pytest.raises(RpcFailure) as err:
        await c.request("session/prompt", {"sessionId": sid, "prompt": [audio]})
    assert err.value.code == -32602 and "audio" in str(err.value.message)
    assert err.value.data["field"] == "prompt.0"


async def test_authenticate_is_forwarded_and_replayed_for_new_sessions(daemon: InProcess) -> None:
    c = daemon.client
    result = await c.request("authenticate", {"methodId": "fake-login"})
    assert result == {"_meta": {"authenticated": "fake-login"}}
    sid = await c.new_session(daemon.cwd)
    assert (await c.prompt(sid, "echo after auth"))["stopReason"] == "end_turn"
