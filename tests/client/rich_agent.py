#!/usr/bin/env python3
"""The fake ACP agent (tests/fakes/fake_acp_agent.py) with what the client tests need on top:

  rich                 a thought, a tool call with a diff, locations and a resource link,
                       an embedded resource, a plan, a usage_update with cost, a title, and
                       a prompt result carrying usage
  stop REASON          ends the turn with that stop reason
  advertise            available_commands_update offering /help and /compact
Plus a thought_level config option ("effort": low / high).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes"))

import fake_acp_agent as base

_run_prompt = base.run_prompt
_handle = base.handle
_config_options = base.config_options


def config_options(sid: str) -> list:
    return [
        *_config_options(sid),
        {
            "id": "effort",
            "name": "Effort",
            "category": "thought_level",
            "type": "select",
            "currentValue": base.keep(sid).get("effort", "low"),
            "options": [{"value": "low", "name": "Low"}, {"value": "high", "name": "High"}],
        },
    ]


def run_prompt(rid: int, params: dict) -> None:
    sid = params["sessionId"]
    text = " ".join(b.get("text", "") for b in params.get("prompt", []) if b.get("type") == "text").strip()
    word, _, rest = text.partition(" ")
    if word == "rich":
        up = base.update
        up(sid, {"sessionUpdate": "agent_thought_chunk", "content": {"type": "text", "text": "let me think"}})
        up(
            sid,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": "edit-1",
                "title": "Edit notes.txt",
                "kind": "edit",
                "status": "in_progress",
                "locations": [{"path": "/work/notes.txt", "line": 3}],
                "rawInput": {"path": "notes.txt"},
            },
        )
        up(
            sid,
            {
                "sessionUpdate": "tool_call_update",
                "toolCallId": "edit-1",
                "status": "completed",
                "content": [
                    {"type": "diff", "path": "/work/notes.txt", "oldText": "a\n", "newText": "a\nb\n"},
                    {
                        "type": "content",
                        "content": {"type": "resource_link", "uri": f"file://{rest}", "name": "report.txt"},
                    },
                ],
            },
        )
        up(
            sid,
            {
                "sessionUpdate": "agent_message_chunk",
                "messageId": "m2",
                "content": {
                    "type": "resource",
                    "resource": {
                        "uri": "mem://summary.md",
                        "mimeType": "text/markdown",
                        "text": "# Summary\n",
                    },
                },
            },
        )
        up(
            sid,
            {
                "sessionUpdate": "plan",
                "entries": [
                    {"content": "edit notes", "priority": "high", "status": "completed"},
                    {"content": "write report", "priority": "medium", "status": "pending"},
                ],
            },
        )
        up(
            sid,
            {
                "sessionUpdate": "usage_update",
                "used": 1200,
                "size": 200000,
                "cost": {"amount": 0.25, "currency": "USD"},
            },
        )
        up(sid, {"sessionUpdate": "session_info_update", "title": "Rich turn"})
        up(
            sid,
            {
                "sessionUpdate": "agent_message_chunk",
                "messageId": "m2",
                "content": {"type": "text", "text": "done"},
            },
        )
        usage = {"totalTokens": 150, "inputTokens": 100, "outputTokens": 50, "cachedReadTokens": 10}
        base.send({"id": rid, "result": {"stopReason": "end_turn", "usage": usage}})
    elif word == "stop":
        base.chunk(sid, f"stopping: {rest}")
        base.send({"id": rid, "result": {"stopReason": rest}})
    elif word == "advertise":
        base.update(
            sid,
            {
                "sessionUpdate": "available_commands_update",
                "availableCommands": [
                    {"name": "help", "description": "Show help"},
                    {"name": "compact", "description": "Compact the conversation"},
                ],
            },
        )
        base.send({"id": rid, "result": {"stopReason": "end_turn"}})
    else:
        _run_prompt(rid, params)


def handle(msg: dict) -> None:
    params = msg.get("params") or {}
    if msg.get("method") == "session/set_config_option" and params.get("configId") == "effort":
        base.keep(params["sessionId"])["effort"] = params["value"]
        base.save(params["sessionId"])
        base.send({"id": msg["id"], "result": {"configOptions": config_options(params["sessionId"])}})
        return
    _handle(msg)


base.run_prompt = run_prompt
base.config_options = config_options
base.handle = handle

if __name__ == "__main__":
    base.main()
