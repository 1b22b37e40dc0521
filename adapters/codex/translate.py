"""Codex app-server notifications → core events (bridge/core/events.py). Pure: no I/O.

Codex speaks in thread *items* (`item/started` … deltas … `item/completed`); the core (and
ACP, bridge/core/to_acp.py) in message chunks and tool calls. The mapping
(notes/native-protocols.md §2.1, §5), in ACP's names:

- `agentMessage` deltas → `agent_message_chunk`, reasoning deltas → `agent_thought_chunk`
  (the item id is the ACP `messageId`); an item that completes without deltas is sent whole;
- `commandExecution` → `tool_call` kind execute, or read/search from Codex's own parse of the
  command (`commandActions`); its output streams into the call's content;
- `fileChange` → kind edit (delete/move) with ACP `diff` content; `mcpToolCall`,
  `dynamicToolCall`, `webSearch`, `imageView`, `contextCompaction` → tool calls;
- `turn/plan/updated` → `plan`; `thread/tokenUsage/updated` → `usage_update`;
  `thread/name/updated` → `session_info_update`.

Command output is *coalesced*: ACP replaces a tool call's `content` on each update, so only
the latest state matters. Deltas mark the call dirty and `flush()` (called once per batch of
agent output) emits one update per dirty call, with a bounded tail of the output.
"""

from __future__ import annotations

import os
from typing import Literal

# Tool-call rendering lives in adapters/codex/tools.py; these names are also read here.
from adapters.codex.tools import FINAL_OUTPUT_TAIL as FINAL_OUTPUT_TAIL
from adapters.codex.tools import LIVE_OUTPUT_TAIL as LIVE_OUTPUT_TAIL
from adapters.codex.tools import _fence, _text, tool_end, tool_start
from adapters.codex.tools import split_unified as split_unified
from bridge.core import events as ev
from bridge.wire.types import JsonObj

_PLAN_STATUS = {"pending": "pending", "inProgress": "in_progress", "completed": "completed"}


class Translator:
    """Per-session translation state: which items streamed deltas, live command output."""

    def __init__(self, *, compaction: bool = False) -> None:
        # The client advertised ACP's unstable `session.compaction`: a `contextCompaction` item
        # is a `compaction_update` entity for it, not a tool call.
        self.compaction = compaction
        self._streamed: set[str] = set()
        self._summary_parts: dict[str, int] = {}
        self._output: dict[str, str] = {}
        self._dirty: dict[str, None] = {}  # insertion-ordered set
        self._calls: dict[str, ev.ToolCallStart] = {}  # live tool calls by item id, for approvals
        self._mcp: dict[str, tuple[object, object]] = {}  # live MCP calls' (server, tool)

    # -- live stream --------------------------------------------------------------------
    def notification(self, method: str, params: JsonObj) -> list[ev.CoreEvent]:
        handler = _HANDLERS.get(method)
        return handler(self, params) if handler is not None else []

    def flush(self) -> list[ev.CoreEvent]:
        """One tool-call update per command whose output grew since the last flush."""
        out: list[ev.CoreEvent] = [
            ev.ToolCallUpdate(item_id, content=[_text(_fence(text))])
            for item_id, text in ((i, self._output.get(i, "")) for i in self._dirty)
        ]
        self._dirty.clear()
        return out

    def close_open_calls(self) -> list[ev.CoreEvent]:
        """End the tool calls a cut-off turn left open (an interrupted turn does not always
        complete its items), so no client keeps showing them as running."""
        out: list[ev.CoreEvent] = [ev.ToolCallUpdate(i, status="failed") for i in self._calls]
        self._calls.clear()
        self._mcp.clear()
        self._output.clear()
        self._dirty.clear()
        return out

    def tool_call(self, item_id: str) -> ev.ToolCallStart | None:
        """How a running tool call started, for permission prompts."""
        return self._calls.get(item_id)

    def find_mcp_call(self, server: str, tool: str) -> str | None:
        for item_id, call in reversed(self._mcp.items()):
            if call == (server, tool):
                return item_id
        return None

    def _item_started(self, params: JsonObj) -> list[ev.CoreEvent]:
        item = params.get("item") or {}
        if self.compaction and item.get("type") == "contextCompaction":
            return [compaction_update(item, "in_progress")]
        start = tool_start(item)
        if start is None:
            return []
        self._calls[start.tool_call_id] = start
        if item.get("type") == "mcpToolCall":
            self._mcp[start.tool_call_id] = (item.get("server"), item.get("tool"))
        return [start]

    def _item_completed(self, params: JsonObj) -> list[ev.CoreEvent]:
        item = params.get("item") or {}
        item_id = str(item.get("id", ""))
        kind = item.get("type")
        if self.compaction and kind == "contextCompaction":
            return [compaction_update(item, "completed")]
        if kind in ("agentMessage", "reasoning"):
            streamed = item_id in self._streamed
            self._streamed.discard(item_id)
            self._summary_parts.pop(item_id, None)
            return [] if streamed else message_chunks(item)
        self._output.pop(item_id, None)
        self._dirty.pop(item_id, None)
        known = self._calls.pop(item_id, None)
        self._mcp.pop(item_id, None)
        end = tool_end(item)
        if end is None:
            return []
        if known is None:  # completed without a start (e.g. a failed spawn): open it first
            start = tool_start(item)
            return [start, end] if start is not None else [end]
        return [end]

    def _message_delta(self, params: JsonObj) -> list[ev.CoreEvent]:
        item_id = str(params.get("itemId", ""))
        self._streamed.add(item_id)
        return [_chunk("agent", item_id, str(params.get("delta", "")))]

    def _reasoning_delta(self, params: JsonObj) -> list[ev.CoreEvent]:
        item_id = str(params.get("itemId", ""))
        self._streamed.add(item_id)
        return [_chunk("thought", item_id, str(params.get("delta", "")))]

    def _summary_part(self, params: JsonObj) -> list[ev.CoreEvent]:
        # Reasoning summaries come in parts; separate them like paragraphs.
        item_id = str(params.get("itemId", ""))
        seen = self._summary_parts.get(item_id, 0)
        self._summary_parts[item_id] = seen + 1
        return [_chunk("thought", item_id, "\n\n")] if seen else []

    def _output_delta(self, params: JsonObj) -> list[ev.CoreEvent]:
        item_id = str(params.get("itemId", ""))
        text = self._output.get(item_id, "") + str(params.get("delta", ""))
        self._output[item_id] = text[-LIVE_OUTPUT_TAIL:]
        self._dirty[item_id] = None
        return []

    def _plan(self, params: JsonObj) -> list[ev.CoreEvent]:
        entries = tuple(
            ev.PlanEntry(str(step.get("step", "")), _PLAN_STATUS.get(str(step.get("status")), "pending"))
            for step in params.get("plan") or []
        )
        return [ev.Plan(entries)]

    def _usage(self, params: JsonObj) -> list[ev.CoreEvent]:
        usage = params.get("tokenUsage") or {}
        size = usage.get("modelContextWindow")
        last = usage.get("last") or {}
        if not isinstance(size, int):
            return []
        # `last` is the latest model call: its input is the whole context sent, so input +
        # output approximates what the context holds now.
        used = int(last.get("totalTokens") or 0)
        return [ev.Usage(max(used, 0), max(size, 0))]

    def _name(self, params: JsonObj) -> list[ev.CoreEvent]:
        name = params.get("threadName")
        return [ev.SessionInfo(title=name if isinstance(name, str) else None)]


_HANDLERS = {
    "item/started": Translator._item_started,
    "item/completed": Translator._item_completed,
    "item/agentMessage/delta": Translator._message_delta,
    "item/reasoning/summaryTextDelta": Translator._reasoning_delta,
    "item/reasoning/textDelta": Translator._reasoning_delta,
    "item/reasoning/summaryPartAdded": Translator._summary_part,
    "item/commandExecution/outputDelta": Translator._output_delta,
    "turn/plan/updated": Translator._plan,
    "thread/tokenUsage/updated": Translator._usage,
    "thread/name/updated": Translator._name,
}


# -- history replay (session/load) ---------------------------------------------------------
def replay(item: JsonObj) -> list[ev.CoreEvent]:
    """A finished item from `thread/items/list` as the events a live run would have left."""
    if item.get("type") == "userMessage":
        return user_chunks(item)
    if item.get("type") in ("agentMessage", "reasoning"):
        return message_chunks(item)
    start, end = tool_start(item), tool_end(item)
    return [u for u in (start, end) if u is not None]


def user_chunks(item: JsonObj) -> list[ev.CoreEvent]:
    blocks = [b for b in (_user_block(p) for p in item.get("content") or []) if b is not None]
    message_id = str(item.get("id"))
    return [ev.MessageChunk("user", b, message_id) for b in blocks]


def _user_block(part: JsonObj) -> JsonObj | None:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "image" and isinstance(part.get("url"), str):
        url = part["url"]
        if url.startswith("data:") and ";base64," in url:
            mime, data = url[5:].split(";base64,", 1)
            return {"type": "image", "mimeType": mime, "data": data}
        return {"type": "resource_link", "uri": url, "name": os.path.basename(url) or url}
    if kind in ("localImage", "mention", "skill") and isinstance(part.get("path"), str):
        path = part["path"]
        name = part.get("name") or os.path.basename(path)
        return {"type": "resource_link", "uri": f"file://{path}", "name": name}
    return None


def message_chunks(item: JsonObj) -> list[ev.CoreEvent]:
    item_id = str(item.get("id", ""))
    if item.get("type") == "agentMessage":
        text = item.get("text") or ""
        return [_chunk("agent", item_id, text)] if text else []
    parts = item.get("summary") or item.get("content") or []
    text = "\n\n".join(str(p) for p in parts if p)
    return [_chunk("thought", item_id, text)] if text else []


def _chunk(role: Literal["agent", "thought"], message_id: str, text: str) -> ev.MessageChunk:
    return ev.MessageChunk(role, {"type": "text", "text": text}, message_id)


# -- tool items ------------------------------------------------------------------------------
def compaction_update(item: JsonObj, status: str) -> ev.Compaction:
    """A `contextCompaction` item as ACP's unstable `compaction_update` (Codex keeps the
    summary to itself, so none is given)."""
    return ev.Compaction(str(item.get("id", "")), status)
