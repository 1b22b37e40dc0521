"""The daemon validates ACP's request params with the official schema models
(`bridge/acp/acp_params.py`), made strict: where the generated models would drop or replace
a malformed value (an MCP server, `_meta`), the client gets a -32602 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.acp import params as P
from bridge.errors import INVALID_PARAMS, RpcError

STDIO = {"name": "tools", "command": "/bin/true", "args": [], "env": []}


def refused(model: Any, params: dict[str, Any]) -> RpcError:
    with pytest.raises(RpcError) as err:
        P.parse(model, params)
    assert err.value.code == INVALID_PARAMS
    return err.value


def test_a_malformed_mcp_server_is_refused_not_dropped() -> None:
    err = refused(P.NewSessionParams, {"cwd": "/tmp", "mcpServers": [STDIO, {"name": "x", "command": "c"}]})
    assert err.data["field"] == "mcpServers.1.stdio.args"
    assert "mcpServers.1.stdio.args: Field required" in err.message


def test_an_unknown_mcp_server_type_is_named() -> None:
    err = refused(
        P.LoadSessionParams, {"sessionId": "s", "cwd": "/tmp", "mcpServers": [{**STDIO, "type": "ws"}]}
    )
    assert err.data["field"] == "mcpServers.0" and "http, sse, acp" in err.message


def test_a_malformed_meta_is_refused_not_salvaged() -> None:
    assert refused(P.PromptParams, {"sessionId": "s", "prompt": [], "_meta": 5}).data["field"] == "_meta"


def test_relative_paths_and_unknown_content_are_refused() -> None:
    assert refused(P.NewSessionParams, {"cwd": "rel"}).data["field"] == "cwd"
    err = refused(P.ForkSessionParams, {"sessionId": "s", "cwd": "/tmp", "additionalDirectories": ["x"]})
    assert err.data["field"] == "additionalDirectories"
    err = refused(P.PromptParams, {"sessionId": "s", "prompt": [{"type": "video"}]})
    assert err.data["field"] == "prompt.0"


def test_valid_params_keep_their_wire_form() -> None:
    http = {"type": "http", "name": "h", "url": "http://127.0.0.1:9/mcp", "headers": []}
    p = P.parse(P.NewSessionParams, {"cwd": "/tmp", "mcpServers": [STDIO, http], "_meta": {"k": 1}})
    assert p.mcp_dicts() == [STDIO, http] and p.meta == {"k": 1}
    assert P.parse(P.ResumeSessionParams, {"sessionId": "s", "cwd": "/tmp"}).mcp_dicts() == []
    assert P.parse(P.SetConfigOptionParams, {"sessionId": "s", "configId": "c", "value": True}).value is True


def test_initialize_stays_off_the_generated_models() -> None:
    # Its answer is the daemon's first (tests/e2e/test_startup_imports.py keeps `acp` out).
    assert P.InitializeParams.__module__ == "bridge.acp.params"
    assert P.NewSessionParams.__module__ == "bridge.acp.acp_params"
    assert refused(P.InitializeParams, {"protocolVersion": "x"}).data["field"] == "protocolVersion"
