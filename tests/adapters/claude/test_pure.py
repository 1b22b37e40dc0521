"""Command line, MCP config, prompt content, config options and permission mapping."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from adapters.claude import native, permissions
from adapters.claude.options import ClaudeConfig
from bridge.core import events as ev
from bridge.core import to_acp
from bridge.core.adapter import AgentSpec, StartRequest
from bridge.errors import RpcError
from tests.acp_schema import check

from .fixtures import init_response, load

SID = "0f843ad2-d606-45a6-8946-8b6c357cea4c"


def test_session_flags() -> None:
    assert native.session_flags("new", SID, None) == [f"--session-id={SID}"]
    assert native.session_flags("resume", SID, SID) == [f"--resume={SID}"]
    assert native.session_flags("load", SID, SID) == [f"--resume={SID}"]
    assert native.session_flags("fork", "n", SID) == [f"--resume={SID}", "--fork-session", "--session-id=n"]
    with pytest.raises(RpcError):
        native.check_session_id("--dangerously-skip-permissions")


def test_argv_adds_protocol_mcp_and_dirs_but_no_permission_flags(tmp_path: Path) -> None:
    spec = AgentSpec(name="claude", protocol="claude", command="claude", args=("--model", "sonnet"))
    servers = [{"name": "fs", "command": "/bin/fs", "args": ["-v"], "env": [{"name": "K", "value": "v"}]},
               {"type": "http", "name": "web", "url": "http://h/mcp", "headers": [{"name": "A", "value": "b"}]},
               {"type": "sse", "name": "old", "url": "http://h/sse", "headers": []}]
    req = StartRequest(mode="new", cwd="/w", mcp_servers=servers, additional_directories=["/x"])
    with native.mcp_config_file(str(tmp_path), servers) as mcp_file:
        assert mcp_file is not None
        argv = native.argv(spec, req, native.session_flags("new", SID, None), mcp_file)
        assert argv[:3] == ["claude", "--model", "sonnet"]
        assert "--permission-prompt-tool" in argv and "--include-partial-messages" in argv
        assert not any("skip-permissions" in a or a == "--permission-mode" for a in argv)
        assert argv[argv.index("--add-dir") + 1] == "/x"
        # A file only the user can read; the values are never on the command line.
        assert argv[argv.index("--mcp-config") + 1] == mcp_file
        assert not any('"v"' in a or "http://h" in a for a in argv)
        assert stat.S_IMODE(os.stat(mcp_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(mcp_file)).st_mode) == 0o700
        config = json.loads(Path(mcp_file).read_text())["mcpServers"]
    assert not os.path.exists(mcp_file)
    with native.mcp_config_file(str(tmp_path), []) as none:
        assert none is None
    # A file a killed daemon left behind goes at the next session's start; a live one's stays.
    orphan = tmp_path / "mcp" / "claude-mcp-999999999-x.json"  # above pid_max: never alive
    live = tmp_path / "mcp" / f"claude-mcp-{os.getppid()}-y.json"
    orphan.write_text("{}")
    live.write_text("{}")
    with native.mcp_config_file(str(tmp_path), servers):
        assert not orphan.exists() and live.exists()
    assert config == {
        "fs": {"type": "stdio", "command": "/bin/fs", "args": ["-v"], "env": {"K": "v"}},
        "web": {"type": "http", "url": "http://h/mcp", "headers": {"A": "b"}},
        "old": {"type": "sse", "url": "http://h/sse", "headers": {}},
    }


def test_bypass_only_when_the_user_configured_it() -> None:
    def spec(*args: str) -> AgentSpec:
        return AgentSpec(name="c", protocol="claude", command="claude", args=args)

    assert not native.bypass_allowed(spec())
    assert native.bypass_allowed(spec("--allow-dangerously-skip-permissions"))
    assert native.bypass_allowed(spec("--permission-mode", "bypassPermissions"))
    assert native.flag_value(("--effort=low",), "--effort") == "low"


def test_prompt_blocks_become_messages_content() -> None:
    blocks = [
        {"type": "text", "text": "look"},
        {"type": "image", "data": "iVBOR", "mimeType": "image/png"},
        {"type": "image", "uri": "https://x/y.png", "mimeType": "image/png", "data": ""},
        {"type": "resource_link", "name": "a.py", "uri": "file:///w/a.py"},
        {"type": "resource", "resource": {"uri": "file:///w/b.py", "text": "print(1)"}},
    ]
    msg = native.user_message(blocks)
    assert msg["type"] == "user" and msg["message"]["role"] == "user"
    assert msg["message"]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
        {"type": "text", "text": "[a.py](file:///w/a.py)"},
        {"type": "text", "text": '<context ref="file:///w/b.py">\nprint(1)\n</context>'},
    ]
    with pytest.raises(RpcError):
        native.user_message([{"type": "audio", "data": "x", "mimeType": "audio/wav"}])


def test_config_from_the_cli_and_the_users_settings() -> None:
    init = init_response("config")
    settings = {"effective": {"model": "sonnet", "permissions": {"defaultMode": "acceptEdits"}},
                "applied": {"model": "claude-sonnet-5", "effort": "high"}}
    cfg = ClaudeConfig.from_cli(init, settings, bypass=False, mode=None, model=None, effort=None)
    assert (cfg.model, cfg.mode, cfg.effort) == ("sonnet", "acceptEdits", "high")
    assert "bypassPermissions" not in cfg.modes
    for option in cfg.config_options():
        check("SessionConfigOption", option)
    assert {o["category"] for o in cfg.config_options()} == {"mode", "model", "thought_level"}
    check("SessionModeState", cfg.modes_state())
    assert cfg.check("thought_level", "low") == "low"
    with pytest.raises(RpcError):
        cfg.check("mode", "bypassPermissions")
    with pytest.raises(RpcError):
        cfg.check("model", "gpt-5")
    bypass = ClaudeConfig.from_cli(init, {}, bypass=True, mode="bypassPermissions", model=None, effort=None)
    assert bypass.mode == "bypassPermissions" and bypass.model == "default"


def test_unlisted_model_and_mode_are_offered_as_they_are() -> None:
    cfg = ClaudeConfig.from_cli(init_response("config"), {"effective": {"permissions": {"defaultMode": "auto"}}},
                                bypass=False, mode=None, model="my-gateway-model", effort=None)
    assert cfg.model == "my-gateway-model" and cfg.mode == "auto"
    assert cfg.efforts() == [] and all(o["id"] != "thought_level" for o in cfg.config_options())


def _can_use_tool(name: str) -> dict[str, Any]:
    for d, m in load(name):
        if d == "out" and m["type"] == "control_request" and m["request"]["subtype"] == "can_use_tool":
            return dict(m["request"])
    raise LookupError(name)


def test_permission_request_and_answers() -> None:
    req = _can_use_tool("bash_allow")
    asked = permissions.request(req)
    assert isinstance(asked.tool_call, ev.ToolCallUpdate) and asked.tool_call.status == "pending"
    assert asked.options[0] == permissions.ALLOW_ALWAYS
    params = to_acp.permission_request(asked)
    check("RequestPermissionRequest", {"sessionId": "s", **params})
    assert [o["optionId"] for o in params["options"]] == ["allow_always", "allow", "reject"]
    assert params["toolCall"]["kind"] == "execute" and params["toolCall"]["toolCallId"] == req["tool_use_id"]

    def pick(option: str) -> dict[str, Any]:
        return permissions.answer(req, {"outcome": {"outcome": "selected", "optionId": option}})

    assert pick("allow") == {"behavior": "allow", "updatedInput": req["input"]}
    assert pick("allow_always")["updatedPermissions"] == req["permission_suggestions"]
    assert pick("reject")["behavior"] == "deny"
    # Fail closed: cancelled, garbage, unknown option.
    for result in ({"outcome": {"outcome": "cancelled"}}, None, "yes", {"outcome": {"outcome": "selected"}}):
        assert permissions.answer(req, result)["behavior"] == "deny"


def test_exit_plan_mode_offers_target_modes() -> None:
    req = _can_use_tool("plan_mode")
    params = to_acp.permission_request(permissions.request(req))
    check("RequestPermissionRequest", {"sessionId": "s", **params})
    assert [o["optionId"] for o in params["options"]] == ["acceptEdits", "default", "plan"]
    yes = permissions.answer(req, {"outcome": {"outcome": "selected", "optionId": "acceptEdits"}})
    assert yes["updatedPermissions"] == [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}]
    no = permissions.answer(req, {"outcome": {"outcome": "selected", "optionId": "plan"}})
    assert no["behavior"] == "deny"


def test_no_always_option_without_cli_suggestions() -> None:
    req = {"tool_name": "Read", "input": {"file_path": "/x"}, "tool_use_id": "t"}
    assert [o.option_id for o in permissions.request(req).options] == ["allow", "reject"]
    assert permissions.answer(req, {"outcome": {"outcome": "selected", "optionId": "allow_always"}})["behavior"] == "deny"
