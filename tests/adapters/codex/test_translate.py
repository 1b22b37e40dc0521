"""The pure translator, replaying transcripts recorded from the real `codex app-server`."""

from __future__ import annotations

from adapters.codex import translate as codex_translate
from adapters.codex.translate import Translator, split_unified
from bridge.core import events as ev
from bridge.wire.types import JsonObj
from tests.adapters.codex.fixtures import acp, events, notifications, result_of, translate
from tests.adapters.codex.support import text_of, validate_update

WS = "/tmp/rec/ws"


def replay(item: JsonObj) -> list[JsonObj]:
    """A history item's events as the ACP updates a client gets."""
    return acp(codex_translate.replay(item))


def of(updates: list[JsonObj], kind: str) -> list[JsonObj]:
    return [u for u in updates if u["sessionUpdate"] == kind]


def test_text_answer_streams_message_chunks() -> None:
    updates = translate("text")
    chunks = of(updates, "agent_message_chunk")
    assert [c["content"]["text"] for c in chunks] == ["Hello fro", "m the fak", "e model"]
    assert {c["messageId"] for c in chunks} == {"msg_1"}
    # The completed item repeats the text: not sent twice.
    assert text_of(updates) == "Hello from the fake model"
    assert of(updates, "usage_update") == [{"sessionUpdate": "usage_update", "used": 49, "size": 121600}]


def test_reasoning_becomes_thought_chunks() -> None:
    updates = translate("reasoning")
    assert text_of(updates, "agent_thought_chunk") == "Let me think about it"
    assert text_of(updates) == "Thought done"
    assert updates.index(of(updates, "agent_thought_chunk")[-1]) < updates.index(
        of(updates, "agent_message_chunk")[0]
    )


def test_message_without_deltas_is_sent_whole() -> None:
    translator = Translator()
    item = {"type": "agentMessage", "id": "m", "text": "all at once"}
    updates = translator.notification("item/completed", {"item": item})
    assert updates == [ev.MessageChunk("agent", {"type": "text", "text": "all at once"}, "m")]
    assert acp(updates) == [
        {
            "sessionUpdate": "agent_message_chunk",
            "content": {"type": "text", "text": "all at once"},
            "messageId": "m",
        }
    ]


def test_reasoning_summary_parts_are_separated() -> None:
    translator = Translator()
    out = []
    for method, params in [
        ("item/reasoning/summaryPartAdded", {"itemId": "r", "summaryIndex": 0}),
        ("item/reasoning/summaryTextDelta", {"itemId": "r", "delta": "one"}),
        ("item/reasoning/summaryPartAdded", {"itemId": "r", "summaryIndex": 1}),
        ("item/reasoning/summaryTextDelta", {"itemId": "r", "delta": "two"}),
        ("item/completed", {"item": {"type": "reasoning", "id": "r", "summary": ["one", "two"]}}),
    ]:
        out += acp(translator.notification(method, params))
    assert text_of(out, "agent_thought_chunk") == "one\n\ntwo"


def test_approved_command_is_an_execute_tool_call() -> None:
    updates = translate("shell_accept")
    [start] = of(updates, "tool_call")
    assert start["toolCallId"] == "call_sh"
    assert start["kind"] == "execute"
    assert start["status"] == "in_progress"
    assert start["title"] == "touch created.txt && echo made-it"
    assert start["rawInput"]["cwd"] == WS
    assert start["_meta"] == {"bridge": {"toolName": "shell"}}  # for the bridge's tool metrics
    [end] = of(updates, "tool_call_update")
    assert end["status"] == "completed"
    assert end["content"] == [{"type": "content", "content": {"type": "text", "text": "```\nmade-it\n```"}}]
    assert end["rawOutput"]["exitCode"] == 0


def test_declined_command_fails() -> None:
    [end] = of(translate("shell_decline"), "tool_call_update")
    assert end["status"] == "failed"
    assert end["content"] == []


def test_command_kinds_come_from_codex_command_actions() -> None:
    updates = translate("shell_read")
    starts = {u["toolCallId"]: u for u in of(updates, "tool_call")}
    assert starts["call_cat"]["kind"] == "read"
    assert starts["call_cat"]["title"] == "Read hello.txt"
    assert starts["call_cat"]["locations"] == [{"path": f"{WS}/hello.txt"}]
    assert starts["call_rg"]["kind"] == "search"
    assert starts["call_rg"]["title"] == "Search hello in ."
    assert starts["call_slow"]["kind"] == "execute"


def test_command_output_streams_then_settles() -> None:
    updates = translate("shell_read")
    slow = [u for u in of(updates, "tool_call_update") if u["toolCallId"] == "call_slow"]
    live, final = slow[:-1], slow[-1]
    assert [u["content"][0]["content"]["text"] for u in live] == ["```\ntick2\n```", "```\ntick2\ntick3\n```"]
    # The completed item has the whole output (the first chunk came before any delta).
    assert final["status"] == "completed"
    assert final["content"][0]["content"]["text"] == "```\ntick1\ntick2\ntick3\n```"


def test_output_deltas_are_coalesced_per_batch() -> None:
    translator = Translator()
    for delta in ["a\n", "b\n", "c\n"]:
        assert (
            translator.notification("item/commandExecution/outputDelta", {"itemId": "x", "delta": delta})
            == []
        )
    [update] = acp(translator.flush())
    assert update == {
        "sessionUpdate": "tool_call_update",
        "toolCallId": "x",
        "content": [{"type": "content", "content": {"type": "text", "text": "```\na\nb\nc\n```"}}],
    }
    assert translator.flush() == []


def test_file_change_is_an_edit_with_diffs() -> None:
    updates = translate("patch")
    [start] = of(updates, "tool_call")
    assert start["kind"] == "edit"
    assert start["title"] == "Edit added.txt, hello.txt"
    diffs = [
        {"type": "diff", "path": f"{WS}/added.txt", "oldText": None, "newText": "brand new\n"},
        {"type": "diff", "path": f"{WS}/hello.txt", "oldText": "old line\n", "newText": "new line\n"},
    ]
    assert start["content"] == diffs
    assert start["locations"] == [{"path": f"{WS}/added.txt"}, {"path": f"{WS}/hello.txt"}]
    [end] = of(updates, "tool_call_update")
    assert end["status"] == "completed" and end["content"] == diffs


def test_delete_and_move() -> None:
    delete = {
        "type": "fileChange",
        "id": "d",
        "status": "completed",
        "changes": [{"path": "/w/a.txt", "kind": {"type": "delete"}, "diff": "gone\n"}],
    }
    move = {
        "type": "fileChange",
        "id": "m",
        "status": "completed",
        "changes": [
            {"path": "/w/b.txt", "kind": {"type": "update", "move_path": "/w/c.txt"}, "diff": "@@\n-x\n+y\n"}
        ],
    }
    [d_start, d_end] = replay(delete)
    assert (
        d_start["kind"] == "delete"
        and d_end["content"][0]["oldText"] == "gone\n"
        and d_end["content"][0]["newText"] == ""
    )
    [m_start, m_end] = replay(move)
    assert m_start["kind"] == "move" and m_start["title"] == "Move b.txt → c.txt"
    assert m_end["content"][0] == {"type": "diff", "path": "/w/c.txt", "oldText": "x\n", "newText": "y\n"}
    for update in (d_start, d_end, m_start, m_end):
        validate_update(update)


def test_split_unified_keeps_context_on_both_sides() -> None:
    diff = "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n keep\n-old\n+new\n tail\n\\ No newline at end of file\n"
    assert split_unified(diff) == ("keep\nold\ntail\n", "keep\nnew\ntail\n")


def test_mcp_tool_call() -> None:
    updates = translate("mcp")
    [start] = of(updates, "tool_call")
    assert start["title"] == "echo: echo" and start["rawInput"] == {"text": "ping"}
    assert start["_meta"] == {"bridge": {"toolName": "mcp__echo__echo"}}
    [end] = of(updates, "tool_call_update")
    assert end["status"] == "completed"
    assert end["content"] == [{"type": "content", "content": {"type": "text", "text": "mcp-echo:ping"}}]


def test_mcp_error_and_odd_content() -> None:
    failed = {
        "type": "mcpToolCall",
        "id": "e",
        "server": "s",
        "tool": "t",
        "status": "failed",
        "arguments": {},
        "error": {"message": "boom"},
    }
    odd = {
        "type": "mcpToolCall",
        "id": "o",
        "server": "s",
        "tool": "t",
        "status": "completed",
        "arguments": {},
        "result": {
            "content": [
                {"type": "image"},
                {"type": "widget", "x": 1},
                {"type": "resource_link", "uri": "file:///a", "name": "a", "extra": 1},
            ]
        },
    }
    [_, f_end] = replay(failed)
    assert f_end["status"] == "failed" and f_end["content"][0]["content"]["text"] == "boom"
    [_, o_end] = replay(odd)
    blocks = [c["content"] for c in o_end["content"]]
    assert blocks[0]["type"] == "text" and blocks[1]["type"] == "text"  # unusable: shown as JSON
    assert blocks[2] == {"type": "resource_link", "uri": "file:///a", "name": "a"}
    for update in (f_end, o_end):
        validate_update(update)


def test_plan_update() -> None:
    [plan] = of(translate("plan"), "plan")
    assert plan["entries"] == [
        {"content": "read code", "priority": "medium", "status": "completed"},
        {"content": "write fix", "priority": "medium", "status": "in_progress"},
    ]


def test_interrupted_and_failed_turns_keep_what_streamed() -> None:
    assert text_of(translate("interrupt")) == "slow "
    assert text_of(translate("failed")) == "partial"


def test_cut_off_turn_closes_open_tool_calls() -> None:
    translator = Translator()
    translate("shell_accept", translator, upto="item/commandExecution/requestApproval")
    assert translator.tool_call("call_sh") is not None
    assert translator.close_open_calls() == [ev.ToolCallUpdate("call_sh", status="failed")]
    assert translator.tool_call("call_sh") is None


def test_other_tool_items() -> None:
    web = {
        "type": "webSearch",
        "id": "w",
        "query": "acp spec",
        "action": {"type": "search", "query": "acp spec"},
    }
    page = {
        "type": "webSearch",
        "id": "p",
        "query": "",
        "action": {"type": "openPage", "url": "https://x.test/"},
    }
    image = {"type": "imageView", "id": "i", "path": "/w/shot.png"}
    dynamic = {
        "type": "dynamicToolCall",
        "id": "d",
        "tool": "lookup",
        "arguments": {"q": 1},
        "status": "completed",
        "success": False,
        "contentItems": [{"type": "inputText", "text": "nope"}],
    }
    starts = {}
    for item in (web, page, image, dynamic):
        updates = replay(item)
        for update in updates:
            validate_update(update)
        starts[item["id"]] = updates[0]
    assert (starts["w"]["kind"], starts["w"]["title"]) == ("fetch", "Search the web: acp spec")
    assert (starts["p"]["kind"], starts["p"]["title"]) == ("fetch", "Open https://x.test/")
    assert (starts["i"]["kind"], starts["i"]["locations"]) == ("read", [{"path": "/w/shot.png"}])
    assert replay(dynamic)[1]["status"] == "failed"
    assert replay({"type": "hookPrompt", "id": "h", "fragments": []}) == []


def test_usage_needs_a_context_window() -> None:
    translator = Translator()
    usage = {"total": {"totalTokens": 5}, "last": {"totalTokens": 5}, "modelContextWindow": None}
    assert translator.notification("thread/tokenUsage/updated", {"tokenUsage": usage}) == []


def test_thread_name_becomes_session_title() -> None:
    [event] = Translator().notification(
        "thread/name/updated", {"threadId": "t", "threadName": "Fix the bug"}
    )
    assert event == ev.SessionInfo(title="Fix the bug")
    [update] = acp([event])
    assert update == {"sessionUpdate": "session_info_update", "title": "Fix the bug"}
    # A name Codex clears is a title cleared (null), not a title left out.
    [cleared] = acp(Translator().notification("thread/name/updated", {"threadId": "t", "threadName": None}))
    assert cleared == {"sessionUpdate": "session_info_update", "title": None}
    validate_update(update)


def test_history_replay_from_items_list() -> None:
    page = result_of("resume", "thread/items/list")
    updates = [u for entry in page["data"] for u in replay(entry["item"])]
    for update in updates:
        validate_update(update)
    kinds = [u["sessionUpdate"] for u in updates]
    assert kinds == ["user_message_chunk", "tool_call", "tool_call_update", "agent_message_chunk"]
    assert text_of(updates, "user_message_chunk") == "first question"
    assert updates[2]["status"] == "completed" and "earlier" in updates[2]["content"][0]["content"]["text"]
    assert text_of(updates) == "first answer"


def test_replayed_user_images() -> None:
    item = {
        "type": "userMessage",
        "id": "u",
        "content": [
            {"type": "image", "url": "data:image/png;base64,AAAA"},
            {"type": "localImage", "path": "/w/pic.png"},
        ],
    }
    updates = replay(item)
    for update in updates:
        validate_update(update)
    assert updates[0]["content"] == {"type": "image", "mimeType": "image/png", "data": "AAAA"}
    assert updates[1]["content"] == {"type": "resource_link", "uri": "file:///w/pic.png", "name": "pic.png"}


def test_every_recorded_notification_translates_cleanly() -> None:
    for name in [
        "text",
        "reasoning",
        "shell_accept",
        "shell_decline",
        "shell_read",
        "patch",
        "mcp",
        "mcp_approval",
        "plan",
        "interrupt",
        "failed",
        "resume",
        "fork",
    ]:
        assert notifications(name)
        translate(name)  # validates every update


def test_compaction_is_a_tool_call_unless_the_client_asked_for_compaction_updates() -> None:
    """Recorded: a turn, then `thread/compact/start` (its own turn with a contextCompaction item)."""
    plain = [u for u in translate("compact") if "Compact" in str(u.get("title")) or u.get("toolCallId") in
             {x.get("toolCallId") for x in translate("compact") if x.get("title") == "Compact the conversation"}]
    assert (plain[0]["sessionUpdate"], plain[0]["status"]) == ("tool_call", "in_progress")
    assert plain[-1]["status"] == "completed"
    entity = [u for u in translate("compact", Translator(compaction=True)) if u["sessionUpdate"].startswith("compaction")]
    assert [u["status"] for u in entity] == ["in_progress", "completed"]
    assert len({u["compactionId"] for u in entity}) == 1
    assert not [u for u in translate("compact", Translator(compaction=True))
                if u.get("title") == "Compact the conversation"]


def test_the_translator_speaks_in_core_events() -> None:
    """What the translator returns are typed events; their ACP form comes from bridge/core/to_acp."""
    evs = events("shell_accept")
    starts = [e for e in evs if isinstance(e, ev.ToolCallStart)]
    ends = [e for e in evs if isinstance(e, ev.ToolCallUpdate) and e.status is not None]
    assert [s.tool_call_id for s in starts] == [e.tool_call_id for e in ends] == ["call_sh"]
    assert (starts[0].kind, starts[0].status) == ("execute", "in_progress")
    assert starts[0].meta == {"bridge": {"toolName": "shell"}}
    assert ends[0].status == "completed" and isinstance(ends[0].raw_output, dict)
    assert any(isinstance(e, ev.MessageChunk) and e.role == "agent" for e in evs)
    assert any(isinstance(e, ev.Usage) for e in evs)
    [plan] = [e for e in events("plan") if isinstance(e, ev.Plan)]
    assert plan.entries[0] == ev.PlanEntry("read code", "completed")
    assert acp(evs) == translate("shell_accept")
