"""Core events → ACP `session/update` (bridge/core/to_acp.py): every kind the adapters emit
validates against the ACP v1 schema, unset fields stay out, and a real session publishes
exactly what the one translator makes of an event."""

from __future__ import annotations

import typing
from pathlib import Path

import orjson
import pytest

from bridge.core import events as ev
from bridge.core import to_acp
from bridge.core.adapter import AgentSpec
from bridge.core.session import Session
from bridge.store.base import SessionRecord
from bridge.store.sqlite import SqliteStore
from tests.acp_schema import check

DIFF = {"type": "diff", "path": "/w/a.txt", "oldText": None, "newText": "x\n"}
TEXT = {"type": "content", "content": {"type": "text", "text": "done"}}

# One of each kind, with the fields that kind carries in the adapters.
SAMPLES: list[ev.CoreEvent] = [
    ev.MessageChunk("agent", {"type": "text", "text": "Hello"}, "msg_1"),
    ev.MessageChunk("thought", {"type": "text", "text": "Hmm"}),
    ev.MessageChunk("user", {"type": "image", "mimeType": "image/png", "data": "AAAA"}, "u1"),
    ev.ToolCallStart(
        "call_1",
        "Edit a.txt",
        kind="edit",
        status="in_progress",
        content=[DIFF],
        locations=[{"path": "/w/a.txt", "line": 3}],
        raw_input={"changes": []},
        meta={"bridge": {"toolName": "apply_patch"}},
    ),
    ev.ToolCallUpdate("call_1", status="completed", content=[TEXT], raw_output={"exitCode": 0}),
    ev.ToolCallUpdate("call_1", title="Run ls", kind="execute", raw_input=None, raw_output=None),
    ev.Plan((ev.PlanEntry("read code", "completed"), ev.PlanEntry("write fix", "in_progress", "high"))),
    ev.Usage(49, 121_600),
    ev.Usage(10, 200_000, ev.Cost(0.25, "USD")),
    ev.ModeChange("plan"),
    ev.ConfigOptionsChange(
        [
            {
                "id": "mode",
                "name": "Mode",
                "category": "mode",
                "type": "select",
                "currentValue": "plan",
                "options": [{"value": "plan", "name": "Plan"}],
            }
        ]
    ),
    ev.SessionInfo(title="Fix the bug"),
    ev.SessionInfo(title=None),
    ev.mcp_report([{"name": "echo", "status": "ready", "tools": ["echo"]}]),
    ev.AvailableCommands((ev.Command("compact", "Summarize"), ev.Command("review", "Review", hint="what"))),
    ev.Compaction("compact-1", "in_progress"),
    ev.Compaction("compact-1", "completed", summary=[{"type": "text", "text": "Summary"}]),
    ev.Compaction("compact-1", "failed", error="Not enough messages to compact."),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_validates_against_acp_v1(event: ev.CoreEvent) -> None:
    check("SessionNotification", {"sessionId": "s", "update": to_acp.update(event)})


def test_every_event_kind_has_a_rendering_and_a_sample() -> None:
    kinds = set(typing.get_args(ev.CoreEvent))
    assert kinds == set(to_acp._RENDER)
    assert kinds == {type(e) for e in SAMPLES}


def test_what_the_renderings_are() -> None:
    (
        chunk,
        thought,
        user,
        start,
        done,
        refined,
        plan,
        usage,
        costed,
        mode,
        _,
        title,
        cleared,
        mcp,
        commands,
        *_,
    ) = (to_acp.update(e) for e in SAMPLES)
    assert chunk == {
        "sessionUpdate": "agent_message_chunk",
        "content": {"type": "text", "text": "Hello"},
        "messageId": "msg_1",
    }
    assert "messageId" not in thought and thought["sessionUpdate"] == "agent_thought_chunk"
    assert user["sessionUpdate"] == "user_message_chunk"
    # Tool calls in the schema's field order, `_meta` last.
    assert list(start) == [
        "sessionUpdate",
        "toolCallId",
        "title",
        "kind",
        "status",
        "content",
        "locations",
        "rawInput",
        "_meta",
    ]
    assert done == {
        "sessionUpdate": "tool_call_update",
        "toolCallId": "call_1",
        "status": "completed",
        "content": [TEXT],
        "rawOutput": {"exitCode": 0},
    }
    # Unset fields are left out (unchanged); raw input/output given as None are sent as null.
    assert refined == {
        "sessionUpdate": "tool_call_update",
        "toolCallId": "call_1",
        "title": "Run ls",
        "kind": "execute",
        "rawInput": None,
        "rawOutput": None,
    }
    assert plan["entries"][1] == {"content": "write fix", "priority": "high", "status": "in_progress"}
    assert "cost" not in usage and costed["cost"] == {"amount": 0.25, "currency": "USD"}
    assert mode == {"sessionUpdate": "current_mode_update", "currentModeId": "plan"}
    assert title["title"] == "Fix the bug" and cleared == {
        "sessionUpdate": "session_info_update",
        "title": None,
    }
    assert mcp == {
        "sessionUpdate": "session_info_update",
        "_meta": {"bridge": {"mcpServers": [{"name": "echo", "status": "ready", "tools": ["echo"]}]}},
    }
    assert commands["availableCommands"] == [
        {"name": "compact", "description": "Summarize"},
        {"name": "review", "description": "Review", "input": {"hint": "what"}},
    ]


def test_tool_call_fields_are_a_permission_request_s_tool_call() -> None:
    start = SAMPLES[3]
    assert isinstance(start, ev.ToolCallStart)
    fields = to_acp.tool_call_fields(start)
    assert "sessionUpdate" not in fields and "_meta" not in fields
    check(
        "RequestPermissionRequest",
        {
            "sessionId": "s",
            "toolCall": fields,
            "options": [{"optionId": "allow", "name": "Allow", "kind": "allow_once"}],
        },
    )


def test_nested_links_a_subagent_event_to_its_parent_call() -> None:
    start = SAMPLES[3]
    nested = ev.nested(start, "call_parent")
    # Other bridge metadata (the tool's name, for metrics) is kept; the event itself is not changed.
    assert nested.meta == {"bridge": {"toolName": "apply_patch", "parentToolCallId": "call_parent"}}
    assert start.meta == {"bridge": {"toolName": "apply_patch"}}
    assert ev.nested(ev.ModeChange("plan"), "p").meta == {"bridge": {"parentToolCallId": "p"}}
    assert ev.tool_call_id(nested) == "call_1" and ev.tool_call_id(ev.ModeChange("plan")) is None
    tagged = ev.with_meta(nested, claudeCode={"parentToolUseId": "p"})
    assert to_acp.update(tagged)["_meta"]["claudeCode"] == {"parentToolUseId": "p"}


@pytest.mark.anyio
async def test_a_session_publishes_what_to_acp_makes_of_an_event(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.open()
    try:
        record = SessionRecord(id="s1", agent="codex", cwd=str(tmp_path), created_at="t", updated_at="t")
        await store.create_session(record)
        session = Session(record, AgentSpec("codex", "codex", "codex"), store)
        for event in SAMPLES:
            session.emit_event(event)
        await store.flush()
        logged = [orjson.loads(e.message) for e in await store.events("s1", 0, 100)]
    finally:
        await store.close()
    assert [m["method"] for m in logged] == ["session/update"] * len(SAMPLES)
    assert [m["params"] for m in logged] == [{"sessionId": "s1", "update": to_acp.update(e)} for e in SAMPLES]
    for message in logged:
        check("SessionNotification", message["params"])


def test_a_permission_request() -> None:
    call = ev.ToolCallUpdate(
        "call_1", title="Run make", kind="execute", status="pending", raw_input={"command": "make"}
    )
    asked = ev.PermissionRequest(
        ev.nested(call, "call_parent"),
        (
            ev.PermissionOption("allow", "Allow", "allow_once"),
            ev.PermissionOption("reject", "Reject", "reject_once"),
        ),
        meta={"claudeCode": {"toolName": "Bash"}},
    )
    params = to_acp.permission_request(asked)
    check("RequestPermissionRequest", {"sessionId": "s", **params})
    assert params == {
        "toolCall": {
            "toolCallId": "call_1",
            "title": "Run make",
            "kind": "execute",
            "status": "pending",
            "rawInput": {"command": "make"},
            "_meta": {"bridge": {"parentToolCallId": "call_parent"}},
        },
        "options": [
            {"optionId": "allow", "name": "Allow", "kind": "allow_once"},
            {"optionId": "reject", "name": "Reject", "kind": "reject_once"},
        ],
        "_meta": {"claudeCode": {"toolName": "Bash"}},
    }
    assert "_meta" not in to_acp.permission_request(ev.PermissionRequest(call, ()))
