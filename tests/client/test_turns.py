"""Prompt turns through the client: send / stream / start, callbacks, typed updates, usage
and cost, permissions (callback, policies, replies), cancel, failures. Each test spawns the
real daemon over stdio with the fake ACP agent behind it; every message is schema-checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from bridge.client import (
    AgentFailed,
    AgentMessageChunk,
    AgentThoughtChunk,
    InvalidReply,
    PermissionRequest,
    Plan,
    ToolCall,
    ToolCallUpdate,
    TurnFailed,
    UnknownUpdate,
    UsageUpdate,
)
from bridge.client.updates import Diff, EmbeddedResource, ResourceLink, ToolContent
from tests.client.support import spawned

pytestmark = pytest.mark.anyio


async def test_send_returns_text_parts_stop_reason_usage_and_cost(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            texts: list[str] = []
            thoughts: list[str] = []
            started: list[ToolCall] = []
            ended: list[Any] = []
            plans: list[Plan] = []
            result = await session.send(
                "rich /tmp/report.txt",
                on_text=texts.append,
                on_thought=thoughts.append,
                on_tool_start=started.append,
                on_tool_end=ended.append,
                on_plan=plans.append,
            )
    assert result.stop_reason == "end_turn" and result.ok
    assert result.text == "done" and texts == ["", "done"]
    assert result.thought == "let me think" and thoughts == ["let me think"]
    assert [t.title for t in started] == ["Edit notes.txt"] and started[0].locations[0].line == 3
    assert [t.status for t in ended] == ["completed"]
    (tool,) = result.tool_calls
    assert tool.status == "completed" and tool.raw_input == {"path": "notes.txt"}
    diff, link = tool.content
    assert isinstance(diff, Diff) and diff.old_text == "a\n" and diff.new_text == "a\nb\n"
    assert isinstance(link, ToolContent) and isinstance(link.content, ResourceLink)
    assert [type(u).__name__ for u in result.parts] == [
        "AgentThoughtChunk",
        "ToolCall",
        "ToolCallUpdate",
        "AgentMessageChunk",
        "Plan",
        "UsageUpdate",
        "SessionInfoUpdate",
        "AgentMessageChunk",
    ]
    assert isinstance(result.parts[3], AgentMessageChunk) and isinstance(
        result.parts[3].content, EmbeddedResource
    )
    assert [e.content for e in plans[0].entries] == ["edit notes", "write report"]
    assert result.plan is not None and result.plan[1].status == "pending"
    assert result.usage is not None and (result.usage.total_tokens, result.usage.cached_read_tokens) == (
        150,
        10,
    )
    assert result.cost is not None and (result.cost.amount, result.cost.currency) == (0.25, "USD")
    assert result.context is not None and result.context.size == 200000
    assert result.message_id == "m2"
    assert session.title == "Rich turn" and session.usage is not None and session.usage.used == 1200
    assert "session/prompt" in wire.methods_sent()


async def test_prompt_with_content_blocks_and_a_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("x")
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            result = await session.send([{"type": "text", "text": "echo"}, "blocks", notes])
    assert result.text == "blocks"
    prompt = next(m for m in wire.sent if m.get("method") == "session/prompt")["params"]["prompt"]
    assert prompt[2] == {"type": "resource_link", "uri": notes.as_uri(), "name": "notes.md"}


async def test_stream_yields_typed_updates_then_the_result(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            turn = session.stream("stream 25")
            seen = [u async for u in turn]
            assert len(seen) == 25 and all(isinstance(u, AgentMessageChunk) for u in seen)
            assert all(u.session_id == session.id and not u.replayed for u in seen)
            assert turn.result.text == "".join(f"chunk {i} " for i in range(25))
            # Unknown kinds are kept, raw, in order, with the update's extra fields intact.
            updates = [u async for u in session.stream("unknown")]
    assert isinstance(updates[0], UnknownUpdate)
    assert updates[0].session_update == "future_kind_x" and updates[0].raw["payload"] == {"a": [1, 2]}
    assert isinstance(updates[1], AgentMessageChunk) and updates[1].meta == {"vendor.example/trace": "abc"}


async def test_start_runs_in_the_background_and_turns_queue(tmp_path: Path) -> None:
    """`agent.start(...)` / `session.sendPrompt(...)` + `await session.done`."""
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            events: list[Any] = []
            session.on_event(events.append)
            first = session.start("slow 3 0.05")
            second = session.start("echo after")  # waits for the first turn: one at a time
            r2 = await second.wait()
            r1 = await first.wait()
    assert r1.text == "slow 0 slow 1 slow 2 " and r2.text == "after"
    texts = [u.text for u in events if isinstance(u, AgentMessageChunk)]
    assert texts == ["slow 0 ", "slow 1 ", "slow 2 ", "after"]


async def test_on_event_unsubscribes(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            seen: list[Any] = []
            unsubscribe = session.on_event(seen.append)
            await session.send("echo one")
            unsubscribe()
            await session.send("echo two")
    assert [u.text for u in seen if isinstance(u, AgentMessageChunk)] == ["one"]


async def test_permission_callback_and_policies(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            asked: list[PermissionRequest] = []

            async def ask(req: PermissionRequest) -> str:
                asked.append(req)
                return "once"

            r = await session.send("permission", on_permission=ask)
            assert r.text == "permission: allow"
            assert asked[0].title == "Write marker" and asked[0].kind == "edit"
            assert [o.kind for o in asked[0].options] == ["allow_once", "reject_once"]
            assert r.permissions[0].decided_by == "callback" and r.permissions[0].option_id == "allow"

            # With no callback or policy, send() fails closed.
            r = await session.send("permission")
            assert r.text == "permission: reject" and r.permissions[0].decided_by == "no-answer"
            # A per-call policy; `allow_always` narrows to the offered `allow_once`.
            r = await session.send("permission", permissions="allow_always")
            assert r.text == "permission: allow" and r.permissions[0].kind == "allow_once"
            # A session default.
            session.permissions = "reject"
            assert (await session.send("permission")).text == "permission: reject"
            # A callback that raises: the request is rejected and send() re-raises.

            def broken(req: PermissionRequest) -> str:
                raise RuntimeError("callback bug")

            with pytest.raises(RuntimeError, match="callback bug"):
                await session.send("permission", on_permission=broken)


async def test_client_wide_policy(tmp_path: Path) -> None:
    async with spawned(tmp_path, permissions="allow_once") as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            r = await session.send("permission")
    assert r.text == "permission: allow" and r.permissions[0].decided_by == "policy:allow_once"


async def test_stream_hands_permission_requests_to_reply_to(tmp_path: Path) -> None:
    """`replyToPermission(requestId, reply)` while iterating `stream()`."""
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            kinds: list[str] = []
            async for event in session.stream("permission"):
                kinds.append(type(event).__name__)
                if isinstance(event, PermissionRequest):
                    assert session.pending_permissions == [event]
                    with pytest.raises(InvalidReply, match="no allow_always option"):
                        session.reply_to_permission(event.id, "always")
                    session.reply_to_permission(event.id, "once", "looks fine")
            assert kinds == ["ToolCall", "PermissionRequest", "ToolCallUpdate", "AgentMessageChunk"]
            turn = session.stream("permission")
            async for event in turn:
                if isinstance(event, PermissionRequest):
                    event.reply("reject")
            assert turn.result.text == "permission: reject"
            assert turn.result.permissions[0].decided_by == "reply"
            with pytest.raises(InvalidReply):
                session.reply_to_permission("perm-nope", "once")


async def test_cancel_ends_the_turn_with_cancelled(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            turn = session.stream("slow 200 0.05")
            async for update in turn:
                assert isinstance(update, AgentMessageChunk)
                await session.abort()
                break
            result = await turn.wait()
            assert result.stop_reason == "cancelled" and result.cancelled
            # The session is usable afterwards.
            assert (await session.send("echo again")).text == "again"
    assert "session/cancel" in wire.methods_sent()


async def test_cancelling_the_caller_cancels_the_turn(tmp_path: Path) -> None:
    """Like Go's `Run(ctx, ...)`: a cancelled caller stops the agent's turn too."""
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            got_one = anyio.Event()
            with anyio.move_on_after(30) as scope:
                async with anyio.create_task_group() as tg:

                    async def run() -> None:
                        await session.send("slow 200 0.05", on_text=lambda _: got_one.set())

                    tg.start_soon(run)
                    await got_one.wait()
                    tg.cancel_scope.cancel()
            assert not scope.cancelled_caught
            assert "session/cancel" in wire.methods_sent()
            # The next turn queues behind the cancelled one, which ends promptly.
            assert (await session.send("echo next")).text == "next"


async def test_agent_crash_fails_the_turn_with_the_partial_result(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            with pytest.raises(TurnFailed) as failed:
                await session.send("crash 5")
    err = failed.value.error
    assert isinstance(err, AgentFailed) and err.code == -32010
    assert err.data["exitCode"] == 5 and "fatal error" in err.data["stderrTail"]
    assert failed.value.partial.stop_reason == "error"


async def test_stream_raises_turn_failed_after_the_partial_updates(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            seen: list[Any] = []
            with pytest.raises(TurnFailed):
                async for update in session.stream("crash"):
                    seen.append(update)
    assert seen == []


async def test_updates_subscription_across_turns(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            async with session.updates() as updates:
                await session.send("echo a")
                await session.send("plan")
                first = await updates.receive()
                second = await updates.receive()
    assert isinstance(first, AgentMessageChunk) and first.text == "a"
    assert isinstance(second, Plan) and second.entries[0].content == "step one"


async def test_fs_requests_served_inside_the_session_roots(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("inside\n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("secret")
    async with spawned(tmp_path, fs=True) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            assert (await session.send(f"read {tmp_path / 'in.txt'}")).text == "content: inside\n"
            assert (await session.send(f"write {tmp_path / 'sub' / 'out.txt'} hello")).text == "written"
            assert (tmp_path / "sub" / "out.txt").read_text() == "hello"
            denied = await session.send(f"read {outside}")
    assert denied.text.startswith("read error:") and "outside the session's directories" in denied.text


async def test_thought_and_tool_updates_are_typed(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            updates = [u async for u in session.stream("rich /x")]
    kinds = {type(u) for u in updates}
    assert {AgentThoughtChunk, ToolCall, ToolCallUpdate, Plan, UsageUpdate} <= kinds
    assert session.tool_calls["edit-1"].status == "completed"
