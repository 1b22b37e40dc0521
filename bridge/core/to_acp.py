"""Core events (bridge/core/events.py) → ACP v1 `session/update` payloads: the one place
where an event takes its wire shape. tests/core/test_to_acp.py checks every kind against
the ACP schema.

Fields are written in the schema's order; a field an event leaves unset is left out (ACP:
unchanged), one set to None where the schema allows `null` is sent as `null`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.core import events as ev
from bridge.wire.types import JsonObj

_CHUNK_KINDS = {
    "agent": "agent_message_chunk",
    "thought": "agent_thought_chunk",
    "user": "user_message_chunk",
}


def update(event: ev.CoreEvent) -> JsonObj:
    """The `session/update` payload (`{"sessionUpdate": ..., ...}`) for `event`."""
    out: JsonObj = _RENDER[type(event)](event)
    if event.meta is not None:
        out["_meta"] = event.meta
    return out


def tool_call_fields(event: ev.ToolCallStart | ev.ToolCallUpdate) -> JsonObj:
    """A tool call's ACP fields without `sessionUpdate` and `_meta` (the `toolCall` of a
    permission request)."""
    out: JsonObj = {"toolCallId": event.tool_call_id}
    if event.title is not None:
        out["title"] = event.title
    if event.kind is not None:
        out["kind"] = event.kind
    if event.status is not None:
        out["status"] = event.status
    if event.content is not None:
        out["content"] = event.content
    if event.locations is not None:
        out["locations"] = event.locations
    if event.raw_input is not ev.UNSET:
        out["rawInput"] = event.raw_input
    if event.raw_output is not ev.UNSET:
        out["rawOutput"] = event.raw_output
    return out


def permission_request(request: ev.PermissionRequest) -> JsonObj:
    """The `session/request_permission` params (without `sessionId`) for `request`."""
    call = tool_call_fields(request.tool_call)
    if request.tool_call.meta is not None:
        call["_meta"] = request.tool_call.meta
    options = [{"optionId": o.option_id, "name": o.name, "kind": o.kind} for o in request.options]
    out: JsonObj = {"toolCall": call, "options": options}
    if request.meta is not None:
        out["_meta"] = request.meta
    return out


def _chunk(e: ev.MessageChunk) -> JsonObj:
    out: JsonObj = {"sessionUpdate": _CHUNK_KINDS[e.role], "content": e.content}
    if e.message_id is not None:
        out["messageId"] = e.message_id
    return out


def _tool_call(e: ev.ToolCallStart) -> JsonObj:
    return {"sessionUpdate": "tool_call", **tool_call_fields(e)}


def _tool_call_update(e: ev.ToolCallUpdate) -> JsonObj:
    return {"sessionUpdate": "tool_call_update", **tool_call_fields(e)}


def _plan(e: ev.Plan) -> JsonObj:
    entries = [{"content": p.content, "priority": p.priority, "status": p.status} for p in e.entries]
    return {"sessionUpdate": "plan", "entries": entries}


def _usage(e: ev.Usage) -> JsonObj:
    out: JsonObj = {"sessionUpdate": "usage_update", "used": e.used, "size": e.size}
    if e.cost is not None:
        out["cost"] = {"amount": e.cost.amount, "currency": e.cost.currency}
    return out


def _mode(e: ev.ModeChange) -> JsonObj:
    return {"sessionUpdate": "current_mode_update", "currentModeId": e.mode_id}


def _config(e: ev.ConfigOptionsChange) -> JsonObj:
    return {"sessionUpdate": "config_option_update", "configOptions": e.options}


def _info(e: ev.SessionInfo) -> JsonObj:
    out: JsonObj = {"sessionUpdate": "session_info_update"}
    if e.title is not ev.UNSET:
        out["title"] = e.title
    return out


def _commands(e: ev.AvailableCommands) -> JsonObj:
    commands: list[JsonObj] = []
    for c in e.commands:
        command: JsonObj = {"name": c.name, "description": c.description}
        if c.hint is not None:
            command["input"] = {"hint": c.hint}
        commands.append(command)
    return {"sessionUpdate": "available_commands_update", "availableCommands": commands}


def _compaction(e: ev.Compaction) -> JsonObj:
    out: JsonObj = {"sessionUpdate": "compaction_update", "compactionId": e.compaction_id, "status": e.status}
    if e.summary is not None:
        out["summary"] = e.summary
    if e.error is not None:
        out["error"] = e.error
    return out


_RENDER: dict[type, Callable[[Any], JsonObj]] = {
    ev.MessageChunk: _chunk,
    ev.ToolCallStart: _tool_call,
    ev.ToolCallUpdate: _tool_call_update,
    ev.Plan: _plan,
    ev.Usage: _usage,
    ev.ModeChange: _mode,
    ev.ConfigOptionsChange: _config,
    ev.SessionInfo: _info,
    ev.AvailableCommands: _commands,
    ev.Compaction: _compaction,
}
