"""The pure translator, replaying transcripts recorded from the real CLI (2.1.197)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.claude import permissions, translate
from adapters.claude.options import ClaudeConfig
from adapters.claude.translate import Translator
from bridge.core import events as ev
from bridge.core import to_acp
from bridge.errors import AUTH_REQUIRED, INTERNAL_ERROR, RpcError
from tests.acp_schema import check

from .fixtures import (
    TRANSCRIPTS,
    acp,
    events,
    init_response,
    kinds,
    load,
    out_messages,
    result_of,
    text_of,
)
from .fixtures import translate as run


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_every_update_validates_against_acp_v1(name: str) -> None:
    _, updates = run(name)  # run() validates each update
    assert updates, f"{name} produced no updates"


def test_text_streams_deltas_once() -> None:
    _, updates = run("text")
    assert text_of(updates, "agent_message_chunk") == "Hello there, world!"
    # Streamed in several chunks (3 deltas), and the whole `assistant` line adds nothing.
    assert kinds(updates).count("agent_message_chunk") == 3
    chunks = [u for u in updates if u["sessionUpdate"] == "agent_message_chunk"]
    assert len({u["messageId"] for u in chunks}) == 1
    assert translate.prompt_response(result_of("text"), False)["stopReason"] == "end_turn"


def test_usage_and_cost_at_the_end_of_the_turn() -> None:
    _, updates = run("text")
    usage = [u for u in updates if u["sessionUpdate"] == "usage_update"]
    assert usage[-1]["size"] == 1_000_000  # claude-opus-4-8[1m], from modelUsage.contextWindow
    assert usage[-1]["used"] == 42 + 7
    assert usage[-1]["cost"] == {"amount": result_of("text")["total_cost_usd"], "currency": "USD"}
    response = translate.prompt_response(result_of("text"), False)
    assert response["usage"]["inputTokens"] == 42 and response["usage"]["outputTokens"] == 7


def test_thinking_becomes_thought_chunks() -> None:
    _, updates = run("thinking")
    assert text_of(updates, "agent_thought_chunk") == "Let me consider this."
    assert text_of(updates, "agent_message_chunk") == "The answer is 4."


def test_bash_tool_call_lifecycle() -> None:
    _, updates = run("bash_allow")
    calls = [u for u in updates if u["sessionUpdate"] in ("tool_call", "tool_call_update")]
    first, refined, done = calls
    assert first["sessionUpdate"] == "tool_call" and first["status"] == "pending" and first["kind"] == "execute"
    assert refined["title"].startswith("touch /work/ws/created.txt")
    assert refined["rawInput"]["command"] == refined["title"]
    assert done["status"] == "completed" and "created" in done["content"][0]["content"]["text"]
    assert done["rawOutput"]["stdout"] == "created"
    assert len({c["toolCallId"] for c in calls}) == 1


def test_denied_tool_fails() -> None:
    _, updates = run("bash_deny")
    done = [u for u in updates if u["sessionUpdate"] == "tool_call_update"][-1]
    assert done["status"] == "failed"
    assert "rejected" in done["content"][0]["content"]["text"]


def test_edit_and_write_carry_diffs() -> None:
    _, updates = run("edit")
    by_id: dict[str, list[dict[str, object]]] = {}
    for u in updates:
        if "toolCallId" in u:
            by_id.setdefault(str(u["toolCallId"]), []).append(u)
    read, edit, write = by_id.values()
    assert read[1]["kind"] == "read" and read[1]["locations"] == [{"path": "/work/ws/hello.txt"}]
    # Before running: the edit as asked; after: the whole file before and after.
    assert edit[1]["content"] == [{"type": "diff", "path": "/work/ws/hello.txt", "oldText": "world", "newText": "there"}]
    assert edit[-1]["content"] == [
        {"type": "diff", "path": "/work/ws/hello.txt", "oldText": "hello world\n", "newText": "hello there\n"}]
    assert write[1]["content"] == [{"type": "diff", "path": "/work/ws/new.txt", "oldText": None, "newText": "brand new\n"}]
    assert write[-1]["status"] == "completed"


def test_mode_switch_reported_by_the_cli() -> None:
    # "Always allow" on the Edit carried the CLI's setMode suggestion: it switched to acceptEdits.
    _, updates = run("edit", ClaudeConfig.from_cli(init_response("edit"), {}, bypass=False, mode=None,
                                                     model=None, effort=None))
    mode = [u for u in updates if u["sessionUpdate"] == "current_mode_update"]
    assert [u["currentModeId"] for u in mode] == ["acceptEdits"]
    options = [u for u in updates if u["sessionUpdate"] == "config_option_update"][-1]["configOptions"]
    assert next(o for o in options if o["id"] == "mode")["currentValue"] == "acceptEdits"


def test_todowrite_is_a_plan_not_a_tool_call() -> None:
    _, updates = run("todo")
    assert "tool_call" not in kinds(updates)
    (plan,) = [u for u in updates if u["sessionUpdate"] == "plan"]
    assert [(e["content"], e["status"]) for e in plan["entries"]] == [
        ("Write tests", "completed"), ("Fix bug", "in_progress"), ("Ship", "pending")]


def test_task_tools_build_a_plan() -> None:
    _, updates = run("tasks")
    plans = [u for u in updates if u["sessionUpdate"] == "plan"]
    assert [(e["content"], e["status"]) for e in plans[-1]["entries"]] == [
        ("Write tests", "in_progress"), ("Ship", "pending")]
    assert {u["kind"] for u in updates if u["sessionUpdate"] == "tool_call"} == {"think"}


def test_mcp_tool_and_server_status() -> None:
    _, updates = run("mcp")
    (info,) = [u for u in updates if u["sessionUpdate"] == "session_info_update"]
    assert info["_meta"]["claudeCode"]["mcpServers"] == [{"name": "echo", "status": "connected"}]
    call = next(u for u in updates if u["sessionUpdate"] == "tool_call")
    assert call["kind"] == "other"
    done = [u for u in updates if u["sessionUpdate"] == "tool_call_update"][-1]
    assert done["status"] == "completed" and "mcp-echo:ping" in done["content"][0]["content"]["text"]
    assert done["rawOutput"]["structuredContent"] == {"result": "mcp-echo:ping"}
    refined = next(u for u in updates if u["sessionUpdate"] == "tool_call_update")
    assert refined["title"] == "echo: echo"


def test_interrupt_is_cancelled_and_partial_text_not_repeated() -> None:
    msgs = out_messages("interrupt")
    first_result = next(i for i, m in enumerate(msgs) if m["type"] == "result")
    tr = Translator()
    updates = acp([u for m in msgs[: first_result + 1] for u in tr.feed(m)])
    streamed = text_of(updates, "agent_message_chunk")
    assert streamed and streamed != "one two three four five six " * 20  # cut short
    assert translate.prompt_response(msgs[first_result], True)["stopReason"] == "cancelled"
    # Without a cancel from us, an aborted turn is an error, not a silent end_turn.
    with pytest.raises(RpcError):
        translate.prompt_response(msgs[first_result], False)
    # The process lived on: the next prompt got its answer.
    rest = acp([u for m in msgs[first_result + 1 :] for u in tr.feed(m)])
    assert text_of(rest, "agent_message_chunk") == "Yes, still here."


def test_set_model_echo_is_not_shown_and_model_change_is_observed() -> None:
    config = ClaudeConfig.from_cli(init_response("config"), {}, bypass=False, mode=None, model=None, effort=None)
    assert config.model == "default"
    _, updates = run("config", config)
    assert "Set model" not in text_of(updates, "agent_message_chunk")
    assert config.model == "sonnet" and config.mode == "acceptEdits"


def test_plan_mode_exit_is_switch_mode() -> None:
    _, updates = run("plan_mode")
    call = next(u for u in updates if u["sessionUpdate"] == "tool_call_update")
    assert call["kind"] == "switch_mode" and call["content"][0]["content"]["text"] == "1. create the file"
    assert [u["currentModeId"] for u in updates if u["sessionUpdate"] == "current_mode_update"] == ["plan", "default"]


def test_slash_command_output_is_shown() -> None:
    _, updates = run("slash")
    assert text_of(updates, "agent_message_chunk").startswith("## Context Usage")


def test_subagent_call() -> None:
    _, updates = run("subagent")
    call = next(u for u in updates if u["sessionUpdate"] == "tool_call_update")
    assert call["kind"] == "think" and call["title"] == "Look around"
    done = [u for u in updates if u["sessionUpdate"] == "tool_call_update"][-1]
    assert done["status"] == "completed" and done["content"][0]["content"]["text"] == "Subagent report."
    # The subagent's own prompt line (parent_tool_use_id set) is not shown as the user's.
    assert "user_message_chunk" not in kinds(updates)


def test_subagent_traffic_is_tagged_with_its_parent() -> None:
    tr = Translator()
    msg = {"type": "assistant", "parent_tool_use_id": "toolu_p",
           "message": {"id": "m1", "content": [{"type": "text", "text": "inner"}]}}
    (event,) = tr.feed(msg)
    assert isinstance(event, ev.MessageChunk) and event.role == "agent"
    (u,) = acp([event])
    assert u["_meta"] == {
        "claudeCode": {"parentToolUseId": "toolu_p"},
        "bridge": {"parentToolCallId": "toolu_p"},
    }


def test_subagent_work_nests_under_its_agent_call() -> None:
    """Recorded with forwardSubagentText: the subagent says something, runs Bash (asking
    first), thinks and reports; every update of its own points at the Agent call."""
    tr = Translator()
    msgs = [m for d, m in load("subagent_tools") if d == "out" and m["type"] != "control_response"]
    updates: list[dict[str, Any]] = []
    asked: dict[str, Any] = {}
    for m in msgs:
        if m["type"] == "control_request" and m["request"]["subtype"] == "can_use_tool":
            req = m["request"]
            asked = to_acp.permission_request(
                permissions.request(req, tr.parent_of(req["tool_use_id"], req.get("agent_id"))))
        else:
            updates += acp(tr.feed(m))
    check("RequestPermissionRequest", {"sessionId": "s", **asked})
    parent = next(u for u in updates if u["sessionUpdate"] == "tool_call")["toolCallId"]
    agent = next(u for u in updates if u.get("toolCallId") == parent and u.get("title") == "Make a file")
    assert agent["kind"] == "think"
    nested = [
        u for u in updates if (u.get("_meta") or {}).get("bridge", {}).get("parentToolCallId") == parent
    ]
    # The subagent's text, its Bash call (announced and completed) and its thinking.
    assert text_of(nested, "agent_message_chunk") == "I will create it.Subagent report."
    assert text_of(nested, "agent_thought_chunk") == "It worked."
    bash = [u for u in nested if u.get("toolCallId") not in (None, parent)]
    assert {u["toolCallId"] for u in bash} == {"toolu_0003"}
    assert bash[0]["sessionUpdate"] == "tool_call" and bash[0]["kind"] == "execute"
    assert bash[-1]["status"] == "completed"
    # Its permission request names the same parent.
    tool_call = asked["toolCall"]
    assert isinstance(tool_call, dict) and tool_call["toolCallId"] == "toolu_0003"
    assert tool_call["_meta"] == {"bridge": {"parentToolCallId": parent}}
    # The Agent call itself: running once the subagent starts, completed with its report; the
    # main agent's own updates are not tagged.
    own = [u for u in updates if u.get("toolCallId") == parent]
    statuses = [u.get("status") for u in own if u.get("status")]
    assert statuses == ["pending", "in_progress", "completed"]
    started = next(u for u in own if u.get("status") == "in_progress")
    assert started["_meta"]["bridge"]["subagent"]["subagent_type"] == "general-purpose"
    assert all("parentToolCallId" not in (u.get("_meta") or {}).get("bridge", {}) for u in own)
    main_text = [u for u in updates if u["sessionUpdate"] == "agent_message_chunk" and u not in nested]
    assert "".join(u["content"]["text"] for u in main_text) == "All done."
    # The subagent's prompt (its own `user` line) is not shown as the user's.
    assert "user_message_chunk" not in kinds(updates)


@pytest.mark.parametrize(("result", "reason"), [
    ({"subtype": "success", "is_error": False, "stop_reason": "max_tokens"}, "max_tokens"),
    ({"subtype": "success", "is_error": False, "stop_reason": "refusal"}, "refusal"),
    ({"subtype": "error_max_turns", "is_error": True}, "max_turn_requests"),
    ({"subtype": "error_max_budget_usd", "is_error": True}, "max_turn_requests"),
    ({"subtype": "success", "is_error": False, "stop_reason": None}, "end_turn"),
])
def test_stop_reasons(result: dict[str, object], reason: str) -> None:
    assert translate.prompt_response(result, False)["stopReason"] == reason


def test_api_errors_become_rpc_errors() -> None:
    bad = {"subtype": "success", "is_error": True, "api_error_status": 400, "result": "API Error: 400 bad key"}
    with pytest.raises(RpcError) as err:
        translate.prompt_response(bad, False)
    assert err.value.code == INTERNAL_ERROR and "400 bad key" in err.value.message
    auth = {**bad, "api_error_status": 401, "result": "Invalid API key · Please run /login"}
    with pytest.raises(RpcError) as err:
        translate.prompt_response(auth, False)
    assert err.value.code == AUTH_REQUIRED


@pytest.mark.parametrize(("name", "reason"), [
    ("max_tokens", "max_tokens"), ("refusal", "refusal"), ("max_turns", "max_turn_requests")])
def test_recorded_stop_reasons(name: str, reason: str) -> None:
    # The CLI reports max_tokens (after retrying) and refusals as API errors: the model's
    # own stop reason, seen in the stream, says what really happened.
    tr, _ = run(name)
    assert translate.prompt_response(result_of(name), False, tr.model_stop)["stopReason"] == reason


def test_calls_cut_off_by_the_end_of_a_turn_are_marked_failed() -> None:
    tr = Translator()
    tool = {"type": "tool_use", "id": "toolu_x", "name": "Bash", "input": {"command": "sleep 100"}}
    tr.feed({"type": "assistant", "message": {"id": "m1", "content": [tool]}})
    out = tr.feed({"type": "result", "subtype": "error_during_execution", "is_error": True})
    assert out == [ev.ToolCallUpdate("toolu_x", status="failed")]
    assert acp(out) == [{"sessionUpdate": "tool_call_update", "toolCallId": "toolu_x", "status": "failed"}]
    assert tr.feed({"type": "result", "subtype": "success"}) == []


def test_compact_is_a_tool_call_for_most_clients() -> None:
    _, updates = run("compact")
    calls = [u for u in updates if str(u.get("toolCallId", "")).startswith("compact-")]
    assert calls[0]["sessionUpdate"] == "tool_call" and calls[0]["title"] == "Compact the conversation"
    assert calls[0]["status"] == "in_progress"
    assert [u.get("status") for u in calls if u.get("status")] == ["in_progress", "completed"]
    assert next(u for u in calls if "rawOutput" in u)["rawOutput"]["trigger"] == "manual"
    summary = calls[-1]["content"][0]["content"]["text"]
    assert "Summary: the user said hello." in summary
    assert "compaction_update" not in kinds(updates)
    # The CLI's "Compacted" notice and the summary are not shown as the user's words.
    assert "user_message_chunk" not in kinds(updates)


def test_compact_is_a_compaction_entity_for_clients_that_advertise_it() -> None:
    tr = Translator(compaction=True)
    updates = acp([u for m in out_messages("compact") for u in tr.feed(m)])
    entity = [u for u in updates if u["sessionUpdate"] == "compaction_update"]
    assert [u["status"] for u in entity] == ["in_progress", "completed", "completed"]
    assert len({u["compactionId"] for u in entity}) == 1
    assert "Summary: the user said hello." in entity[-1]["summary"][0]["text"]
    assert not [u for u in updates if str(u.get("toolCallId", "")).startswith("compact-")]


def test_a_failed_compaction() -> None:
    tr = Translator(compaction=True)
    tr.feed({"type": "system", "subtype": "status", "status": "compacting", "uuid": "u1"})
    (event,) = tr.feed({"type": "system", "subtype": "status", "status": None, "compact_result": "failed",
                        "compact_error": "Not enough messages to compact."})
    assert event == ev.Compaction("compact-u1", "failed", error="Not enough messages to compact.")
    (u,) = acp([event])
    assert u == {"sessionUpdate": "compaction_update", "compactionId": "compact-u1", "status": "failed",
                 "error": "Not enough messages to compact."}


def test_the_translator_speaks_in_core_events() -> None:
    """What `feed` returns are typed events; their ACP form comes from bridge/core/to_acp."""
    _, evs = events("bash_allow")
    start, refined, done = [e for e in evs if ev.tool_call_id(e) is not None]
    assert isinstance(start, ev.ToolCallStart) and (start.kind, start.status) == ("execute", "pending")
    assert start.raw_input == {}  # the first delta: input still empty
    assert isinstance(refined, ev.ToolCallUpdate) and refined.raw_input["command"] == refined.title
    assert isinstance(done, ev.ToolCallUpdate) and done.status == "completed" and done.raw_output["stdout"] == "created"
    assert all(isinstance(e, ev.MessageChunk) and e.role == "agent" for e in evs if ev.tool_call_id(e) is None
               and not isinstance(e, ev.Usage | ev.ModeChange | ev.ConfigOptionsChange | ev.SessionInfo))
    # The plan tools are plan events, the end of a turn a usage event with the cost.
    _, todo = events("todo")
    assert any(isinstance(e, ev.Plan) and e.entries for e in todo)
    _, text = events("text")
    (usage,) = [e for e in text if isinstance(e, ev.Usage) and e.cost is not None]
    assert usage.cost == ev.Cost(result_of("text")["total_cost_usd"], "USD")
    assert acp(evs) == run("bash_allow")[1]
