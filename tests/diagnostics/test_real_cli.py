"""The real Claude Code and Codex CLIs with no login and no key (HOME, CLAUDE_CONFIG_DIR and
CODEX_HOME isolated in tmp): their own "not logged in" answers reach the client as ACP
`auth_required` (-32000) with what to do, through the daemon and its native adapters; and
`doctor` sees the missing credentials without starting a session.

Nothing reaches a real model: Claude Code refuses before any request when it has no
credentials (its base URL points at a closed local port anyway), and Codex is pointed at a
local stub that answers 401 the way the OpenAI API does for a missing key.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from bridge.errors import AUTH_REQUIRED
from tests.acp_client import RpcFailure
from tests.conftest import bridge_cmd, in_process, subprocess_env
from tests.diagnostics.support import write_config
from tests.real_agents import installed_version, require_cli

pytestmark = pytest.mark.anyio

CREDENTIAL_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "CODEX_HOME",
    "CLAUDE_CONFIG_DIR",
)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    return home


def claude_agent(tmp: Path, home: Path) -> dict[str, Any]:
    return {
        "command": str(require_cli("claude")),
        "env": {
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(tmp / "claude-config"),
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",  # closed: nothing can leave the machine
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        },
    }


async def test_claude_not_logged_in_is_auth_required(tmp_path: Path, no_credentials: Path) -> None:
    config = write_config(tmp_path / "config.toml", {"claude": claude_agent(tmp_path, no_credentials)})
    async with in_process(tmp_path, config, login_shell_env=False) as d:
        await d.client.initialize()
        with anyio.fail_after(90):
            sid = await d.client.new_session(d.cwd, agent="claude")
            with pytest.raises(RpcFailure) as info:
                await d.client.prompt(sid, "hello")
    err = info.value
    assert err.code == AUTH_REQUIRED, err
    assert err.data["kind"] == "auth"
    message = str(err.message)
    assert message.startswith("Agent 'claude' is not logged in")
    assert "run `claude` in a terminal and log in with /login" in message and "ANTHROPIC_API_KEY" in message
    assert "Not logged in" in message  # the CLI's own words, kept as the details


class _Unauthorized(BaseHTTPRequestHandler):
    """The OpenAI API's answer to a request without a valid key."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps(
            {
                "error": {
                    "message": "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "type": "invalid_request_error",
                    "code": None,
                }
            }
        ).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def unauthorized() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def codex_home(tmp: Path, base_url: str) -> Path:
    home = tmp / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'openai_base_url = "{base_url}"\ncheck_for_update_on_startup = false\n'
        "[analytics]\nenabled = false\n"
        "[features]\nplugins = false\napps = false\nremote_plugin = false\n"
    )
    return home


async def test_codex_without_a_key_is_auth_required(
    tmp_path: Path, no_credentials: Path, unauthorized: str
) -> None:
    agent = {
        "command": str(require_cli("codex")),
        "env": {"HOME": str(no_credentials), "CODEX_HOME": str(codex_home(tmp_path, unauthorized))},
    }
    config = write_config(tmp_path / "config.toml", {"codex": agent})
    async with in_process(tmp_path, config, login_shell_env=False) as d:
        await d.client.initialize()
        # Codex retries a few times (about 15 s) before it gives up on a 401.
        with anyio.fail_after(120):
            sid = await d.client.new_session(d.cwd, agent="codex")
            with pytest.raises(RpcFailure) as info:
                await d.client.prompt(sid, "hello")
    err = info.value
    assert err.code == AUTH_REQUIRED, err
    assert err.data["kind"] == "auth"
    message = str(err.message)
    assert message.startswith("Agent 'codex' is not logged in")
    assert "run `codex login` in a terminal" in message and "OPENAI_API_KEY" in message
    assert "401 Unauthorized" in message


def test_doctor_sees_both_are_not_logged_in(tmp_path: Path, no_credentials: Path) -> None:
    claude, codex = require_cli("claude"), require_cli("codex")
    config = write_config(
        tmp_path / "config.toml",
        {"claude": {"command": str(claude)}, "codex": {"command": str(codex)}},
        login_shell_env=False,
    )
    env = subprocess_env(HOME=str(no_credentials))
    for var in CREDENTIAL_VARS:
        env.pop(var, None)
    done = subprocess.run(
        [
            *bridge_cmd(),
            "doctor",
            "--json",
            "--config",
            str(config),
            "--state-dir",
            str(tmp_path / "s"),
            "claude",
            "codex",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    agents = {a["name"]: a for a in json.loads(done.stdout)["agents"]}
    for name, version, fix in [("claude", "2.", "/login"), ("codex", installed_version("codex"), "codex login")]:
        checks = {c["name"]: c for c in agents[name]["checks"]}
        assert checks["installed"]["status"] == "ok"
        assert agents[name]["version"] and agents[name]["version"].startswith(version)
        assert checks["credentials"]["status"] == "error", checks
        assert "not logged in" in checks["credentials"]["summary"] and fix in checks["credentials"]["fix"]
        assert "handshake" not in checks  # native agents: nothing is started, nothing is sent
    assert os.path.exists(tmp_path / "s")
