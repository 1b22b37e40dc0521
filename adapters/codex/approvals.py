"""Codex server requests ↔ ACP. Pure: builds what to ask the client and what to answer Codex.

Codex asks before it runs a command (`item/commandExecution/requestApproval`), applies a
patch (`item/fileChange/requestApproval`), widens the sandbox (`item/permissions/
requestApproval`) or calls an MCP tool (`mcpServer/elicitation/request` with
`_meta.codex_approval_kind = "mcp_tool_call"`). Each becomes one `session/request_permission`
whose options map back to a Codex decision. Anything the client does not clearly select —
cancelled, an error, an unknown option — answers the fail-closed result: `cancel` for
commands and patches (Codex then also stops the turn, as ACP's cancel means), nothing granted
for permissions, `cancel` for MCP calls.

Every request Codex sends must get an answer or its turn waits forever; `refusal()` gives
the answer for the requests the bridge does not serve.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from adapters.codex.translate import Translator
from bridge.core import events as ev
from bridge.core import to_acp
from bridge.wire.types import JsonObj

COMMAND = "item/commandExecution/requestApproval"
FILE_CHANGE = "item/fileChange/requestApproval"
PERMISSIONS = "item/permissions/requestApproval"
ELICITATION = "mcpServer/elicitation/request"


@dataclass
class Approval:
    request: ev.PermissionRequest  # what to ask the client
    answers: dict[str, JsonObj]  # optionId → result for Codex
    refused: JsonObj  # result for Codex when the client does not select an option

    def answer(self, response: Any) -> JsonObj:
        outcome = response.get("outcome") if isinstance(response, dict) else None
        if isinstance(outcome, dict) and outcome.get("outcome") == "selected":
            return self.answers.get(str(outcome.get("optionId")), self.refused)
        return self.refused

    @property
    def params(self) -> JsonObj:
        """The `session/request_permission` params, without `sessionId`."""
        return to_acp.permission_request(self.request)


def approval_for(method: str, params: JsonObj, translator: Translator, request_id: Any) -> Approval | None:
    """The permission prompt for a Codex approval request, or None if `method` is not one."""
    if method == COMMAND:
        return _command(params, translator)
    if method == FILE_CHANGE:
        return _file_change(params, translator)
    if method == PERMISSIONS:
        return _permissions(params)
    if method == ELICITATION and is_mcp_tool_approval(params):
        return _mcp_tool(params, translator, request_id)
    return None


def is_mcp_tool_approval(params: JsonObj) -> bool:
    meta = params.get("_meta")
    return isinstance(meta, dict) and meta.get("codex_approval_kind") == "mcp_tool_call"


def _option(option_id: str, name: str, kind: str) -> ev.PermissionOption:
    return ev.PermissionOption(option_id, name, kind)


def _tool_call(translator: Translator, item_id: str, fallback: ev.ToolCallUpdate) -> ev.ToolCallUpdate:
    """The running call the request is about as the client saw it start, else `fallback`
    (without the start's `_meta`: the bridge's metrics name, not the client's business)."""
    known = translator.tool_call(item_id)
    if known is None:
        return replace(fallback, status="pending")
    return ev.ToolCallUpdate(
        item_id,
        title=known.title,
        kind=known.kind,
        status="pending",
        content=known.content,
        locations=known.locations,
        raw_input=known.raw_input,
    )


def _command(params: JsonObj, translator: Translator) -> Approval:
    item_id = str(params.get("itemId", ""))
    raw = {k: params.get(k) for k in ("command", "cwd", "reason", "networkApprovalContext") if params.get(k)}
    fallback = ev.ToolCallUpdate(
        item_id, title=str(params.get("command") or "Run a command"), kind="execute", raw_input=raw
    )
    call = _tool_call(translator, item_id, fallback)
    network = params.get("networkApprovalContext")
    if isinstance(network, dict) and network.get("host"):
        call = replace(call, title=f"Allow network access to {network['host']}")
    decisions = params.get("availableDecisions") or ["accept", "acceptForSession", "decline"]
    options: list[ev.PermissionOption] = []
    answers: dict[str, JsonObj] = {}
    for decision in decisions:
        option = _command_option(decision)
        if option is not None and option.option_id not in answers:
            options.append(option)
            answers[option.option_id] = {"decision": decision}
    # `decline` works even when Codex does not list it, and a prompt needs a way to say no.
    if "decline" not in answers:
        options.append(_option("decline", "Reject", "reject_once"))
        answers["decline"] = {"decision": "decline"}
    return Approval(ev.PermissionRequest(call, tuple(options)), answers, {"decision": "cancel"})


def _command_option(decision: Any) -> ev.PermissionOption | None:
    if decision == "accept":
        return _option("accept", "Allow", "allow_once")
    if decision == "acceptForSession":
        return _option("accept_session", "Allow for this session", "allow_always")
    if decision == "decline":
        return _option("decline", "Reject", "reject_once")
    if isinstance(decision, dict) and "acceptWithExecpolicyAmendment" in decision:
        rule = decision["acceptWithExecpolicyAmendment"].get("execpolicy_amendment") or []
        return _option("accept_rule", f"Always allow `{' '.join(map(str, rule))}`", "allow_always")
    if isinstance(decision, dict) and "applyNetworkPolicyAmendment" in decision:
        amendment = decision["applyNetworkPolicyAmendment"].get("network_policy_amendment") or {}
        action, host = str(amendment.get("action", "")), str(amendment.get("host", ""))
        kind = "allow_always" if action == "allow" else "reject_always"
        return _option(f"network_{action}", f"Always {action} {host}", kind)
    return None  # "cancel" is what a cancelled prompt answers, not an option


def _file_change(params: JsonObj, translator: Translator) -> Approval:
    item_id = str(params.get("itemId", ""))
    fallback = ev.ToolCallUpdate(
        item_id, title="Apply a patch", kind="edit", raw_input={"reason": params.get("reason")}
    )
    call = _tool_call(translator, item_id, fallback)
    if params.get("grantRoot"):
        call = replace(call, title=f"{call.title} (and allow writes under {params['grantRoot']})")
    options = [
        _option("accept", "Allow", "allow_once"),
        _option("accept_session", "Allow for this session", "allow_always"),
        _option("decline", "Reject", "reject_once"),
    ]
    answers = {
        "accept": {"decision": "accept"},
        "accept_session": {"decision": "acceptForSession"},
        "decline": {"decision": "decline"},
    }
    return Approval(ev.PermissionRequest(call, tuple(options)), answers, {"decision": "cancel"})


def _permissions(params: JsonObj) -> Approval:
    wanted = params.get("permissions") or {}
    call = ev.ToolCallUpdate(
        str(params.get("itemId", "")),
        title=describe_permissions(wanted, params.get("reason")),
        kind="other",
        status="pending",
        raw_input=wanted,
    )
    options = [
        _option("allow_turn", "Allow for this turn", "allow_once"),
        _option("allow_session", "Allow for this session", "allow_always"),
        _option("reject", "Reject", "reject_once"),
    ]
    answers = {
        "allow_turn": {"permissions": wanted, "scope": "turn"},
        "allow_session": {"permissions": wanted, "scope": "session"},
        "reject": {"permissions": {}, "scope": "turn"},
    }
    return Approval(ev.PermissionRequest(call, tuple(options)), answers, {"permissions": {}, "scope": "turn"})


def describe_permissions(wanted: JsonObj, reason: Any) -> str:
    parts = []
    network = wanted.get("network") or {}
    if network.get("enabled"):
        parts.append("network access")
    fs = wanted.get("fileSystem") or {}
    for key, verb in (("write", "write"), ("read", "read")):
        if fs.get(key):
            parts.append(f"{verb} {', '.join(map(str, fs[key]))}")
    for entry in fs.get("entries") or []:
        parts.append(str(entry.get("path", entry)) if isinstance(entry, dict) else str(entry))
    text = "Grant " + ("; ".join(parts) if parts else "additional permissions")
    return f"{text} ({reason})" if reason else text


def _mcp_tool(params: JsonObj, translator: Translator, request_id: Any) -> Approval:
    meta = params.get("_meta") or {}
    server, tool = str(params.get("serverName", "")), str(meta.get("tool_name", ""))
    item_id = translator.find_mcp_call(server, tool) or f"mcp-approval-{request_id}"
    fallback = ev.ToolCallUpdate(
        item_id, title=f"{server}: {tool}", kind="other", raw_input=meta.get("tool_params")
    )
    call = _tool_call(translator, item_id, fallback)
    options = [_option("accept", "Allow", "allow_once")]
    answers: dict[str, JsonObj] = {"accept": {"action": "accept", "content": None}}
    if "session" in (meta.get("persist") or []):
        options.append(_option("accept_session", "Allow for this session", "allow_always"))
        answers["accept_session"] = {"action": "accept", "content": None, "_meta": {"persist": "session"}}
    options.append(_option("decline", "Reject", "reject_once"))
    answers["decline"] = {"action": "decline", "content": None}
    return Approval(
        ev.PermissionRequest(call, tuple(options)), answers, {"action": "cancel", "content": None}
    )


def elicitation_for_client(params: JsonObj, capabilities: JsonObj) -> JsonObj | None:
    """An MCP server's own elicitation as ACP `elicitation/create` params, when the client
    advertised that mode; None means answer `decline` without asking."""
    mode = params.get("mode")
    supported = (capabilities.get("elicitation") or {}) if isinstance(capabilities, dict) else {}
    if mode == "form" and isinstance(supported.get("form"), dict):
        schema = params.get("requestedSchema") or {"type": "object", "properties": {}}
        return {"mode": "form", "message": str(params.get("message", "")), "requestedSchema": schema}
    if mode == "url" and isinstance(supported.get("url"), dict):
        fields = {k: str(params.get(k, "")) for k in ("message", "url", "elicitationId")}
        return {"mode": "url", **fields}
    return None


def elicitation_answer(response: Any) -> JsonObj:
    if isinstance(response, dict) and response.get("action") in ("accept", "decline", "cancel"):
        return {"action": response["action"], "content": response.get("content")}
    return {"action": "cancel", "content": None}


def refusal(method: str) -> JsonObj | None:
    """The fail-closed answer for server requests the bridge does not serve (None: answer
    with a JSON-RPC method-not-found error instead)."""
    if method == "item/tool/call":  # dynamic tools: the bridge registers none
        return {"success": False, "contentItems": [{"type": "inputText", "text": "no such tool"}]}
    if method == "item/tool/requestUserInput":
        return {"answers": {}}
    if method in ("execCommandApproval", "applyPatchApproval"):  # legacy v1 API, never enabled
        return {"decision": {"denied": {"rejection": "agent-bridge does not serve the legacy approval API"}}}
    if method == ELICITATION:
        return {"action": "decline", "content": None}
    return None
