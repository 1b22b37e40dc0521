"""Codex approval requests → ACP permission prompts, and the answers back (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.codex.approvals import (
    COMMAND,
    ELICITATION,
    PERMISSIONS,
    approval_for,
    elicitation_answer,
    elicitation_for_client,
    refusal,
)
from adapters.codex.translate import Translator
from bridge.wire.types import JsonObj
from tests.adapters.codex.fixtures import server_requests, translate, validate_codex
from tests.adapters.codex.support import validate

CANCELLED = {"outcome": {"outcome": "cancelled"}}


def selected(option_id: str) -> JsonObj:
    return {"outcome": {"outcome": "selected", "optionId": option_id}}


def recorded(name: str) -> tuple[JsonObj, Translator]:
    """The fixture's first server request, with a translator that saw what came before it."""
    [request] = server_requests(name)
    translator = Translator()
    translate(name, translator, upto=request["method"])
    return request, translator


def prompt_of(request: JsonObj, translator: Translator) -> Any:
    approval = approval_for(request["method"], request["params"], translator, request["id"])
    assert approval is not None
    validate("RequestPermissionRequest", {"sessionId": "s", **approval.params})
    return approval


def test_command_approval_from_recorded_request() -> None:
    request, translator = recorded("shell_accept")
    approval = prompt_of(request, translator)
    call = approval.params["toolCall"]
    assert call["toolCallId"] == "call_sh" and call["status"] == "pending" and call["kind"] == "execute"
    assert call["title"] == "touch created.txt && echo made-it"
    options = [(o["optionId"], o["kind"]) for o in approval.params["options"]]
    # availableDecisions: accept, an execpolicy rule, cancel; decline is always offered.
    assert options == [("accept", "allow_once"), ("accept_rule", "allow_always"), ("decline", "reject_once")]
    assert approval.params["options"][1]["name"] == "Always allow `touch created.txt`"
    rule = {"acceptWithExecpolicyAmendment": {"execpolicy_amendment": ["touch", "created.txt"]}}
    answers = {
        "accept": {"decision": "accept"},
        "accept_rule": {"decision": rule},
        "decline": {"decision": "decline"},
    }
    for option_id, expected in answers.items():
        assert approval.answer(selected(option_id)) == expected
        validate_codex("CommandExecutionRequestApprovalResponse", expected)


@pytest.mark.parametrize("response", [CANCELLED, None, {"outcome": "weird"}, selected("no-such-option")])
def test_anything_but_a_clear_choice_fails_closed(response: Any) -> None:
    request, translator = recorded("shell_accept")
    assert prompt_of(request, translator).answer(response) == {"decision": "cancel"}


def test_command_without_listed_decisions_offers_session_approval() -> None:
    params = {"threadId": "t", "turnId": "u", "itemId": "x", "command": "make", "cwd": "/w", "startedAtMs": 1}
    approval = prompt_of({"method": COMMAND, "params": params, "id": 0}, Translator())
    assert [o["optionId"] for o in approval.params["options"]] == ["accept", "accept_session", "decline"]
    assert approval.params["toolCall"]["title"] == "make"  # no item seen: built from the request
    assert approval.answer(selected("accept_session")) == {"decision": "acceptForSession"}


def test_network_approval() -> None:
    amendment = {
        "applyNetworkPolicyAmendment": {"network_policy_amendment": {"action": "allow", "host": "pypi.org"}}
    }
    params = {
        "threadId": "t",
        "turnId": "u",
        "itemId": "x",
        "startedAtMs": 1,
        "command": "pip install x",
        "networkApprovalContext": {"host": "pypi.org", "protocol": "https"},
        "availableDecisions": ["accept", amendment, "cancel"],
    }
    approval = prompt_of({"method": COMMAND, "params": params, "id": 0}, Translator())
    assert approval.params["toolCall"]["title"] == "Allow network access to pypi.org"
    option = approval.params["options"][1]
    assert (option["optionId"], option["kind"]) == ("network_allow", "allow_always")
    assert approval.answer(selected("network_allow")) == {"decision": amendment}


def test_file_change_approval_shows_the_diff() -> None:
    request, translator = recorded("patch")
    approval = prompt_of(request, translator)
    call = approval.params["toolCall"]
    assert call["toolCallId"] == "call_patch" and call["kind"] == "edit"
    assert [d["path"].rsplit("/", 1)[1] for d in call["content"]] == ["added.txt", "hello.txt"]
    for option_id, decision in [
        ("accept", "accept"),
        ("accept_session", "acceptForSession"),
        ("decline", "decline"),
    ]:
        answer = approval.answer(selected(option_id))
        assert answer == {"decision": decision}
        validate_codex("FileChangeRequestApprovalResponse", answer)
    assert approval.answer(CANCELLED) == {"decision": "cancel"}


def test_mcp_tool_approval_from_recorded_elicitation() -> None:
    request, translator = recorded("mcp_approval")
    assert request["method"] == ELICITATION
    approval = prompt_of(request, translator)
    assert approval.params["toolCall"]["toolCallId"] == "call_mcp"  # the running mcpToolCall item
    assert approval.params["toolCall"]["title"] == "echo: echo"
    answers = {
        "accept": {"action": "accept", "content": None},
        "accept_session": {"action": "accept", "content": None, "_meta": {"persist": "session"}},
        "decline": {"action": "decline", "content": None},
    }
    for option_id, expected in answers.items():
        assert approval.answer(selected(option_id)) == expected
        validate_codex("McpServerElicitationRequestResponse", expected)
    assert approval.answer(CANCELLED) == {"action": "cancel", "content": None}


def test_permissions_request() -> None:
    wanted = {"network": {"enabled": True}, "fileSystem": {"write": ["/w/out"]}}
    params = {
        "threadId": "t",
        "turnId": "u",
        "itemId": "p",
        "cwd": "/w",
        "startedAtMs": 1,
        "permissions": wanted,
    }
    validate_codex("PermissionsRequestApprovalParams", params)
    approval = prompt_of({"method": PERMISSIONS, "params": params, "id": 3}, Translator())
    assert approval.params["toolCall"]["title"] == "Grant network access; write /w/out"
    grants = {
        "allow_turn": {"permissions": wanted, "scope": "turn"},
        "allow_session": {"permissions": wanted, "scope": "session"},
        "reject": {"permissions": {}, "scope": "turn"},
    }
    for option_id, expected in grants.items():
        assert approval.answer(selected(option_id)) == expected
        validate_codex("PermissionsRequestApprovalResponse", expected)
    assert approval.answer(CANCELLED) == {"permissions": {}, "scope": "turn"}


def test_other_server_requests_are_not_permission_prompts() -> None:
    form = {
        "threadId": "t",
        "serverName": "s",
        "mode": "form",
        "message": "Your name?",
        "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    assert approval_for(ELICITATION, form, Translator(), 1) is None
    assert approval_for("item/tool/call", {}, Translator(), 1) is None


def test_mcp_form_elicitation_goes_to_a_capable_client() -> None:
    form = {
        "threadId": "t",
        "serverName": "s",
        "mode": "form",
        "message": "Your name?",
        "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    assert elicitation_for_client(form, {}) is None  # not advertised: Codex gets a decline
    ask = elicitation_for_client(form, {"elicitation": {"form": {}}})
    assert ask is not None
    validate("CreateElicitationRequest", {"sessionId": "s", **ask})
    assert elicitation_answer({"action": "accept", "content": {"name": "Ada"}}) == {
        "action": "accept",
        "content": {"name": "Ada"},
    }
    assert elicitation_answer({"bogus": 1}) == {"action": "cancel", "content": None}
    url = {
        "threadId": "t",
        "serverName": "s",
        "mode": "url",
        "message": "Log in",
        "url": "https://x.test/",
        "elicitationId": "e1",
    }
    ask = elicitation_for_client(url, {"elicitation": {"url": {}}})
    assert ask == {"mode": "url", "message": "Log in", "url": "https://x.test/", "elicitationId": "e1"}
    validate("CreateElicitationRequest", {"sessionId": "s", **ask})


@pytest.mark.parametrize(
    ("method", "definition"),
    [
        ("item/tool/call", "DynamicToolCallResponse"),
        ("item/tool/requestUserInput", "ToolRequestUserInputResponse"),
        ("execCommandApproval", "ExecCommandApprovalResponse"),
        ("applyPatchApproval", "ApplyPatchApprovalResponse"),
        (ELICITATION, "McpServerElicitationRequestResponse"),
    ],
)
def test_unserved_requests_get_a_valid_refusal(method: str, definition: str) -> None:
    answer = refusal(method)
    assert answer is not None
    validate_codex(definition, answer)


def test_unknown_request_has_no_refusal() -> None:
    assert refusal("attestation/generate") is None  # answered with a JSON-RPC error instead
