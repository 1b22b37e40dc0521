"""The config's quick check (`bridge.config._plain`) and its schema (`bridge.config_schema`)
give the same ConfigFile: a file the quick check vouches for is built without pydantic, and
must come out exactly as the schema would make it (issue 17, start-up)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bridge import config as C
from bridge.config_schema import AgentModel, ConfigModel, McpServerModel
from bridge.mcp.config import McpServerEntry

PLAIN = [
    "",
    "login_shell_env = false\n",
    'default_agent = "codex"\nlog_level = "info"\nstall_timeout = 12.5\nlog_keep_days = 3\n',
    'allow_shell = true\nmcp_stdio = "deny"\npath_prepend = ["/opt/bin"]\n[env]\nA = "1"\n',
    '[agents.mine]\nprotocol = "acp"\ncommand = "my-agent"\nargs = ["--acp"]\nclient_tools = false\n'
    "stall_timeout = 3.0\nallow_shell = false\n",
    '[mcp_servers.fs]\ncommand = "mcp-fs"\nargs = ["/tmp"]\n[mcp_servers.web]\nurl = "http://h/mcp"\n'
    'transport = "sse"\n[mcp_servers.web.headers]\nX = "y"\n'
    "[agents.codex.mcp_servers.fs]\nenabled = false\n",
]
# Valid, but only after a coercion the schema makes (an int for a float): not plain.
COERCED = ["stall_timeout = 5\n", "[agents.codex]\nstall_timeout = 2\n", "disconnect_grace = 0\n"]
BAD = [
    ("unknown = 1\n", "unknown: Extra inputs are not permitted"),
    ("stall_timeout = 0.0\n", "stall_timeout: Input should be greater than 0"),
    ("allow_shell = 1\n", "allow_shell: Input should be a valid boolean"),
    ('mcp_stdio = "maybe"\n', "mcp_stdio: Input should be 'allow' or 'deny'"),
    ("[agents.x]\nbogus = true\n", "agents.x.bogus: Extra inputs are not permitted"),
]


def write(tmp: Path, text: str) -> str:
    path = tmp / "bridge.toml"
    path.write_text(text)
    return str(path)


def via_schema(path: str) -> C.ConfigFile:
    import tomllib

    raw = tomllib.loads(Path(path).read_text())
    return C._build(ConfigModel.model_validate(raw).model_dump())


@pytest.mark.parametrize("text", PLAIN)
def test_a_plain_file_is_built_as_the_schema_builds_it(tmp_path: Path, text: str) -> None:
    import tomllib

    assert C._plain(tomllib.loads(text), C._CONFIG_FIELDS)
    path = write(tmp_path, text)
    assert C.load_config(path, {}) == via_schema(path)


@pytest.mark.parametrize("text", COERCED)
def test_a_coerced_value_goes_through_the_schema(tmp_path: Path, text: str) -> None:
    import tomllib

    assert not C._plain(tomllib.loads(text), C._CONFIG_FIELDS)
    cfg = C.load_config(write(tmp_path, text), {})
    assert cfg == via_schema(write(tmp_path, text))
    assert all(type(v) is float for v in (cfg.stall_timeout, cfg.disconnect_grace))


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_file_gets_the_schema_s_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(C.ConfigError) as err:
        C.load_config(write(tmp_path, text), {})
    assert str(err.value).endswith(message)


@pytest.mark.parametrize(
    ("dataclass", "model"),
    [(C.ConfigFile, ConfigModel), (C.AgentEntry, AgentModel), (McpServerEntry, McpServerModel)],
)
def test_dataclasses_and_schema_have_the_same_fields_and_defaults(dataclass: Any, model: Any) -> None:
    fields = {f.name: f for f in dataclasses.fields(dataclass)}
    assert set(fields) == set(model.model_fields)
    built, validated = dataclass(), model()
    for name in fields:
        expected = getattr(validated, name)
        assert getattr(built, name) == (expected if not isinstance(expected, dict) else {}), name


def test_every_schema_field_has_a_quick_check() -> None:
    assert set(C._CONFIG_FIELDS) == set(ConfigModel.model_fields)
    assert set(C._AGENT_FIELDS) == set(AgentModel.model_fields)
    assert set(C._MCP_FIELDS) == set(McpServerModel.model_fields)
