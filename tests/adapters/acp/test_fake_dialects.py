"""The Gemini and chat-completions dialects of the fake model server, spoken to directly:
the wire shapes the real CLIs parse, and which helper calls leave the script alone."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.fakes.gemini import gemini_server, pick_mcp, shell_call
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.openai_chat import TITLE, chat_server
from tests.fakes.openai_chat import shell_call as chat_shell


def call(server: FakeModelServer, path: str, body: Any = None) -> tuple[str, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method="POST" if data else "GET")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.headers.get("content-type", ""), resp.read()


def sse_data(raw: bytes) -> list[Any]:
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


GEMINI_TOOLS = [{"functionDeclarations": [{"name": "run_shell_command"}, {"name": "mcp_echo_echo"}]}]


def test_gemini_stream_helpers_and_metadata() -> None:
    with gemini_server() as server:
        server.script(
            Reply(text="hello there", thinking="hmm", chunks=2),
            Reply(tools=[shell_call("ls", "c1"), shell_call("pwd", "call_1")]),
        )
        # The router's classifier: answered from its schema, the script untouched.
        schema = {
            "type": "OBJECT",
            "properties": {
                "complexity_reasoning": {"type": "STRING"},
                "complexity_score": {"type": "INTEGER"},
            },
        }
        helper = {"contents": [], "generationConfig": {"responseJsonSchema": schema}}
        _, raw = call(server, "/v1beta/models/gemini-3.5-flash-lite:generateContent", helper)
        answer = json.loads(json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"])
        assert set(answer) == {"complexity_reasoning", "complexity_score"}
        assert isinstance(answer["complexity_score"], int)

        path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        ctype, raw = call(server, path, {"contents": [], "tools": GEMINI_TOOLS})
        assert ctype.startswith("text/event-stream")
        chunks = sse_data(raw)
        parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
        assert [p["text"] for p in parts if p.get("thought")] == ["hm", "m"]
        assert "".join(p["text"] for p in parts if not p.get("thought")) == "hello there"
        assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and chunks[-1]["usageMetadata"]
        assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])

        _, raw = call(server, path, {"contents": [], "tools": GEMINI_TOOLS})
        calls = [p["functionCall"] for c in sse_data(raw) for p in c["candidates"][0]["content"]["parts"]]
        assert [(c["name"], c["args"]["command"]) for c in calls] == [
            ("run_shell_command", "ls"),
            ("run_shell_command", "pwd"),
        ]
        assert calls[0]["id"] == "c1" and calls[1]["id"] != "call_1"

        _, raw = call(server, "/v1beta/models/gemini-2.5-pro:countTokens", {"contents": []})
        assert json.loads(raw) == {"totalTokens": 42}
        _, raw = call(server, "/v1beta/models")
        assert "models/gemini-2.5-pro" in [m["name"] for m in json.loads(raw)["models"]]
        assert len(server.requests) == 5
        # Only the two generations used the script: the default comes next.
        _, raw = call(server, "/v1beta/models/gemini-2.5-pro:generateContent", {"contents": []})
        assert json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"] == server.default.text


def test_gemini_mcp_tool_names_are_picked_loosely() -> None:
    assert pick_mcp("echo")(["run_shell_command", "mcp_echo_echo"]) == "mcp_echo_echo"
    assert pick_mcp("echo")(["mcp__echo__echo"]) == "mcp__echo__echo"


def test_chat_stream_with_tool_calls_usage_and_title_helper() -> None:
    with chat_server() as server:
        server.script(Reply(tools=[chat_shell("ls", "call_a")]), Reply(text="done", chunks=2))
        title = {
            "model": "fake-model",
            "stream": True,
            "messages": [{"role": "system", "content": "You are a title generator. Output a title."}],
        }
        _, raw = call(server, "/v1/chat/completions", title)
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in sse_data(raw)) == TITLE

        body = {
            "model": "fake-model",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "go"}],
            "tools": [{"type": "function", "function": {"name": "bash"}}],
        }
        _, raw = call(server, "/v1/chat/completions", body)
        assert raw.rstrip().endswith(b"data: [DONE]")
        chunks = sse_data(raw)
        [tool] = [
            d["tool_calls"][0]
            for c in chunks
            if c["choices"]
            for d in [c["choices"][0]["delta"]]
            if "tool_calls" in d
        ]
        assert tool["id"] == "call_a" and tool["function"]["name"] == "bash"
        assert json.loads(tool["function"]["arguments"])["command"] == "ls"
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finishes[-1] == "tool_calls"
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 49

        _, raw = call(server, "/v1/chat/completions", {**body, "stream": False})
        completion = json.loads(raw)
        assert completion["choices"][0]["message"]["content"] == "done"
        assert completion["choices"][0]["finish_reason"] == "stop"
        _, raw = call(server, "/v1/models")
        assert "fake-model" in [m["id"] for m in json.loads(raw)["data"]]
