"""Modes, models, effort, MCP servers and prompt content for Codex (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.codex.options import CONFIG_MODE, Settings, mcp_servers, preset_of, user_input
from bridge.errors import INVALID_PARAMS, RpcError
from bridge.wire.types import JsonObj
from tests.adapters.codex.fixtures import result_of, validate_codex
from tests.adapters.codex.support import validate

MODELS = result_of("models", "model/list")["data"]
READ_ONLY = {"type": "readOnly", "networkAccess": False}


def settings(approval: Any = "on-request", sandbox: JsonObj = READ_ONLY, **kw: Any) -> Settings:
    return Settings(model="mock-model", effort=None, approval=approval, sandbox=sandbox, models=MODELS, **kw)


def check(s: Settings) -> None:
    validate("SessionModeState", s.modes())
    for config_option in s.config_options():
        validate("SessionConfigOption", config_option)


def current(s: Settings, config_id: str) -> Any:
    return next(o["currentValue"] for o in s.config_options() if o["id"] == config_id)


def test_presets_are_recognised() -> None:
    assert preset_of("on-request", READ_ONLY) == "read-only"
    assert preset_of("on-request", {"type": "workspaceWrite", "writableRoots": []}) == "auto"
    assert preset_of("never", {"type": "dangerFullAccess"}) == "full-access"
    assert preset_of("never", READ_ONLY) is None
    assert (
        preset_of(
            {"granular": {"rules": True, "sandbox_approval": True, "mcp_elicitations": True}}, READ_ONLY
        )
        is None
    )


def test_codex_default_is_the_read_only_preset() -> None:
    s = settings()
    check(s)
    assert s.modes()["currentModeId"] == "read-only"
    assert [m["id"] for m in s.modes()["availableModes"]] == ["read-only", "auto", "full-access"]
    assert [o["id"] for o in s.config_options()] == ["mode", "model", "thought_level"]
    assert current(s, "thought_level") == "medium"  # the model's default
    assert s.take_overrides() == {}  # nothing is sent until the user picks something


def test_a_configured_policy_is_kept_and_restorable() -> None:
    s = settings("never", READ_ONLY, configured={"approval_policy": "never", "sandbox_mode": "read-only"})
    check(s)
    assert s.mode == CONFIG_MODE
    assert "approval_policy = never" in s.config_options()[0]["description"]
    s.set_mode("full-access")
    assert s.take_overrides() == {"approvalPolicy": "never", "sandboxPolicy": {"type": "dangerFullAccess"}}
    s.set_mode(CONFIG_MODE)
    assert s.take_overrides() == {"approvalPolicy": "never", "sandboxPolicy": READ_ONLY}
    check(s)


def test_config_mode_only_exists_when_no_preset_matches() -> None:
    s = settings()
    with pytest.raises(RpcError) as info:
        s.set_mode(CONFIG_MODE)
    assert info.value.code == INVALID_PARAMS


def test_auto_preset_adds_the_extra_directories() -> None:
    s = settings(extra_roots=["/extra"])
    s.set_option("mode", "auto")
    overrides = s.take_overrides()
    assert overrides["sandboxPolicy"] == {
        "type": "workspaceWrite",
        "writableRoots": ["/extra"],
        "networkAccess": False,
    }
    validate_codex("SandboxPolicy", overrides["sandboxPolicy"])
    validate_codex("AskForApproval", overrides["approvalPolicy"])


def test_model_change_moves_the_effort_to_what_the_model_supports() -> None:
    s = settings()
    s.set_option("thought_level", "high")
    s.set_option("model", "mock-model-mini")  # supports low / medium only
    assert current(s, "thought_level") == "low"
    efforts = next(o for o in s.config_options() if o["id"] == "thought_level")["options"]
    assert [e["value"] for e in efforts] == ["low", "medium"]
    assert s.take_overrides() == {"model": "mock-model-mini", "effort": "low"}
    check(s)


@pytest.mark.parametrize(
    ("config_id", "value", "field"),
    [
        ("model", "gpt-9", "value"),
        ("thought_level", "ultra", "value"),
        ("mode", "yolo", "modeId"),
        ("colour", "red", "configId"),
        ("model", True, "value"),
    ],
)
def test_bad_values_are_invalid_params(config_id: str, value: Any, field: str) -> None:
    with pytest.raises(RpcError) as info:
        settings().set_option(config_id, value)
    assert info.value.code == INVALID_PARAMS
    assert info.value.data == {"field": field}


def test_unknown_current_model_still_shows() -> None:
    s = Settings(
        model="custom-x", effort="high", approval="never", sandbox={"type": "dangerFullAccess"}, models=MODELS
    )
    check(s)
    models = next(o for o in s.config_options() if o["id"] == "model")["options"]
    assert models[0] == {"value": "custom-x", "name": "custom-x"}
    assert [o["id"] for o in s.config_options()] == ["mode", "model"]  # no known efforts for it


def test_mcp_servers_become_codex_config() -> None:
    servers = [
        {"name": "files", "command": "/bin/srv", "args": ["-v"], "env": [{"name": "K", "value": "V"}]},
        {
            "type": "http",
            "name": "web tools",
            "url": "https://x.test/mcp",
            "headers": [{"name": "A", "value": "b"}],
        },
        {"name": "files", "command": "/bin/other", "args": [], "env": []},
    ]
    assert mcp_servers(servers) == {
        "files": {"command": "/bin/srv", "args": ["-v"], "env": {"K": "V"}, "enabled": True},
        "web_tools": {"url": "https://x.test/mcp", "http_headers": {"A": "b"}, "enabled": True},
        "files_": {"command": "/bin/other", "args": [], "env": {}, "enabled": True},
    }


def test_sse_mcp_server_is_refused_clearly() -> None:
    with pytest.raises(RpcError) as info:
        mcp_servers([{"type": "sse", "name": "legacy", "url": "http://x/sse", "headers": []}])
    assert info.value.code == INVALID_PARAMS
    assert "'legacy' uses SSE" in info.value.message


def test_prompt_content_becomes_user_input() -> None:
    prompt = [
        {"type": "text", "text": "look"},
        {"type": "image", "mimeType": "image/png", "data": "AAAA"},
        {"type": "resource_link", "uri": "file:///w/a.py", "name": "a.py"},
        {"type": "resource", "resource": {"uri": "file:///w/b.py", "text": "print(1)"}},
        {"type": "resource", "resource": {"uri": "file:///w/c.png", "blob": "BBBB", "mimeType": "image/png"}},
    ]
    items = user_input(prompt)
    for item in items:
        validate_codex("UserInput", item)
    assert items == [
        {"type": "text", "text": "look", "text_elements": []},
        {"type": "image", "url": "data:image/png;base64,AAAA"},
        {"type": "text", "text": "[a.py](file:///w/a.py)", "text_elements": []},
        {"type": "text", "text": '<context ref="file:///w/b.py">\nprint(1)\n</context>', "text_elements": []},
        {"type": "image", "url": "data:image/png;base64,BBBB"},
    ]


def test_audio_prompt_is_refused() -> None:
    with pytest.raises(RpcError) as info:
        user_input([{"type": "audio", "mimeType": "audio/wav", "data": "AAAA"}])
    assert info.value.code == INVALID_PARAMS
