"""Pure parts of the client: typed updates (unknown kinds kept raw), permission choice
rules, prompt blocks, MCP server shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.client import (
    AgentMessageChunk,
    ConfigOptionUpdate,
    CurrentModeUpdate,
    InvalidReply,
    McpServer,
    Plan,
    SessionInfoUpdate,
    ToolCall,
    ToolCallUpdate,
    UnknownUpdate,
    UsageUpdate,
    UserMessageChunk,
)
from bridge.client.permissions import PermissionOption, select_for_policy, select_for_reply
from bridge.client.session import prompt_blocks
from bridge.client.updates import (
    AvailableCommandsUpdate,
    ConfigChoiceGroup,
    ImageContent,
    TerminalRef,
    TextContent,
    UnknownContent,
    UnknownToolContent,
    parse_update,
)


@pytest.mark.parametrize(
    ("raw", "cls"),
    [
        ({"sessionUpdate": "user_message_chunk", "content": {"type": "text", "text": "q"}}, UserMessageChunk),
        (
            {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "a"}},
            AgentMessageChunk,
        ),
        ({"sessionUpdate": "tool_call", "toolCallId": "t", "title": "T"}, ToolCall),
        ({"sessionUpdate": "tool_call_update", "toolCallId": "t"}, ToolCallUpdate),
        ({"sessionUpdate": "plan", "entries": []}, Plan),
        ({"sessionUpdate": "available_commands_update", "availableCommands": []}, AvailableCommandsUpdate),
        ({"sessionUpdate": "current_mode_update", "currentModeId": "plan"}, CurrentModeUpdate),
        ({"sessionUpdate": "config_option_update", "configOptions": []}, ConfigOptionUpdate),
        ({"sessionUpdate": "session_info_update", "title": None}, SessionInfoUpdate),
        ({"sessionUpdate": "usage_update", "used": 1, "size": 2}, UsageUpdate),
        ({"sessionUpdate": "notice", "severity": "info", "title": "hi"}, UnknownUpdate),
    ],
)
def test_each_kind_is_typed(raw: dict[str, Any], cls: type) -> None:
    update = parse_update(raw, session_id="s1")
    assert type(update) is cls and update.raw is raw and update.session_id == "s1"
    assert update.session_update == raw["sessionUpdate"]


def test_unknown_and_malformed_updates_are_kept_raw() -> None:
    unknown = parse_update({"sessionUpdate": "future_kind", "x": [1]})
    assert isinstance(unknown, UnknownUpdate) and unknown.raw == {"sessionUpdate": "future_kind", "x": [1]}
    broken = parse_update({"sessionUpdate": "tool_call", "title": 5})  # no toolCallId
    assert isinstance(broken, UnknownUpdate) and broken.session_update == "tool_call"
    nothing = parse_update({"no": "kind"})
    assert isinstance(nothing, UnknownUpdate) and nothing.raw == {"no": "kind"}


def test_fields_extras_meta_and_replay_marks() -> None:
    update = parse_update(
        {
            "sessionUpdate": "tool_call",
            "toolCallId": "t1",
            "title": "Run",
            "kind": "execute",
            "content": [
                {"type": "terminal", "terminalId": "term-1"},
                {"type": "content", "content": {"type": "image", "data": "AA==", "mimeType": "image/png"}},
                {"type": "hologram", "depth": 3},
            ],
            "rawInput": {"cmd": "ls"},
            "_meta": {"vendor/x": 1},
            "futureField": True,
        },
        meta={"bridge": {"replay": "log", "seq": 42}},
    )
    assert isinstance(update, ToolCall) and update.kind == "execute" and update.status == "pending"
    term, image, unknown = update.content
    assert isinstance(term, TerminalRef) and term.terminal_id == "term-1"
    assert isinstance(image.content, ImageContent) and image.content.mime_type == "image/png"  # type: ignore[union-attr]
    assert isinstance(unknown, UnknownToolContent) and unknown.model_extra == {"depth": 3}
    assert update.raw_input == {"cmd": "ls"} and update.meta == {"vendor/x": 1}
    assert update.model_extra == {"futureField": True}
    assert update.replayed and update.seq == 42
    chunk = parse_update({"sessionUpdate": "agent_message_chunk", "content": {"type": "video", "url": "u"}})
    assert isinstance(chunk, AgentMessageChunk) and isinstance(chunk.content, UnknownContent)
    assert chunk.text == "" and not chunk.replayed


def test_config_option_choices_flatten_groups() -> None:
    update = parse_update(
        {
            "sessionUpdate": "config_option_update",
            "configOptions": [
                {
                    "id": "model",
                    "name": "Model",
                    "category": "model",
                    "type": "select",
                    "currentValue": "b",
                    "options": [
                        {"group": "g1", "name": "Group", "options": [{"value": "a", "name": "A"}]},
                        {"value": "b", "name": "B"},
                    ],
                },
                {"id": "fast", "name": "Fast", "type": "boolean", "currentValue": True},
            ],
        }
    )
    assert isinstance(update, ConfigOptionUpdate)
    model, fast = update.config_options
    assert isinstance(model.options[0], ConfigChoiceGroup)
    assert [c.value for c in model.choices()] == ["a", "b"]
    assert fast.current_value is True and fast.choices() == []


def options(*kinds: str) -> list[PermissionOption]:
    return [PermissionOption(option_id=f"id-{k}", name=k, kind=k) for k in kinds]


def test_policies_never_grant_more_than_they_name() -> None:
    full = options("allow_once", "allow_always", "reject_once", "reject_always")
    assert select_for_policy(full, "allow_once").option_id == "id-allow_once"  # type: ignore[union-attr]
    assert select_for_policy(full, "allow_always").option_id == "id-allow_always"  # type: ignore[union-attr]
    assert select_for_policy(full, "reject").option_id == "id-reject_once"  # type: ignore[union-attr]
    # "always" narrows to "once"; "once" never widens to "always": it rejects instead.
    assert select_for_policy(options("allow_once", "reject_once"), "allow_always").kind == "allow_once"  # type: ignore[union-attr]
    assert select_for_policy(options("allow_always", "reject_once"), "allow_once").kind == "reject_once"  # type: ignore[union-attr]
    assert select_for_policy(options("allow_always", "reject_always"), "reject").kind == "reject_always"  # type: ignore[union-attr]
    assert select_for_policy(options("allow_once"), "reject") is None  # → "cancelled"


def test_replies() -> None:
    full = options("allow_once", "allow_always", "reject_once", "reject_always")
    assert select_for_reply(full, "once").kind == "allow_once"
    assert select_for_reply(full, "always").kind == "allow_always"
    assert select_for_reply(full, "reject").kind == "reject_once"
    assert select_for_reply(full, "reject_always").kind == "reject_always"
    assert select_for_reply(full, "id-allow_always").kind == "allow_always"
    assert select_for_reply(options("allow_once", "reject_always"), "reject").kind == "reject_always"
    with pytest.raises(InvalidReply, match="no allow_always option"):
        select_for_reply(options("allow_once", "reject_once"), "always")
    with pytest.raises(InvalidReply, match="not a reply"):
        select_for_reply(full, "maybe")


def test_prompt_blocks(tmp_path: Path) -> None:
    f = tmp_path / "a b.txt"
    assert prompt_blocks("hi") == [{"type": "text", "text": "hi"}]
    blocks = prompt_blocks(["look at", f, TextContent(text="typed"), {"type": "text", "text": "raw"}])
    assert blocks == [
        {"type": "text", "text": "look at"},
        {"type": "resource_link", "uri": f.resolve().as_uri(), "name": "a b.txt"},
        {"type": "text", "text": "typed"},
        {"type": "text", "text": "raw"},
    ]
    with pytest.raises(TypeError):
        prompt_blocks([42])  # type: ignore[list-item]


def test_mcp_server_shapes() -> None:
    assert McpServer("s", command="srv").to_wire() == {"name": "s", "command": "srv", "args": [], "env": []}
    assert McpServer("h", url="http://x/mcp").to_wire() == {
        "type": "http",
        "name": "h",
        "url": "http://x/mcp",
        "headers": [],
    }
    sse = McpServer("e", url="http://x/sse", transport="sse", headers={"A": "b"}).to_wire()
    assert sse == {
        "type": "sse",
        "name": "e",
        "url": "http://x/sse",
        "headers": [{"name": "A", "value": "b"}],
    }
    with pytest.raises(ValueError, match="needs a command or a url"):
        McpServer("bad").to_wire()


def test_the_daemon_never_imports_the_client() -> None:
    """Building the command line (done at every daemon start) imports the client
    subcommands' modules, but not `bridge.client` itself, nor websockets."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    code = (
        "import sys\n"
        "from bridge.__main__ import build_parser\n"
        "build_parser().parse_args(['prompt', 'hi'])\n"
        "import bridge.app, bridge.cli.serve\n"
        "print(sorted(m for m in sys.modules if m.startswith('bridge.client') or m == 'websockets'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_subagent_updates_name_their_parent_tool_call() -> None:
    inner = parse_update(
        {
            "sessionUpdate": "agent_message_chunk",
            "content": {"type": "text", "text": "x"},
            "_meta": {"bridge": {"parentToolCallId": "toolu_p"}},
        }
    )
    assert inner.parent_tool_call_id == "toolu_p"
    own = parse_update({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "x"}})
    assert own.parent_tool_call_id is None
    odd = parse_update(
        {
            "sessionUpdate": "agent_message_chunk",
            "content": {"type": "text", "text": "x"},
            "_meta": {"bridge": {"parentToolCallId": 7}},
        }
    )
    assert odd.parent_tool_call_id is None
