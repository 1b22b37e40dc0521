"""Logins through the editor: `initialize` advertises ACP terminal auth for the native
agents and the default ACP agent's own methods; the client runs the terminal method (here a
fake login program stands in for `claude auth login`); `logout` runs the CLI's logout; a
session that fails for a missing login names the methods that fix it. Every message the
daemon sends is checked against the ACP v1 schema by `AcpClient`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from bridge.acp import auth
from bridge.core.adapter import AgentSpec
from tests.acp_client import RpcFailure
from tests.conftest import bridge_cmd, fake_agent_config, in_process, subprocess_env

pytestmark = pytest.mark.anyio

# Stands in for the `claude` CLI: records how it was run, exits with FAKE_LOGIN_EXIT.
FAKE_LOGIN = """\
import json, os, sys
with open(os.environ["FAKE_LOGIN_LOG"], "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "config": os.environ.get("CLAUDE_CONFIG_DIR"),
                        "tty_in": os.isatty(0)}) + "\\n")
sys.exit(int(os.environ.get("FAKE_LOGIN_EXIT", "0")))
"""


def _native_config(tmp: Path) -> tuple[Path, Path]:
    program = tmp / "fake-claude"
    program.write_text(f"#!{sys.executable}\n{FAKE_LOGIN}")
    program.chmod(0o755)
    log = tmp / "login.jsonl"
    config = tmp / "config.toml"
    env = {"FAKE_LOGIN_LOG": str(log), "CLAUDE_CONFIG_DIR": str(tmp / "claude-config")}
    config.write_text(
        'default_agent = "claude"\nlogin_shell_env = false\n[agents.claude]\n'
        f"command = {json.dumps(str(program))}\n"
        "env = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items()) + " }\n"
    )
    return config, log


def _runs(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def test_terminal_login_for_a_native_agent(tmp_path: Path) -> None:
    config, log = _native_config(tmp_path)
    async with in_process(tmp_path, config) as d:
        init = await d.client.initialize(auth={"terminal": True})
        methods = init["authMethods"]
        assert [m["id"] for m in methods] == ["claude-login"]
        method = methods[0]
        assert method["type"] == "terminal" and method["args"] == ["--login", "claude"]
        assert init["agentCapabilities"]["auth"] == {"logout": {}}

        # The client runs its configured invocation of the bridge plus the method's args
        # and env, in a terminal: the bridge runs the CLI's login with the agent's settings.
        invocation = [*bridge_cmd(), "--config", str(config), "--agent", "claude"]
        with anyio.fail_after(60):
            done = await anyio.run_process(
                [*invocation, *method["args"]], env=subprocess_env(**method["env"]), check=False
            )
        assert done.returncode == 0, done.stderr
        assert _runs(log) == [
            {"argv": ["auth", "login"], "config": str(tmp_path / "claude-config"), "tty_in": False}
        ]
        # A failed login is the login's exit code (ACP: non-zero means it did not work).
        with anyio.fail_after(60):
            failed = await anyio.run_process(
                [*invocation, *method["args"]], env=subprocess_env(FAKE_LOGIN_EXIT="3", **method["env"]), check=False
            )
        assert failed.returncode == 3

        assert await d.client.request("logout", {}) == {}
        assert _runs(log)[-1]["argv"] == ["auth", "logout"]


async def test_without_terminal_support_the_login_is_an_agent_method(tmp_path: Path) -> None:
    config, log = _native_config(tmp_path)
    async with in_process(tmp_path, config) as d:
        init = await d.client.initialize()
        (method,) = init["authMethods"]
        assert method["id"] == "claude-login" and "type" not in method
        assert "agent-bridge login claude" in method["description"]
        result = await d.client.request("authenticate", {"methodId": "claude-login"})
        assert result["_meta"]["bridge"]["login"] == "agent-bridge login claude"
    assert _runs(log) == []  # nothing was run for it


def test_login_command_runs_the_cli_login(tmp_path: Path) -> None:
    config, log = _native_config(tmp_path)
    done = subprocess.run(
        [*bridge_cmd(), "--config", str(config), "login", "claude"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert _runs(log)[0]["argv"] == ["auth", "login"]


async def test_no_default_agent_offers_the_native_logins(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("login_shell_env = false\n")
    async with in_process(tmp_path, config) as d:
        init = await d.client.initialize(auth={"terminal": True})
        ids = {m["id"]: m for m in init["authMethods"]}
        assert set(ids) == {"claude-login", "codex-login"}
        assert ids["codex-login"]["args"] == ["--login", "codex"]


async def test_acp_agent_methods_pass_through_and_fix_auth_required(tmp_path: Path) -> None:
    config = fake_agent_config(tmp_path, FAKE_ACP_START="authreq")
    async with in_process(tmp_path, config) as d:
        init = await d.client.initialize(auth={"terminal": True})
        assert init["authMethods"] == [{"id": "fake-login", "name": "Fake login"}]
        with pytest.raises(RpcFailure) as err:
            await d.client.new_session(d.cwd)
        assert err.value.code == -32000
        assert err.value.data["authMethods"] == [{"id": "fake-login", "name": "Fake login"}]


def test_an_agents_terminal_method_runs_through_the_bridge() -> None:
    spec = AgentSpec("qwen", "acp", "qwen", ("--acp",))
    draft = {"id": "openai", "name": "Use OpenAI API key", "_meta": {"type": "terminal", "args": ["--auth-type=openai"]}}
    stable = {"id": "t", "name": "T", "type": "terminal", "args": ["login"], "env": {"A": "1"}}
    other = {"id": "e", "name": "E", "type": "env_var", "vars": [{"name": "KEY"}]}
    methods = auth.passed_through(spec, [draft, stable, other], terminal=True)
    assert methods == [
        {
            "id": "openai",
            "name": "Use OpenAI API key",
            "type": "terminal",
            "args": ["--login", "qwen"],
            "env": {auth.LOGIN_ARGS_ENV: '["--auth-type=openai"]'},
        },
        {"id": "t", "name": "T", "type": "terminal", "args": ["--login", "qwen"], "env": {"A": "1", auth.LOGIN_ARGS_ENV: '["login"]'}},
    ]
    assert auth.passed_through(spec, [draft, stable], terminal=False) == []
    # What the bridge then runs: the agent's own invocation plus the method's args.
    assert auth.login_argv(spec, auth.login_args({auth.LOGIN_ARGS_ENV: '["--auth-type=openai"]'})) == [
        "qwen",
        "--acp",
        "--auth-type=openai",
    ]
    assert os.sep not in auth.method_id(spec)
