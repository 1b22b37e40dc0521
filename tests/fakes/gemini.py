"""The Gemini API dialect of the fake model server, for the real `gemini` CLI (0.61).

With `GOOGLE_GEMINI_BASE_URL` pointing here the CLI sends (notes/offline-agents.md §6):
- `POST /v1beta/models/<model>:streamGenerateContent?alt=sse` for every model turn: each SSE
  `data:` line is one `GenerateContentResponse` chunk; the last carries `finishReason` and
  `usageMetadata`;
- `POST /v1beta/models/<model>:generateContent` with a `responseJsonSchema` for its helper
  calls (the model router's complexity classifier, the next-speaker check, ...). Those are
  answered from the schema itself and do not consume a scripted reply (`consumes`);
- `POST ...:countTokens` and `GET /v1beta/models`.

Tools: the request's `tools[].functionDeclarations[].name` (the shell tool is
`run_shell_command {command, description?}`; MCP tools are named `<tool>` or
`mcp_<server>_<tool>` depending on the CLI version: name them loosely with `pick_mcp`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

from tests.fakes.model_server import FakeModelServer, Reply, Request, ToolUse, paced, pick_tool, split_text

_ids = itertools.count(1)

MODELS = ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-3.1-pro-preview", "gemini-3.8-flash"]
USAGE = {"promptTokenCount": 42, "candidatesTokenCount": 7, "totalTokenCount": 49}


def _path(req_path: str) -> str:
    return req_path.split("?")[0]


def _is_helper(body: Any) -> bool:
    """A structured-output helper call (router classifier, next-speaker check...)."""
    if not isinstance(body, dict):
        return False
    config = body.get("generationConfig") or {}
    return (
        bool(config.get("responseJsonSchema") or config.get("responseSchema"))
        or config.get("responseMimeType") == "application/json"
    )


class GeminiDialect:
    def matches(self, method: str, path: str) -> bool:
        return _path(path).startswith(("/v1beta/models", "/v1/models", "/v1alpha/models"))

    def consumes(self, req: Request) -> bool:
        p = _path(req.path)
        return p.endswith((":streamGenerateContent", ":generateContent")) and not _is_helper(req.body)

    def tool_names(self, body: Any) -> list[str]:
        names: list[str] = []
        for tool in (body.get("tools") if isinstance(body, dict) else None) or []:
            for decl in tool.get("functionDeclarations") or []:
                if isinstance(decl, dict) and "name" in decl:
                    names.append(str(decl["name"]))
        return names

    def respond(self, req: Request, reply: Reply, tool_names: list[str]) -> tuple[int, str, Iterator[bytes]]:
        p = _path(req.path)
        if p.endswith(":countTokens"):
            return 200, "application/json", iter([b'{"totalTokens": 42}'])
        if not p.endswith(("GenerateContent", "generateContent")):
            models = [
                {
                    "name": f"models/{m}",
                    "displayName": m,
                    "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
                    "inputTokenLimit": 1_048_576,
                    "outputTokenLimit": 65_536,
                }
                for m in MODELS
            ]
            return 200, "application/json", iter([json.dumps({"models": models}).encode()])
        model = p.rsplit("/", 1)[-1].split(":")[0]
        if _is_helper(req.body):
            text = json.dumps(_from_schema(_schema_of(req.body)))
            body = _response(model, [{"text": text}], "STOP", USAGE)
            return 200, "application/json", iter([json.dumps(body).encode()])
        parts = _parts(reply, tool_names)
        finish = reply.stop or "STOP"
        if p.endswith(":streamGenerateContent"):
            chunks = [_response(model, [part], None, None) for part in parts[:-1]]
            chunks.append(_response(model, parts[-1:], finish, USAGE))
            events = [f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks]
            return 200, "text/event-stream", paced(events, reply.delay)
        return 200, "application/json", iter([json.dumps(_response(model, parts, finish, USAGE)).encode()])


def _parts(reply: Reply, offered: list[str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for piece in split_text(reply.thinking, reply.chunks):
        parts.append({"text": piece, "thought": True})
    for piece in split_text(reply.text, reply.chunks):
        parts.append({"text": piece})
    for tool in reply.tools:
        name = pick_tool(tool.name, offered)
        if offered and name not in offered:
            raise AssertionError(f"tool {name!r} not offered; tools were {offered}")
        call_id = tool.id if tool.id != "call_1" else f"call_{next(_ids):04d}"
        parts.append({"functionCall": {"id": call_id, "name": name, "args": tool.input}})
    return parts or [{"text": ""}]


def _response(
    model: str, parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int] | None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": model,
        "responseId": f"resp_{next(_ids)}",
    }
    if usage is not None:
        out["usageMetadata"] = usage
    return out


def _schema_of(body: Any) -> dict[str, Any]:
    config = body.get("generationConfig") or {} if isinstance(body, dict) else {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
    return schema if isinstance(schema, dict) else {}


def _from_schema(schema: dict[str, Any]) -> Any:
    """A small value that satisfies `schema`. Enums prefer "user" so the next-speaker check
    hands the turn back instead of making the model continue."""
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return "user" if "user" in enum else enum[0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _from_schema(sub) for name, sub in props.items() if isinstance(sub, dict)}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        low = schema.get("minimum", 1)
        return max(1, int(low)) if kind == "integer" else float(low)
    if kind == "boolean":
        return False
    return "fake"


def shell_call(command: str, call_id: str = "call_shell") -> ToolUse:
    return ToolUse(name="run_shell_command", input={"command": command, "description": "run it"}, id=call_id)


def pick_mcp(tool: str) -> Callable[[list[str]], str]:
    """Names an MCP tool by its bare name, whatever prefix the CLI gave it."""

    def pick(offered: list[str]) -> str:
        for name in offered:
            if name == tool or name.endswith(f"_{tool}") or name.endswith(f"__{tool}"):
                return name
        raise AssertionError(f"no MCP tool {tool!r} offered; tools were {offered}")

    return pick


def gemini_server(default: Reply | None = None) -> FakeModelServer:
    """A fake server speaking the Gemini API (start it with `.start()` or `with`)."""
    return FakeModelServer([GeminiDialect()], default=default)


def settings_json() -> str:
    """`~/.gemini/settings.json` for an isolated HOME: API-key auth, no telemetry, no update
    checks, no folder-trust prompt."""
    return json.dumps(
        {
            "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        }
    )
