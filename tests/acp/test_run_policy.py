"""What the config lets clients run: `allow_shell` and `mcp_stdio` are read strictly (an
unknown key or a loose value is an error, not a default), and `mcp_stdio = "deny"` refuses
stdio MCP servers in session/new, fork, load and resume with a -32602 naming the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ConfigError, Policy, load_config
from tests.acp_client import RpcFailure
from tests.conftest import fake_agent_config, in_process

pytestmark = pytest.mark.anyio

STDIO = {"name": "local-tools", "command": "/bin/true", "args": [], "env": []}
HTTP = {"type": "http", "name": "remote", "url": "http://127.0.0.1:9/mcp", "headers": []}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('mcp_stdio = "maybe"\n', "mcp_stdio"),
        ('allow_shell = "yes"\n', "allow_shell"),
        ("allow_shel = true\n", "allow_shel"),
        ('[agents.claude]\nallow_shell = "true"\n', "agents.claude.allow_shell"),
        ("[agents.claude]\nmcp_stdio = \"deny\"\n", "agents.claude.mcp_stdio"),
    ],
)
def test_bad_policy_keys_are_errors(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_config(str(path))


def test_policy_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('allow_shell = true\nmcp_stdio = "deny"\n[agents.codex]\nallow_shell = false\n')
    policy = Policy.of(load_config(str(path)))
    assert policy.shell_allowed("claude") and not policy.shell_allowed("codex")
    assert policy.mcp_stdio == "deny"
    assert Policy.of(load_config(None)) == Policy()
    assert not Policy().shell_allowed("claude") and Policy().mcp_stdio == "allow"


async def test_mcp_stdio_deny_refuses_stdio_servers_and_keeps_http_ones(tmp_path: Path) -> None:
    async with in_process(tmp_path, fake_agent_config(tmp_path), mcp_stdio="deny") as d:
        c = d.client
        await c.initialize()
        with pytest.raises(RpcFailure) as err:
            await c.request("session/new", {"cwd": d.cwd, "mcpServers": [HTTP, STDIO]})
        assert err.value.code == -32602 and "'local-tools'" in str(err.value.message)
        assert 'mcp_stdio = "deny"' in str(err.value.message)
        assert err.value.data == {"field": "mcpServers.1", "server": "local-tools"}
        assert (await c.request("session/list", {}))["sessions"] == []

        sid = (await c.request("session/new", {"cwd": d.cwd, "mcpServers": [HTTP]}))["sessionId"]
        for method, extra in (("session/fork", {}), ("session/resume", {}), ("session/load", {})):
            with pytest.raises(RpcFailure) as err:
                await c.request(method, {"sessionId": sid, "cwd": d.cwd, "mcpServers": [STDIO], **extra})
            assert err.value.code == -32602 and "local-tools" in str(err.value.message), method


async def test_mcp_stdio_allowed_by_default(tmp_path: Path) -> None:
    async with in_process(tmp_path, fake_agent_config(tmp_path)) as d:
        await d.client.initialize()
        new = await d.client.request("session/new", {"cwd": d.cwd, "mcpServers": [STDIO]})
        assert new["_meta"]["fake"]["mcpServers"][0]["name"] == "local-tools"
