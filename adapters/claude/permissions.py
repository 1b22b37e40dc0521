"""`can_use_tool` ↔ `session/request_permission` (pure).

The CLI asks before a tool runs and offers its own suggestions for "always" (rules for its
settings, directories, a mode switch). The client sees allow once / allow always (only when
the CLI has suggestions, which are returned verbatim: the CLI decides where a rule lives,
as it does in its own terminal UI) / reject. Anything but an explicit allow is a deny: a
cancelled turn, a vanished client or a malformed answer all fail closed.

ExitPlanMode is the CLI asking to leave plan mode; its options are the modes to switch to.
"""

from __future__ import annotations

from typing import Any

from adapters.claude import tools
from adapters.claude.jsonutil import obj
from bridge.core import events as ev
from bridge.wire.types import JsonObj

ALLOW_ALWAYS = ev.PermissionOption("allow_always", "Always allow", "allow_always")
ALLOW = ev.PermissionOption("allow", "Allow", "allow_once")
REJECT = ev.PermissionOption("reject", "Reject", "reject_once")
PLAN_OPTIONS = (
    ev.PermissionOption("acceptEdits", "Yes, and auto-accept edits", "allow_always"),
    ev.PermissionOption("default", "Yes, and manually approve edits", "allow_once"),
    ev.PermissionOption("plan", "No, keep planning", "reject_once"),
)


def request(req: JsonObj, parent: str | None = None) -> ev.PermissionRequest:
    """What to ask the client (bridge/core/to_acp.py: `permission_request`) for a
    `can_use_tool`. `parent`: the Agent tool call, when a subagent asks (linked as in the
    session's updates)."""
    name = str(req.get("tool_name") or "")
    tool_input = obj(req.get("input"))
    link = None if parent is None else {"bridge": {"parentToolCallId": parent}}
    tool_call = ev.ToolCallUpdate(str(req.get("tool_use_id") or ""), status="pending", raw_input=tool_input,
                                  meta=link, **tools.describe(name, tool_input))
    options: tuple[ev.PermissionOption, ...]
    if name == "ExitPlanMode":
        options = PLAN_OPTIONS
    else:
        options = (*([ALLOW_ALWAYS] if _suggestions(req) else []), ALLOW, REJECT)
    meta = {k: req[k] for k in ("blocked_path", "decision_reason", "description") if isinstance(req.get(k), str)}
    meta["toolName"] = name
    if _suggestions(req):
        meta["suggestions"] = _suggestions(req)
    return ev.PermissionRequest(tool_call, options, {"claudeCode": meta})


def answer(req: JsonObj, result: Any) -> JsonObj:
    """The CLI's answer for the client's `RequestPermissionResponse` (anything odd → deny)."""
    outcome = result.get("outcome") if isinstance(result, dict) else None
    if not isinstance(outcome, dict) or outcome.get("outcome") != "selected":
        return deny("The user cancelled the permission request.", interrupt=True)
    choice = outcome.get("optionId")
    tool_input = obj(req.get("input"))
    if req.get("tool_name") == "ExitPlanMode":
        if choice in ("acceptEdits", "default"):
            mode = [{"type": "setMode", "mode": choice, "destination": "session"}]
            return {"behavior": "allow", "updatedInput": tool_input, "updatedPermissions": mode}
        return deny("The user wants to keep planning.")
    if choice == "allow":
        return {"behavior": "allow", "updatedInput": tool_input}
    if choice == "allow_always" and _suggestions(req):
        return {"behavior": "allow", "updatedInput": tool_input, "updatedPermissions": _suggestions(req)}
    return deny("The user rejected this tool call.")


def deny(message: str, *, interrupt: bool = False) -> JsonObj:
    out: JsonObj = {"behavior": "deny", "message": message}
    if interrupt:
        out["interrupt"] = True
    return out


def _suggestions(req: JsonObj) -> list[Any]:
    s = req.get("permission_suggestions")
    return s if isinstance(s, list) else []
