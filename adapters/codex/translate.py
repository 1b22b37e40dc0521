"""Codex app-server notifications → ACP v1 `session/update` payloads. Pure: no I/O.

Codex speaks in thread *items* (`item/started` … deltas … `item/completed`); ACP speaks in
message chunks and tool calls. The mapping (notes/native-protocols.md §2.1, §5):

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

import json
import os
from typing import Any

from bridge.core import client_tools
from bridge.wire.types import JsonObj

LIVE_OUTPUT_TAIL = 16 * 1024
FINAL_OUTPUT_TAIL = 64 * 1024

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
        self._calls: dict[str, JsonObj] = {}  # live tool calls by item id, for approvals

    # -- live stream --------------------------------------------------------------------
    def notification(self, method: str, params: JsonObj) -> list[JsonObj]:
        handler = _HANDLERS.get(method)
        return handler(self, params) if handler is not None else []

    def flush(self) -> list[JsonObj]:
        """One `tool_call_update` per command whose output grew since the last flush."""
        out = [
            {"sessionUpdate": "tool_call_update", "toolCallId": item_id, "content": [_text(_fence(text))]}
            for item_id, text in ((i, self._output.get(i, "")) for i in self._dirty)
        ]
        self._dirty.clear()
        return out

    def close_open_calls(self) -> list[JsonObj]:
        """End the tool calls a cut-off turn left open (an interrupted turn does not always
        complete its items), so no client keeps showing them as running."""
        out = [
            {"sessionUpdate": "tool_call_update", "toolCallId": i, "status": "failed"} for i in self._calls
        ]
        self._calls.clear()
        self._output.clear()
        self._dirty.clear()
        return out

    def tool_call(self, item_id: str) -> JsonObj | None:
        """The ACP view (`ToolCallUpdate` fields) of a running tool call, for permission prompts."""
        return self._calls.get(item_id)

    def find_mcp_call(self, server: str, tool: str) -> str | None:
        for item_id, call in reversed(self._calls.items()):
            if call.get("_mcp") == (server, tool):
                return item_id
        return None

    def _item_started(self, params: JsonObj) -> list[JsonObj]:
        item = params.get("item") or {}
        if self.compaction and item.get("type") == "contextCompaction":
            return [compaction_update(item, "in_progress")]
        start = tool_start(item)
        if start is None:
            return []
        item_id = start["toolCallId"]
        view = {k: v for k, v in start.items() if k != "sessionUpdate"}
        if item.get("type") == "mcpToolCall":
            view["_mcp"] = (item.get("server"), item.get("tool"))
        self._calls[item_id] = view
        return [start]

    def _item_completed(self, params: JsonObj) -> list[JsonObj]:
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
        end = tool_end(item)
        if end is None:
            return []
        if known is None:  # completed without a start (e.g. a failed spawn): open it first
            start = tool_start(item)
            return [start, end] if start is not None else [end]
        return [end]

    def _message_delta(self, params: JsonObj) -> list[JsonObj]:
        item_id = str(params.get("itemId", ""))
        self._streamed.add(item_id)
        return [_chunk("agent_message_chunk", item_id, str(params.get("delta", "")))]

    def _reasoning_delta(self, params: JsonObj) -> list[JsonObj]:
        item_id = str(params.get("itemId", ""))
        self._streamed.add(item_id)
        return [_chunk("agent_thought_chunk", item_id, str(params.get("delta", "")))]

    def _summary_part(self, params: JsonObj) -> list[JsonObj]:
        # Reasoning summaries come in parts; separate them like paragraphs.
        item_id = str(params.get("itemId", ""))
        seen = self._summary_parts.get(item_id, 0)
        self._summary_parts[item_id] = seen + 1
        return [_chunk("agent_thought_chunk", item_id, "\n\n")] if seen else []

    def _output_delta(self, params: JsonObj) -> list[JsonObj]:
        item_id = str(params.get("itemId", ""))
        text = self._output.get(item_id, "") + str(params.get("delta", ""))
        self._output[item_id] = text[-LIVE_OUTPUT_TAIL:]
        self._dirty[item_id] = None
        return []

    def _plan(self, params: JsonObj) -> list[JsonObj]:
        entries = [
            {
                "content": str(step.get("step", "")),
                "priority": "medium",
                "status": _PLAN_STATUS.get(str(step.get("status")), "pending"),
            }
            for step in params.get("plan") or []
        ]
        return [{"sessionUpdate": "plan", "entries": entries}]

    def _usage(self, params: JsonObj) -> list[JsonObj]:
        usage = params.get("tokenUsage") or {}
        size = usage.get("modelContextWindow")
        last = usage.get("last") or {}
        if not isinstance(size, int):
            return []
        # `last` is the latest model call: its input is the whole context sent, so input +
        # output approximates what the context holds now.
        used = int(last.get("totalTokens") or 0)
        return [{"sessionUpdate": "usage_update", "used": max(used, 0), "size": max(size, 0)}]

    def _name(self, params: JsonObj) -> list[JsonObj]:
        name = params.get("threadName")
        return [{"sessionUpdate": "session_info_update", "title": name if isinstance(name, str) else None}]


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
def replay(item: JsonObj) -> list[JsonObj]:
    """A finished item from `thread/items/list` as the updates a live run would have left."""
    if item.get("type") == "userMessage":
        return user_chunks(item)
    if item.get("type") in ("agentMessage", "reasoning"):
        return message_chunks(item)
    start, end = tool_start(item), tool_end(item)
    return [u for u in (start, end) if u is not None]


def user_chunks(item: JsonObj) -> list[JsonObj]:
    blocks = [b for b in (_user_block(p) for p in item.get("content") or []) if b is not None]
    message_id = str(item.get("id"))
    return [{"sessionUpdate": "user_message_chunk", "messageId": message_id, "content": b} for b in blocks]


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


def message_chunks(item: JsonObj) -> list[JsonObj]:
    item_id = str(item.get("id", ""))
    if item.get("type") == "agentMessage":
        text = item.get("text") or ""
        return [_chunk("agent_message_chunk", item_id, text)] if text else []
    parts = item.get("summary") or item.get("content") or []
    text = "\n\n".join(str(p) for p in parts if p)
    return [_chunk("agent_thought_chunk", item_id, text)] if text else []


def _chunk(kind: str, message_id: str, text: str) -> JsonObj:
    return {"sessionUpdate": kind, "messageId": message_id, "content": {"type": "text", "text": text}}


# -- tool items ------------------------------------------------------------------------------
def tool_start(item: JsonObj) -> JsonObj | None:
    """`tool_call` for an item that is a tool in ACP terms, else None."""
    describe = _DESCRIBE.get(str(item.get("type")))
    if describe is None:
        return None
    call: JsonObj = {"sessionUpdate": "tool_call", "toolCallId": str(item.get("id", ""))}
    call.update(describe(item))
    # Always opened as running; a replayed or already finished item is closed by `tool_end`.
    call["status"] = "in_progress"
    # The tool's name as the model called it, for the bridge's per-tool metrics.
    call["_meta"] = {"bridge": {"toolName": _tool_name(item)}}
    return call


def _tool_name(item: JsonObj) -> str:
    kind = str(item.get("type"))
    if kind == "mcpToolCall":
        return f"mcp__{item.get('server')}__{item.get('tool')}"
    if kind == "dynamicToolCall":
        return str(item.get("tool"))
    return _TOOL_NAMES.get(kind, kind)


_TOOL_NAMES = {
    "commandExecution": "shell",
    "fileChange": "apply_patch",
    "webSearch": "web_search",
    "imageView": "view_image",
    "collabAgentToolCall": "agents",
    "contextCompaction": "compact",
}


def tool_end(item: JsonObj) -> JsonObj | None:
    kind = str(item.get("type"))
    if kind not in _DESCRIBE:
        return None
    update: JsonObj = {"sessionUpdate": "tool_call_update", "toolCallId": str(item.get("id", ""))}
    status = item.get("status")
    update["status"] = "failed" if status in ("failed", "declined") or item.get("error") else "completed"
    if kind == "commandExecution":
        output = item.get("aggregatedOutput") or ""
        update["content"] = [_text(_fence(_tail(output, FINAL_OUTPUT_TAIL)))] if output else []
        update["rawOutput"] = {
            k: item.get(k) for k in ("exitCode", "durationMs", "status") if item.get(k) is not None
        }
    elif kind == "fileChange":
        update["content"] = [_diff(c) for c in item.get("changes") or []]
    elif kind == "mcpToolCall":
        result, error = item.get("result"), item.get("error")
        if error:
            message = error.get("message", error) if isinstance(error, dict) else error
            update["content"] = [_text(str(message))]
            update["rawOutput"] = {"error": error}
        elif isinstance(result, dict):
            blocks = result.get("content") or []
            update["content"] = [{"type": "content", "content": _mcp_block(b)} for b in blocks]
            update["rawOutput"] = result
    elif kind == "dynamicToolCall":
        texts = [c.get("text", "") for c in item.get("contentItems") or [] if c.get("type") == "inputText"]
        update["content"] = [_text(t) for t in texts]
        if item.get("success") is False:
            update["status"] = "failed"
    return update


def _command(item: JsonObj) -> JsonObj:
    actions = [a for a in item.get("commandActions") or [] if isinstance(a, dict)]
    kinds = {a.get("type") for a in actions}
    text = " && ".join(str(a.get("command", "")) for a in actions) or str(item.get("command", ""))
    locations = [{"path": a["path"]} for a in actions if a.get("type") == "read" and a.get("path")]
    if actions and kinds == {"read"}:
        kind, title = "read", "Read " + ", ".join(str(a.get("name") or a.get("path")) for a in actions)
    elif actions and kinds <= {"search", "listFiles", "read"}:
        kind, title = "search", _search_title(actions)
    else:
        kind, title = "execute", text
    raw = {"command": item.get("command"), "cwd": item.get("cwd"), "commandActions": actions}
    return {"title": title, "kind": kind, "locations": locations, "rawInput": raw}


def _search_title(actions: list[JsonObj]) -> str:
    parts = []
    for a in actions:
        where = f" in {a['path']}" if a.get("path") else ""
        if a.get("type") == "search":
            parts.append(f"Search {a.get('query') or a.get('command')}{where}")
        elif a.get("type") == "listFiles":
            parts.append(f"List {a.get('path') or '.'}")
        else:
            parts.append(f"Read {a.get('name') or a.get('path')}")
    return "; ".join(parts)


def _file_change(item: JsonObj) -> JsonObj:
    changes = [c for c in item.get("changes") or [] if isinstance(c, dict)]
    kinds = {(c.get("kind") or {}).get("type") for c in changes}
    moved = [c for c in changes if (c.get("kind") or {}).get("move_path")]
    names = ", ".join(os.path.basename(str(c.get("path", ""))) for c in changes)
    if kinds == {"delete"}:
        kind, verb = "delete", "Delete"
    elif len(changes) == 1 and moved:
        kind, verb = "move", "Move"
        names = f"{names} → {os.path.basename(str(moved[0]['kind']['move_path']))}"
    else:
        kind, verb = "edit", "Add" if kinds == {"add"} else "Edit"
    return {
        "title": f"{verb} {names}".strip(),
        "kind": kind,
        "locations": [{"path": str(c.get("path"))} for c in changes],
        # The diffs are known before the change is applied: show them while approval is asked.
        "content": [_diff(c) for c in changes],
        "rawInput": {"changes": changes},
    }


def _mcp(item: JsonObj) -> JsonObj:
    return {
        "title": f"{item.get('server')}: {item.get('tool')}",
        "kind": "read" if item.get("readOnlyHint") else "other",
        "rawInput": item.get("arguments"),
        # The bridge's own client tools (spec/client-tools.md): a read, an edit with its diff.
        **client_tools.describe(str(item.get("server")), str(item.get("tool")), item.get("arguments")),
    }


def _web(item: JsonObj) -> JsonObj:
    action = item.get("action") or {}
    if action.get("type") in ("openPage", "findInPage") and action.get("url"):
        title = f"Open {action['url']}"
    else:
        title = f"Search the web: {item.get('query') or action.get('query') or ''}".strip()
    return {"title": title, "kind": "fetch", "rawInput": {"query": item.get("query"), "action": action}}


def _other(title_key: str, input_key: str, prefix: str = "") -> Any:
    def describe(item: JsonObj) -> JsonObj:
        return {"title": f"{prefix}{item.get(title_key)}", "kind": "other", "rawInput": item.get(input_key)}

    return describe


_DESCRIBE = {
    "commandExecution": _command,
    "fileChange": _file_change,
    "mcpToolCall": _mcp,
    "webSearch": _web,
    "dynamicToolCall": _other("tool", "arguments"),
    "imageView": lambda i: {
        "title": f"View {os.path.basename(str(i.get('path')))}",
        "kind": "read",
        "locations": [{"path": str(i.get("path"))}],
    },
    "collabAgentToolCall": _other("tool", "prompt", prefix="Agents: "),
    "contextCompaction": lambda i: {"title": "Compact the conversation", "kind": "think"},
}


# -- content helpers ---------------------------------------------------------------------------
def _text(text: str) -> JsonObj:
    return {"type": "content", "content": {"type": "text", "text": text}}


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"[… {len(text) - limit} characters cut]\n" + text[-limit:]


def _fence(text: str) -> str:
    """Fence output as a code block, with a fence longer than any backtick run inside."""
    run, longest = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text.rstrip(chr(10))}\n{fence}"


def _diff(change: JsonObj) -> JsonObj:
    kind = change.get("kind") or {}
    path, diff = str(change.get("path", "")), str(change.get("diff", ""))
    if kind.get("type") == "add":
        old, new = None, diff
    elif kind.get("type") == "delete":
        old, new = diff, ""
    else:
        old, new = split_unified(diff)
        path = str(kind.get("move_path") or path)
    return {"type": "diff", "path": path, "oldText": old, "newText": new}


def split_unified(diff: str) -> tuple[str, str]:
    """Old and new text of the hunks of a unified diff (context lines go to both)."""
    old: list[str] = []
    new: list[str] = []
    for line in diff.splitlines(keepends=True):
        if line.startswith(("@@", "--- ", "+++ ", "\\")):
            continue
        tag, body = line[:1], line[1:]
        if tag in (" ", "-"):
            old.append(body)
        if tag in (" ", "+"):
            new.append(body)
    return "".join(old), "".join(new)


def _mcp_block(block: Any) -> JsonObj:
    """An MCP content block as an ACP one: the shapes match, but keep only the fields ACP
    knows, and fall back to the JSON text for anything else."""
    if isinstance(block, dict):
        fields = _MCP_FIELDS.get(str(block.get("type")))
        if fields is not None and all(block.get(k) is not None for k in fields[0]):
            keep = fields[0] + fields[1]
            return {"type": block["type"], **{k: block[k] for k in keep if block.get(k) is not None}}
    return {"type": "text", "text": json.dumps(block)}


# type → (required fields, optional fields)
_MCP_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text": (("text",), ()),
    "image": (("data", "mimeType"), ()),
    "audio": (("data", "mimeType"), ()),
    "resource_link": (("uri", "name"), ("title", "description", "mimeType", "size")),
    "resource": (("resource",), ()),
}


def compaction_update(item: JsonObj, status: str) -> JsonObj:
    """A `contextCompaction` item as ACP's unstable `compaction_update` (Codex keeps the
    summary to itself, so none is given)."""
    return {"sessionUpdate": "compaction_update", "compactionId": str(item.get("id", "")), "status": status}
