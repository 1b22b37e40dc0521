"""`agent-bridge prompt --session` on a session the agent lost: each command runs its own
daemon, and the fake ACP agent here keeps no state (`FAKE_ACP_STATE=""`), so the next
command's agent no longer knows the session — the restart-without-persistence case."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.acp_schema import check_bridge_def
from tests.conftest import bridge_cmd, fake_agent_config, subprocess_env

pytestmark = pytest.mark.anyio


async def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = fake_agent_config(tmp, FAKE_ACP_STATE="")
    cmd = [*bridge_cmd(), "--config", str(config), "--state-dir", str(tmp / "state"), *args]
    with anyio.fail_after(120):
        done = await anyio.run_process(cmd, check=False, env=subprocess_env(), cwd=tmp)
    return subprocess.CompletedProcess(cmd, done.returncode, done.stdout.decode(), done.stderr.decode())


async def _first_turn(tmp: Path) -> str:
    first = await cli(tmp, "prompt", "--json", "echo", "remember the blue door")
    assert first.returncode == 0, first.stderr
    sid: str = json.loads(first.stdout.splitlines()[0])["sessionId"]
    return sid


async def test_prompt_session_continues_by_default_and_says_so_on_stderr(tmp_path: Path) -> None:
    sid = await _first_turn(tmp_path)
    done = await cli(tmp_path, "prompt", "--session", sid, "recall")
    assert done.returncode == 0, done.stderr
    assert "User: echo remember the blue door" in done.stdout
    assert "Assistant: remember the blue door" in done.stdout
    assert f"no longer had session {sid}" in done.stderr and "--no-continue" in done.stderr
    assert "1 earlier turn" in done.stderr
    # The same bridge session goes on: a third command continues it again (this agent forgets
    # everything at each start), with both earlier turns in the transcript.
    third = await cli(tmp_path, "prompt", "--json", "--session", sid, "recall")
    assert third.returncode == 0, third.stderr
    events = [json.loads(line) for line in third.stdout.splitlines()]
    continued = next(e for e in events if e["type"] == "continued")
    assert continued["sessionId"] == sid and continued["turns"] == 2
    check_bridge_def("Continued", {k: v for k, v in continued.items() if k not in ("type", "sessionId")})
    text = "".join(
        e["update"]["content"]["text"]
        for e in events
        if e["type"] == "update" and e["update"]["sessionUpdate"] == "agent_message_chunk"
    )
    assert "User: echo remember the blue door" in text and "User: recall" in text
    assert "no longer had session" in third.stderr


async def test_no_continue_refuses_with_the_error_that_names_the_way_on(tmp_path: Path) -> None:
    sid = await _first_turn(tmp_path)
    done = await cli(tmp_path, "prompt", "--no-continue", "--session", sid, "recall")
    assert done.returncode == 1
    assert done.stdout == ""
    assert sid in done.stderr and "'fake'" in done.stderr and "_meta.bridge.continue" in done.stderr
    as_json = await cli(tmp_path, "prompt", "--json", "--no-continue", "--session", sid, "recall")
    error = json.loads(as_json.stdout.splitlines()[-1])["error"]
    assert error["code"] == -32002 and error["data"]["reason"] == "agent_lost_session"
    check_bridge_def("LostSessionErrorData", error["data"])
    # Refusing changed nothing: continuing afterwards still has the first turn.
    later = await cli(tmp_path, "prompt", "--session", sid, "recall")
    assert later.returncode == 0 and "User: echo remember the blue door" in later.stdout, later.stderr
