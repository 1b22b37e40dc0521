"""The OpenAI Chat Completions dialect of the fake model server, for OpenCode (1.18) through
its `@ai-sdk/openai-compatible` provider (and any other chat-completions client).

`POST /v1/chat/completions` with `stream: true` gets SSE `data:` chunks
(`chat.completion.chunk`: role, content / reasoning_content / tool_calls deltas, then a
chunk with `finish_reason`, a usage chunk when `stream_options.include_usage`, and
`data: [DONE]`); without `stream` the same answer comes as one `chat.completion`.
`GET /v1/models` lists the fake models.

OpenCode also asks the model for a session title (a system prompt starting "You are a title
generator"): that helper call is answered with a fixed title and does not consume a
scripted reply (`consumes`), so scripts only describe the agent loop.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

from tests.fakes.model_server import FakeModelServer, Reply, Request, ToolUse, paced, pick_tool, split_text

_ids = itertools.count(1)

MODELS = ["fake-model", "fake-model-mini"]
USAGE = {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
TITLE = "Fake title"


def _system_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "system":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def is_title_request(body: Any) -> bool:
    return _system_text(body).lstrip().startswith("You are a title generator")


def _data(obj: Any) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


class ChatDialect:
    def matches(self, method: str, path: str) -> bool:
        p = path.split("?")[0]
        return p.endswith("/chat/completions") or (method == "GET" and p.endswith("/models"))

    def consumes(self, req: Request) -> bool:
        return req.path.split("?")[0].endswith("/chat/completions") and not is_title_request(req.body)

    def tool_names(self, body: Any) -> list[str]:
        names: list[str] = []
        for tool in (body.get("tools") if isinstance(body, dict) else None) or []:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(fn, dict) and "name" in fn:
                names.append(str(fn["name"]))
        return names

    def respond(self, req: Request, reply: Reply, tool_names: list[str]) -> tuple[int, str, Iterator[bytes]]:
        if not req.path.split("?")[0].endswith("/chat/completions"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in MODELS]
            return 200, "application/json", iter([json.dumps({"object": "list", "data": data}).encode()])
        body = req.body if isinstance(req.body, dict) else {}
        model = str(body.get("model", MODELS[0]))
        if is_title_request(body):
            reply = Reply(text=TITLE)
        calls = [_call(use, tool_names) for use in reply.tools]
        finish = reply.stop or ("tool_calls" if calls else "stop")
        n = next(_ids)
        if body.get("stream"):
            events = self._stream(
                n, model, reply, calls, finish, bool((body.get("stream_options") or {}).get("include_usage"))
            )
            return 200, "text/event-stream", paced(events, reply.delay)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.thinking:
            message["reasoning_content"] = reply.thinking
        if calls:
            message["tool_calls"] = calls
        completion = {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": USAGE,
        }
        return 200, "application/json", iter([json.dumps(completion).encode()])

    @staticmethod
    def _stream(
        n: int, model: str, reply: Reply, calls: list[dict[str, Any]], finish: str, usage: bool
    ) -> list[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return _data(
                {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                }
            )

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"reasoning_content": p}) for p in split_text(reply.thinking, reply.chunks)]
        events += [chunk({"content": p}) for p in split_text(reply.text, reply.chunks)]
        for index, call in enumerate(calls):
            events.append(chunk({"tool_calls": [{"index": index, **call}]}))
        events.append(chunk({}, finish))
        if usage:
            tail = {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": USAGE,
            }
            events.append(_data(tail))
        events.append(b"data: [DONE]\n\n")
        return events


def _call(use: ToolUse, offered: list[str]) -> dict[str, Any]:
    name = pick_tool(use.name, offered)
    if offered and name not in offered:
        raise AssertionError(f"tool {name!r} not offered; tools were {offered}")
    call_id = use.id if use.id != "call_1" else f"call_{next(_ids):04d}"
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(use.input)}}


def chat_server(default: Reply | None = None) -> FakeModelServer:
    """A fake server speaking chat completions (start it with `.start()` or `with`)."""
    return FakeModelServer([ChatDialect()], default=default)


def shell_call(command: str, call_id: str = "call_shell") -> ToolUse:
    """OpenCode's shell tool is `bash {command, description}`."""
    return ToolUse(name="bash", input={"command": command, "description": "run it"}, id=call_id)


def opencode_config(base_url: str, *, permission: dict[str, str] | None = None) -> str:
    """An `opencode.json` (for `OPENCODE_CONFIG`) with one OpenAI-compatible provider at the
    fake server; nothing is downloaded (the provider package is bundled)."""
    return json.dumps(
        {
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": False,
            "share": "disabled",
            "provider": {
                "fake": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Fake",
                    "options": {"baseURL": f"{base_url}/v1", "apiKey": "fake"},
                    "models": {
                        "fake-model": {"name": "Fake Model", "tool_call": True},
                        "fake-model-mini": {"name": "Fake Mini", "tool_call": True},
                    },
                }
            },
            "model": "fake/fake-model",
            "small_model": "fake/fake-model",
            "permission": permission or {"bash": "ask", "edit": "ask"},
        }
    )


def qwen_settings(base_url: str) -> str:
    """A Qwen Code `~/.qwen/settings.json`: OpenAI-compatible auth at the fake server (two
    models, so a model switch can be seen), asking before tools (its default `auto` mode
    would consult a classifier model first), without the background model calls that would
    take scripted replies (memory extraction, follow-up suggestions after each turn), and
    nothing sent anywhere else."""
    models = [
        {"id": m, "name": m.replace("-", " ").title(), "baseUrl": f"{base_url}/v1", "envKey": "OPENAI_API_KEY"}
        for m in MODELS
    ]
    return json.dumps(
        {
            "security": {"auth": {"selectedType": "openai"}},
            "model": {"name": MODELS[0]},
            "modelProviders": {"openai": models},
            # MCP tools declared up front (not behind its tool_search bridge): the fake model
            # calls them by name.
            "tools": {"approvalMode": "default", "toolSearch": {"enabled": False}},
            "memory": {"enableManagedAutoMemory": False},
            "ui": {"enableFollowupSuggestions": False},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        }
    )
