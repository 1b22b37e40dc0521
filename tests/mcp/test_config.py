"""`[mcp_servers.NAME]` in the config: validation (exit 2, one line naming the entry), `${VAR}`
expansion from the daemon's environment, per-agent overrides, and the merge with a session's
own servers (bridge/mcp/config.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bridge.config import ConfigError, load_config
from bridge.mcp.config import CWD_SHIM, ConfiguredServers
from tests.conftest import bridge_cmd, subprocess_env

ENV = {"GITHUB_TOKEN": "ghp_secretvalue123", "HOST": "mcp.example"}


def write(tmp: Path, text: str) -> str:
    path = tmp / "config.toml"
    path.write_text(text)
    return str(path)


def build(tmp: Path, text: str, env: dict[str, str] = ENV) -> ConfiguredServers:
    cfg = load_config(write(tmp, text), env)
    return ConfiguredServers.build(cfg.mcp_servers, {n: a.mcp_servers for n, a in cfg.agents.items()}, env)


def test_entries_become_acp_servers_with_references_expanded(tmp_path: Path) -> None:
    servers = build(
        tmp_path,
        """
[mcp_servers.github]
command = "github-mcp"
args = ["stdio", "--read-only", "$${LITERAL}"]
env = { GITHUB_TOKEN = "${GITHUB_TOKEN}", MODE = "x" }

[mcp_servers.docs]
url = "https://${HOST}/mcp"
headers = { Authorization = "Bearer ${GITHUB_TOKEN}" }

[mcp_servers.old]
url = "https://${HOST}/sse"
transport = "sse"
""",
    )
    assert servers.default == [
        {
            "name": "github",
            "command": "github-mcp",
            "args": ["stdio", "--read-only", "${LITERAL}"],
            "env": [{"name": "GITHUB_TOKEN", "value": "ghp_secretvalue123"}, {"name": "MODE", "value": "x"}],
        },
        {
            "type": "http",
            "name": "docs",
            "url": "https://mcp.example/mcp",
            "headers": [{"name": "Authorization", "value": "Bearer ghp_secretvalue123"}],
        },
        {"type": "sse", "name": "old", "url": "https://mcp.example/sse", "headers": []},
    ]
    assert "ghp_secretvalue123" in servers.secrets and "Bearer ghp_secretvalue123" in servers.secrets


def test_per_agent_entries_replace_or_switch_off_global_ones(tmp_path: Path) -> None:
    servers = build(
        tmp_path,
        """
[mcp_servers.a]
command = "a-global"
[mcp_servers.b]
command = "b-global"
[agents.codex.mcp_servers.a]
command = "a-codex"
[agents.codex.mcp_servers.b]
enabled = false
[agents.claude.mcp_servers.c]
url = "http://127.0.0.1:1/mcp"
""",
    )
    names = lambda agent: {s["name"]: s.get("command") or s.get("url") for s in servers.for_agent(agent)}  # noqa: E731
    assert names("codex") == {"a": "a-codex"}
    assert names("claude") == {"a": "a-global", "b": "b-global", "c": "http://127.0.0.1:1/mcp"}
    assert names("gemini") == {"a": "a-global", "b": "b-global"}


def test_the_sessions_own_servers_win_on_a_name_clash(tmp_path: Path) -> None:
    servers = build(tmp_path, '[mcp_servers.a]\ncommand = "cfg-a"\n[mcp_servers.b]\ncommand = "cfg-b"\n')
    own = [{"name": "b", "command": "client-b", "args": [], "env": []}]
    merged, configured = servers.merge("claude", own)
    assert [(s["name"], s["command"]) for s in merged] == [("a", "cfg-a"), ("b", "client-b")]
    assert configured == frozenset({"a"})
    # Merging never changes the configured list itself (each start merges afresh).
    assert [s["command"] for s in servers.for_agent("claude")] == ["cfg-a", "cfg-b"]


def test_cwd_runs_the_server_in_that_directory(tmp_path: Path) -> None:
    work = tmp_path / "srv"
    work.mkdir()
    servers = build(tmp_path, f'[mcp_servers.a]\ncommand = "pwd"\ncwd = "{work}"\n')
    (server,) = servers.default
    assert server["command"] == "/bin/sh" and server["args"][:2] == ["-c", CWD_SHIM]
    out = subprocess.run([server["command"], *server["args"]], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(work)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('command = "x"\nurl = "http://h"', "mcp_servers.bad: has both command and url"),
        (
            'url = "http://h"\ntransport = "websocket"',
            "mcp_servers.bad.transport: 'websocket' is not a transport",
        ),
        ('command = "x"\ntransport = "sse"', "mcp_servers.bad: transport 'sse' needs url, not command"),
        ("args = []", "mcp_servers.bad: needs command (a stdio server) or url"),
        (
            'command = "x"\nenv = { T = "${NOT_SET_ANYWHERE}" }',
            "mcp_servers.bad.env.T: ${NOT_SET_ANYWHERE} is not set",
        ),
        ('url = "http://h/${NOT_SET_ANYWHERE}"', "mcp_servers.bad.url: ${NOT_SET_ANYWHERE} is not set"),
        (
            'command = "x"\nargs = ["--token", "${GITHUB_TOKEN}"]',
            "mcp_servers.bad.args.1: ${GITHUB_TOKEN} is only expanded",
        ),
        ('url = "http://h"\nenv = { A = "b" }', "mcp_servers.bad.env: env is for stdio servers"),
        ('command = "x"\nheaders = { A = "b" }', "mcp_servers.bad.headers: headers are for http and sse"),
        ('command = "x"\nflavour = "y"', "mcp_servers.bad.flavour: Extra inputs are not permitted"),
    ],
)
def test_bad_entries_are_one_line_naming_the_entry(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f"[mcp_servers.bad]\n{body}\n"), ENV)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_per_agent_entry_names_the_agent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, '[agents.codex.mcp_servers.x]\ncommand = "a"\nurl = "http://h"\n'), ENV)
    assert "agents.codex.mcp_servers.x: has both command and url" in str(err.value)


def test_the_daemon_refuses_to_start_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, '[mcp_servers.gh]\ncommand = "gh-mcp"\nenv = { T = "${AB_TEST_UNSET_VAR}" }\n')
    env = subprocess_env()
    env.pop("AB_TEST_UNSET_VAR", None)
    proc = subprocess.run(
        [*bridge_cmd(), "--config", path, "--state-dir", str(tmp_path / "state")],
        input=b"",
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "mcp_servers.gh.env.T: ${AB_TEST_UNSET_VAR} is not set" in lines[0]
