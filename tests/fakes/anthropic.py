"""The Anthropic Messages dialect of the fake model server, for the real `claude` CLI.

Claude Code 2.1.197 sends `POST /v1/messages?beta=true` with `stream: true` once per model
turn (plus a `GET /` probe). A scripted `Reply` becomes the SSE sequence the CLI expects:
`message_start`, per block `content_block_start/delta/stop`, `message_delta` (stop reason,
usage), `message_stop` (notes/native-protocols.md §4.1). Non-streaming requests get the same
message as JSON; `count_tokens` and `GET /v1/models` are answered so nothing retries.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Iterator
from typing import Any

from tests.fakes.model_server import (
    FakeModelServer,
    Reply,
    Request,
    paced,
    pick_tool,
    split_text,
    sse,
)

_ids = itertools.count(1)

MODELS = ["claude-opus-4-8", "claude-sonnet-5", "claude-haiku-4-5"]


_HELPERS = ("naming a coding session", "Reply with ONLY the suggestion")


def is_title_request(body: Any) -> bool:
    """Helper calls answered without a scripted reply: claude-agent-acp 0.101 asks the model
    to name each new session (a tool-less request whose system prompt says so) and, after a
    turn, to suggest the user's next prompt."""
    if not isinstance(body, dict):
        return False
    system = body.get("system")
    texts = [str(p.get("text", "")) for p in (system if isinstance(system, list) else [{"text": system}]) if isinstance(p, dict)]
    messages = body.get("messages") or []
    last = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    if isinstance(last, list):
        texts += [str(p.get("text", "")) for p in last if isinstance(p, dict)]
    elif isinstance(last, str):
        texts.append(last)
    return any(marker in text for text in texts for marker in _HELPERS)


class AnthropicDialect:
    def __init__(self) -> None:
        self._failures: deque[tuple[int, str, str]] = deque()

    def fail_next(self, status: int, message: str, kind: str = "invalid_request_error", times: int = 1) -> None:
        """Answer the next `times` model requests with an API error (Anthropic's error body)."""
        self._failures.extend([(status, kind, message)] * times)

    def clear_failures(self) -> None:
        """Drop the failures not used (a CLI that retries fewer times than scripted)."""
        self._failures.clear()

    def matches(self, method: str, path: str) -> bool:
        p = path.split("?")[0]
        return p.startswith("/v1/messages") or p.startswith("/v1/models")

    def tool_names(self, body: Any) -> list[str]:
        if not isinstance(body, dict):
            return []
        return [t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)]

    def consumes(self, req: Request) -> bool:
        return not is_title_request(req.body)

    def respond(self, req: Request, reply: Reply, tool_names: list[str]) -> tuple[int, str, Iterator[bytes]]:
        p = req.path.split("?")[0]
        if is_title_request(req.body):
            reply = Reply(text="Fake title")
        if p.startswith("/v1/models"):
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
                    for m in MODELS]
            body = {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
            return 200, "application/json", iter([json.dumps(body).encode()])
        if p.endswith("/count_tokens"):
            return 200, "application/json", iter([b'{"input_tokens": 42}'])
        if self._failures:
            status, kind, message = self._failures.popleft()
            error = {"type": "error", "error": {"type": kind, "message": message}}
            return status, "application/json", iter([json.dumps(error).encode()])
        model = req.body.get("model", "claude-fake") if isinstance(req.body, dict) else "claude-fake"
        blocks = _blocks(reply, tool_names)
        stop = reply.stop or ("tool_use" if reply.tools else "end_turn")
        if isinstance(req.body, dict) and req.body.get("stream"):
            events = _stream(model, blocks, stop, reply.chunks, self.usage(reply))
            return 200, "text/event-stream", paced(events, reply.delay)
        message = _message(model, [b for b, _ in blocks], stop)
        message["usage"] = self.usage(reply)
        return 200, "application/json", iter([json.dumps(message).encode()])


    def usage(self, reply: Reply) -> dict[str, Any]:
        """What a response reports (the stream: `message_start`'s counters, `message_delta`'s
        output), with the reply's overrides."""
        usage = {"input_tokens": 42, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        return {**usage, **(reply.usage or {})}


def _blocks(reply: Reply, offered: list[str]) -> list[tuple[dict[str, Any], str]]:
    """(full content block, its streamed payload) in model order: thinking, text, tools."""
    out: list[tuple[dict[str, Any], str]] = []
    if reply.thinking:
        block = {"type": "thinking", "thinking": reply.thinking, "signature": "sig-fake"}
        out.append((block, reply.thinking))
    if reply.text:
        out.append(({"type": "text", "text": reply.text}, reply.text))
    for tool in reply.tools:
        name = pick_tool(tool.name, offered)
        tool_id = tool.id if tool.id != "call_1" else f"toolu_{next(_ids):04d}"
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": tool.input}
        out.append((block, json.dumps(tool.input)))
    return out


def _message(
    model: str, content: list[dict[str, Any]], stop: str | None, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": f"msg_{next(_ids):04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        # The real API always sends the cache counters; claude-agent-acp sums them (NaN otherwise).
        "usage": {**(usage or {"input_tokens": 42, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}),
                  "output_tokens": 1},
    }


def _stream(model: str, blocks: list[tuple[dict[str, Any], str]], stop: str, chunks: int,
            usage: dict[str, Any]) -> list[bytes]:
    events = [sse("message_start", {"type": "message_start", "message": _message(model, [], None, usage)})]
    for index, (block, payload) in enumerate(blocks):
        kind = block["type"]
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in split_text(payload, chunks)]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": part} for part in split_text(payload, chunks)]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            start = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": payload}]
        events.append(sse("content_block_start", {"type": "content_block_start", "index": index,
                                                  "content_block": start}))
        for delta in deltas:
            events.append(sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                                      "delta": delta}))
        events.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(sse("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": stop, "stop_sequence": None},
                                        "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(sse("message_stop", {"type": "message_stop"}))
    return events


def anthropic_server(*replies: Reply, default: Reply | None = None) -> FakeModelServer:
    """A started-on-enter fake server speaking Anthropic Messages, scripted with `replies`."""
    server = FakeModelServer([AnthropicDialect()], default=default)
    server.script(*replies)
    return server


def last_user_text(body: Any) -> str:
    """The text of the last *user* message of a request (the CLI may append a system one)."""
    if not isinstance(body, dict):
        return ""
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return "\n".join(texts)
    return ""


def tool_results(body: Any) -> list[dict[str, Any]]:
    """The tool_result blocks of the last user message of a request."""
    if not isinstance(body, dict):
        return []
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), list):
            return [b for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
    return []
