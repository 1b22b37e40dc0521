"""Claude Code's `elicitation` control request ↔ ACP `elicitation/create` (pure).

An MCP server of the session asked the user for input (MCP `elicitation/create`); the CLI
hands it to its SDK host as control request `elicitation` (`mcp_server_name`, `message`,
`mode`, `requested_schema` or `url` + `elicitation_id`) and expects an MCP `ElicitResult`
(`action`, `content`) back. It reaches the client only in a mode the client advertised
(`clientCapabilities.elicitation.form` / `.url`); otherwise the server gets `decline`
without anyone being asked (fail closed).
"""

from __future__ import annotations

from typing import Any

from bridge.wire.types import JsonObj

DECLINE: JsonObj = {"action": "decline"}


def for_client(req: JsonObj, capabilities: Any, tool_call_id: str | None = None) -> JsonObj | None:
    """The `elicitation/create` params (sessionId added by the host), or None: decline."""
    mode = req.get("mode") or "form"
    supported = capabilities.get("elicitation") if isinstance(capabilities, dict) else None
    if not isinstance(supported, dict) or not isinstance(supported.get(mode), dict):
        return None
    server = str(req.get("mcp_server_name") or "")
    meta = {"bridge": {"mcpServer": server}}
    scope = {"toolCallId": tool_call_id} if tool_call_id else {}
    if mode == "form":
        schema = req.get("requested_schema")
        if not isinstance(schema, dict):
            schema = {"type": "object", "properties": {}}
        return {"mode": "form", "message": str(req.get("message") or ""), "requestedSchema": schema,
                **scope, "_meta": meta}
    if mode == "url" and isinstance(req.get("url"), str) and isinstance(req.get("elicitation_id"), str):
        return {"mode": "url", "message": str(req.get("message") or ""), "url": req["url"],
                "elicitationId": req["elicitation_id"], **scope, "_meta": meta}
    return None


def answer(response: Any) -> JsonObj:
    """The `ElicitResult` for the client's answer; anything malformed cancels."""
    if not isinstance(response, dict) or response.get("action") not in ("accept", "decline", "cancel"):
        return {"action": "cancel"}
    if response["action"] == "accept":
        content = response.get("content")
        return {"action": "accept", "content": content if isinstance(content, dict) else {}}
    return {"action": response["action"]}
