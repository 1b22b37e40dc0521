"""Claude Code's `elicitation` control request ↔ ACP `elicitation/create` (pure)."""

from __future__ import annotations

from adapters.claude import elicit
from tests.acp_schema import check

FORM = {"subtype": "elicitation", "mcp_server_name": "elicit", "message": "What is your name?", "mode": "form",
        "requested_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}
URL = {"subtype": "elicitation", "mcp_server_name": "auth", "message": "Log in", "mode": "url",
       "url": "https://x.test/login", "elicitation_id": "e1"}


def test_form_goes_to_a_client_that_advertises_forms() -> None:
    ask = elicit.for_client(FORM, {"elicitation": {"form": {}}}, "toolu_1")
    assert ask is not None
    check("CreateElicitationRequest", {"sessionId": "s", **ask})
    assert ask["requestedSchema"] == FORM["requested_schema"] and ask["toolCallId"] == "toolu_1"
    assert ask["_meta"] == {"bridge": {"mcpServer": "elicit"}}


def test_declined_without_the_capability_for_that_mode() -> None:
    assert elicit.for_client(FORM, {}) is None
    assert elicit.for_client(FORM, {"elicitation": {"url": {}}}) is None
    assert elicit.for_client(FORM, {"elicitation": {"form": None}}) is None
    assert elicit.for_client(URL, {"elicitation": {"form": {}}}) is None
    assert elicit.for_client({**URL, "url": None}, {"elicitation": {"url": {}}}) is None


def test_url_mode() -> None:
    ask = elicit.for_client(URL, {"elicitation": {"url": {}}})
    assert ask is not None
    check("CreateElicitationRequest", {"sessionId": "s", **ask})
    assert (ask["url"], ask["elicitationId"]) == ("https://x.test/login", "e1")


def test_answers() -> None:
    assert elicit.answer({"action": "accept", "content": {"name": "Ada"}}) == {"action": "accept", "content": {"name": "Ada"}}
    assert elicit.answer({"action": "accept"}) == {"action": "accept", "content": {}}
    assert elicit.answer({"action": "decline", "content": {"x": 1}}) == {"action": "decline"}
    assert elicit.answer({"action": "maybe"}) == {"action": "cancel"}
    assert elicit.answer(None) == {"action": "cancel"}
