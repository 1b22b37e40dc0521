"""Claude Code tools → ACP tool calls (pure).

`describe` turns a `tool_use` block into the ACP fields a client renders before the tool
runs (title, kind, locations, a diff for edits); `result` turns the `tool_result` the CLI
reports afterwards (plus its structured `tool_use_result`) into the final status and
content. Tool names and input fields are the CLI's own (2.1.x `sdk-tools.d.ts`); unknown
tools, MCP tools included, become kind `other` with their raw input kept.
"""

from __future__ import annotations

from typing import Any

from bridge.core import client_tools
from bridge.wire.types import JsonObj

KINDS = {
    "Agent": "think", "Task": "think",
    "TaskCreate": "think", "TaskUpdate": "think", "TaskList": "think", "TaskGet": "think",
    "TaskStop": "think", "TaskOutput": "read",
    "Bash": "execute", "BashOutput": "execute", "KillShell": "execute",
    "Read": "read", "NotebookRead": "read",
    "Write": "edit", "Edit": "edit", "MultiEdit": "edit", "NotebookEdit": "edit",
    "Glob": "search", "Grep": "search", "LS": "search", "ToolSearch": "search",
    "WebFetch": "fetch", "WebSearch": "fetch",
    "ExitPlanMode": "switch_mode", "EnterPlanMode": "switch_mode",
}

# Tools whose meaning is a file path: their calls carry ACP `locations` for follow-along.
_PATH_KEYS = ("file_path", "notebook_path", "path")


def describe(name: str, tool_input: JsonObj) -> JsonObj:
    """title / kind / locations / content of a tool call, from its name and full input."""
    i = tool_input if isinstance(tool_input, dict) else {}
    out: JsonObj = {"title": _title(name, i), "kind": KINDS.get(name, "other")}
    path = next((i[k] for k in _PATH_KEYS if isinstance(i.get(k), str)), None)
    if path and out["kind"] in ("read", "edit", "search"):
        loc: JsonObj = {"path": path}
        if name == "Read" and isinstance(i.get("offset"), int):
            loc["line"] = max(i["offset"], 0)
        out["locations"] = [loc]
    content = _input_content(name, i)
    if content:
        out["content"] = content
    if name.startswith("mcp__"):
        # The bridge's own client tools (spec/client-tools.md): a read, an edit with its diff.
        server, _, tool = name.removeprefix("mcp__").partition("__")
        out.update(client_tools.describe(server, tool, i))
    return out


def _title(name: str, i: JsonObj) -> str:
    s = _s
    if name == "Bash":
        return s(i.get("command")) or "Run a command"
    if name in ("Read", "Write", "Edit", "MultiEdit"):
        verb = {"Read": "Read", "Write": "Write", "Edit": "Edit", "MultiEdit": "Edit"}[name]
        return f"{verb} {s(i.get('file_path'))}".strip()
    if name == "NotebookEdit":
        return f"Edit notebook {s(i.get('notebook_path'))}".strip()
    if name == "Glob":
        where = f" in {i['path']}" if isinstance(i.get("path"), str) else ""
        return f"Find {s(i.get('pattern'))}{where}"
    if name == "Grep":
        where = f" {i['path']}" if isinstance(i.get("path"), str) else ""
        return f"grep {s(i.get('pattern'))!r}{where}"
    if name == "WebFetch":
        return f"Fetch {s(i.get('url'))}"
    if name == "WebSearch":
        return f"Search the web: {s(i.get('query'))}"
    if name in ("Agent", "Task"):
        return s(i.get("description")) or "Subagent"
    if name == "TaskCreate":
        return f"Add task: {s(i.get('subject'))}"
    if name == "TaskUpdate":
        return f"Update task #{s(i.get('taskId'))}"
    if name == "ExitPlanMode":
        return "Ready to code?"
    if name == "EnterPlanMode":
        return "Switch to plan mode"
    if name == "Skill":
        return f"Skill: {s(i.get('skill') or i.get('command'))}"
    if name.startswith("mcp__"):
        _, _, rest = name.partition("mcp__")
        server, _, tool = rest.partition("__")
        return f"{server}: {tool}" if tool else rest
    return name


def _input_content(name: str, i: JsonObj) -> list[JsonObj]:
    if name == "Write" and isinstance(i.get("file_path"), str):
        return [_diff(i["file_path"], None, _s(i.get("content")))]
    if name == "Edit" and isinstance(i.get("file_path"), str):
        return [_diff(i["file_path"], _s(i.get("old_string")), _s(i.get("new_string")))]
    if name == "MultiEdit" and isinstance(i.get("file_path"), str):
        edits = [e for e in i.get("edits") or [] if isinstance(e, dict)]
        return [_diff(i["file_path"], _s(e.get("old_string")), _s(e.get("new_string"))) for e in edits]
    if name == "Bash" and isinstance(i.get("description"), str):
        return [_text(i["description"])]
    if name in ("Agent", "Task") and isinstance(i.get("prompt"), str):
        return [_text(i["prompt"])]
    if name == "ExitPlanMode" and isinstance(i.get("plan"), str):
        return [_text(i["plan"])]
    return []


def result(name: str, tool_input: JsonObj, block: JsonObj, structured: Any) -> JsonObj:
    """The `ToolCallUpdate` fields (bridge/core/events.py) for a finished tool: status,
    content, raw_output."""
    failed = bool(block.get("is_error"))
    out: JsonObj = {"status": "failed" if failed else "completed"}
    content = _result_blocks(block.get("content"))
    if not failed:
        diffs = _applied_diff(name, tool_input, structured)
        if diffs:
            content = diffs
        elif name == "Bash" and content:
            content = [_text(f"```console\n{_plain(block.get('content')).rstrip()}\n```")]
    if content:
        out["content"] = content
    out["raw_output"] = structured if structured is not None else block.get("content")
    return out


def _applied_diff(name: str, i: JsonObj, structured: Any) -> list[JsonObj]:
    """Whole-file diffs from what the CLI reports it did (more precise than the input)."""
    if not isinstance(structured, dict) or not isinstance(structured.get("filePath"), str):
        return []
    path = structured["filePath"]
    original = structured.get("originalFile")
    if name == "Write" and isinstance(structured.get("content"), str):
        return [_diff(path, original if isinstance(original, str) else None, structured["content"])]
    if name == "Edit" and isinstance(original, str):
        old, new = _s(structured.get("oldString")), _s(structured.get("newString"))
        if old and old in original:
            count = -1 if structured.get("replaceAll") else 1
            return [_diff(path, original, original.replace(old, new, count))]
    return []


def _result_blocks(content: Any) -> list[JsonObj]:
    if isinstance(content, str):
        return [_text(content)] if content else []
    out: list[JsonObj] = []
    for b in content if isinstance(content, list) else []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text" and isinstance(b.get("text"), str):
            out.append(_text(b["text"]))
        elif b.get("type") == "image" and isinstance(b.get("source"), dict):
            src = b["source"]
            if src.get("type") == "base64":
                image = {"type": "image", "data": src.get("data", ""), "mimeType": src.get("media_type", "")}
                out.append({"type": "content", "content": image})
    return out


def _plain(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
    return "\n".join(parts)


def _diff(path: str, old: str | None, new: str) -> JsonObj:
    return {"type": "diff", "path": path, "oldText": old, "newText": new}


def _text(text: str) -> JsonObj:
    return {"type": "content", "content": {"type": "text", "text": text}}


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""
