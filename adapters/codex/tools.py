"""Codex thread items as tool-call events (bridge/core/events.py): a call's start
(`ToolCallStart`) and end (`ToolCallUpdate`), by item type — commands, file changes with ACP `diff` content, MCP and
dynamic tool calls, web searches — and the bounded output they carry. Pure: no I/O.

Split from adapters/codex/translate.py (the notification stream and its messages), which
calls these for `item/started` and `item/completed`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from bridge.core import client_tools
from bridge.core import events as ev
from bridge.wire.types import JsonObj

LIVE_OUTPUT_TAIL = 16 * 1024
FINAL_OUTPUT_TAIL = 64 * 1024


def tool_start(item: JsonObj) -> ev.ToolCallStart | None:
    """The start of a call for an item that is a tool in ACP terms, else None."""
    describe = _DESCRIBE.get(str(item.get("type")))
    if describe is None:
        return None
    return ev.ToolCallStart(
        str(item.get("id", "")),
        # Always opened as running; a replayed or already finished item is closed by `tool_end`.
        status="in_progress",
        # The tool's name as the model called it, for the bridge's per-tool metrics.
        meta={"bridge": {"toolName": _tool_name(item)}},
        **describe(item),
    )


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


def tool_end(item: JsonObj) -> ev.ToolCallUpdate | None:
    kind = str(item.get("type"))
    if kind not in _DESCRIBE:
        return None
    update: JsonObj = {}  # the ToolCallUpdate's fields
    status = item.get("status")
    update["status"] = "failed" if status in ("failed", "declined") or item.get("error") else "completed"
    if kind == "commandExecution":
        output = item.get("aggregatedOutput") or ""
        update["content"] = [_text(_fence(_tail(output, FINAL_OUTPUT_TAIL)))] if output else []
        update["raw_output"] = {
            k: item.get(k) for k in ("exitCode", "durationMs", "status") if item.get(k) is not None
        }
    elif kind == "fileChange":
        update["content"] = [_diff(c) for c in item.get("changes") or []]
    elif kind == "mcpToolCall":
        result, error = item.get("result"), item.get("error")
        if error:
            message = error.get("message", error) if isinstance(error, dict) else error
            update["content"] = [_text(str(message))]
            update["raw_output"] = {"error": error}
        elif isinstance(result, dict):
            blocks = result.get("content") or []
            update["content"] = [{"type": "content", "content": _mcp_block(b)} for b in blocks]
            update["raw_output"] = result
    elif kind == "dynamicToolCall":
        texts = [c.get("text", "") for c in item.get("contentItems") or [] if c.get("type") == "inputText"]
        update["content"] = [_text(t) for t in texts]
        if item.get("success") is False:
            update["status"] = "failed"
    return ev.ToolCallUpdate(str(item.get("id", "")), **update)


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
    return {"title": title, "kind": kind, "locations": locations, "raw_input": raw}


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
        "raw_input": {"changes": changes},
    }


def _mcp(item: JsonObj) -> JsonObj:
    return {
        "title": f"{item.get('server')}: {item.get('tool')}",
        "kind": "read" if item.get("readOnlyHint") else "other",
        "raw_input": item.get("arguments"),
        # The bridge's own client tools (spec/client-tools.md): a read, an edit with its diff.
        **client_tools.describe(str(item.get("server")), str(item.get("tool")), item.get("arguments")),
    }


def _web(item: JsonObj) -> JsonObj:
    action = item.get("action") or {}
    if action.get("type") in ("openPage", "findInPage") and action.get("url"):
        title = f"Open {action['url']}"
    else:
        title = f"Search the web: {item.get('query') or action.get('query') or ''}".strip()
    return {"title": title, "kind": "fetch", "raw_input": {"query": item.get("query"), "action": action}}


def _other(title_key: str, input_key: str, prefix: str = "") -> Any:
    def describe(item: JsonObj) -> JsonObj:
        return {"title": f"{prefix}{item.get(title_key)}", "kind": "other", "raw_input": item.get(input_key)}

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
