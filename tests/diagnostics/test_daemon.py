"""The real daemon process: agents found through the user's login shell, the protocol trace
(`--trace`) with secrets masked, and the daily log file."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.acp_client import RpcFailure
from tests.conftest import FAKE_AGENT
from tests.daemon_proc import daemon_process
from tests.diagnostics.support import fake_acp, script, write_config
from tests.real_agents import require_program

pytestmark = pytest.mark.anyio

BASH = shutil.which("bash")
BOUND = 60.0
SECRET = "s3cr3t-value-for-the-trace"
KEY_SHAPED = "sk-ant-api03-AAAABBBBCCCCDDDDEEEEFFFF"


def login_home(tmp: Path) -> tuple[Path, Path]:
    """A HOME whose login shell puts an nvm-like directory holding `fake-acp` on PATH."""
    home = tmp / "home"
    bindir = home / ".nvm" / "versions" / "node" / "v22.1.0" / "bin"
    agent = script(bindir / "fake-acp", f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_AGENT}" "$@"\n')
    (home / ".bash_profile").write_text(
        'echo "motd: welcome"\nexport PATH="$HOME/.nvm/versions/node/v22.1.0/bin:$PATH"\n'
    )
    return home, agent


@pytest.mark.parametrize("login_shell_env", [True, False])
async def test_agents_are_found_through_the_login_shell(tmp_path: Path, login_shell_env: bool) -> None:
    require_program("bash")
    home, agent = login_home(tmp_path)
    state = tmp_path / "state"
    config = write_config(
        tmp_path / "config.toml",
        {"nvm-agent": {"protocol": "acp", "command": "fake-acp"}},
        default_agent="nvm-agent",
        login_shell_env=login_shell_env,
    )
    env = {"HOME": str(home), "SHELL": str(BASH), "PATH": "/usr/bin:/bin"}
    work = tmp_path / "work"
    work.mkdir()
    async with daemon_process(["--config", str(config), "--state-dir", str(state)], env=env) as d:
        with anyio.fail_after(BOUND):
            await d.client.initialize()
            if not login_shell_env:
                with pytest.raises(RpcFailure) as info:
                    await d.client.new_session(str(work))
                assert info.value.data["kind"] == "not_found"
                assert "'fake-acp' was not found on PATH (looked in /usr/bin, /bin, " in str(
                    info.value.message
                )
                return
            sid = await d.client.new_session(str(work))
            assert (await d.client.prompt(sid, "echo found"))["stopReason"] == "end_turn"
    # The catalog knows which binary ran the session.
    db = sqlite3.connect(state / "sessions.db")
    try:
        (path,) = db.execute("SELECT agent_path FROM sessions WHERE id = ?", (sid,)).fetchone()
    finally:
        db.close()
    assert path == str(agent)
    cached = json.loads((state / "login-env.json").read_text())
    assert str(agent.parent) in cached["env"]["PATH"]


def read_trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_trace_has_every_frame_with_secrets_masked(tmp_path: Path) -> None:
    state = tmp_path / "state"
    trace = tmp_path / "trace.jsonl"
    config = write_config(
        tmp_path / "config.toml",
        {"fake": fake_acp(FAKE_ACP_START="banner", FAKE_AGENT_API_KEY="agent-config-key-0123")},
        default_agent="fake",
        login_shell_env=False,
    )
    env = {"MY_SERVICE_TOKEN": SECRET}
    work = tmp_path / "work"
    work.mkdir()
    args = ["--config", str(config), "--state-dir", str(state), "--trace", str(trace), "--log-level", "debug"]
    async with daemon_process(args, env=env) as d:
        with anyio.fail_after(BOUND):
            await d.client.initialize()
            sid = await d.client.new_session(str(work))
            said = f"echo {SECRET} {KEY_SHAPED} agent-config-key-0123"
            await d.client.prompt(sid, said)
        # The trace masks; the conversation itself is untouched.
        assert SECRET in d.client.text(sid) and KEY_SHAPED in d.client.text(sid)
    text = trace.read_text()
    for secret in (SECRET, KEY_SHAPED, "agent-config-key-0123"):
        assert secret not in text
        assert secret not in bytes(d.stderr).decode()
        for log in (state / "logs").glob("agent-bridge-*.log"):
            assert secret not in log.read_text()
    assert "***" in text
    records = read_trace(trace)
    assert all("ts" in r and r["ts"].endswith("Z") and "dir" in r for r in records)
    dirs = {r["dir"] for r in records}
    assert {"client>bridge", "bridge>client", "bridge>agent", "agent>bridge"} <= dirs

    def find(direction: str, pred: Any) -> dict[str, Any]:
        return next(r for r in records if r["dir"] == direction and pred(r.get("msg") or {}))

    prompt_in = find("client>bridge", lambda m: m.get("method") == "session/prompt")
    assert prompt_in["session"] == sid and prompt_in["msg"]["params"]["prompt"][0]["text"].startswith(
        "echo ***"
    )
    answer = find("bridge>client", lambda m: m.get("id") == prompt_in["msg"]["id"])
    assert answer["session"] == sid and answer["msg"]["result"]["stopReason"] == "end_turn"
    to_agent = find("bridge>agent", lambda m: m.get("method") == "session/prompt")
    assert to_agent["session"] == sid and to_agent["agentSession"].startswith("agent-")
    update = find("agent>bridge", lambda m: m.get("method") == "session/update")
    assert update["agent"] == "fake" and isinstance(update["pid"], int)
    # The agent's banner is in the trace (as raw text), though it never reached the client.
    assert any(r["dir"] == "agent>bridge" and "Welcome to fake agent" in r.get("raw", "") for r in records)
    # Daily log file, written at info by default.
    logs = list((state / "logs").glob("agent-bridge-*.log"))
    assert len(logs) == 1 and "protocol trace on" in logs[0].read_text()
