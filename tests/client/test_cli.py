"""`agent-bridge prompt / sessions / events` run as subprocesses (each spawning its own
daemon over stdio, on one state directory), with the fake ACP agent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.client.support import client_config
from tests.conftest import bridge_cmd, subprocess_env

pytestmark = pytest.mark.anyio


async def cli(
    tmp: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [*bridge_cmd(), "--config", str(client_config(tmp)), "--state-dir", str(tmp / "state"), *args]
    with anyio.fail_after(120):
        done = await anyio.run_process(
            cmd, input=stdin, check=False, env=subprocess_env(**(env or {})), cwd=tmp
        )
    return subprocess.CompletedProcess(cmd, done.returncode, done.stdout.decode(), done.stderr.decode())


def events_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


async def test_prompt_streams_the_answer_to_stdout(tmp_path: Path) -> None:
    done = await cli(tmp_path, "prompt", "--cwd", str(tmp_path), "echo", "hello world")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello world\n"
    assert "session sess_" in done.stderr and "[end_turn]" in done.stderr
    assert "\x1b[" not in done.stderr  # no colour when not on a terminal


async def test_prompt_text_from_stdin(tmp_path: Path) -> None:
    done = await cli(tmp_path, "prompt", stdin=b"echo piped in\n")
    assert (done.returncode, done.stdout) == (0, "piped in\n"), done.stderr


async def test_json_events(tmp_path: Path) -> None:
    done = await cli(tmp_path, "prompt", "--json", "--allow-once", "permission")
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    assert [e["type"] for e in events] == ["session", "update", "permission", "update", "update", "result"]
    assert events[0]["agent"] == "fake" and events[0]["sessionId"].startswith("sess_")
    assert events[1]["update"]["sessionUpdate"] == "tool_call"
    assert events[2]["optionId"] == "allow" and events[2]["title"] == "Write marker"
    assert events[4]["update"]["content"]["text"] == "permission: allow"
    assert events[5] == {
        "type": "result",
        "sessionId": events[0]["sessionId"],
        "stopReason": "end_turn",
        "usage": None,
        "cost": None,
        "exitCode": 0,
    }
    rich = events_of((await cli(tmp_path, "prompt", "--json", "rich", "/x")).stdout)[-1]
    assert rich["usage"]["totalTokens"] == 150 and rich["cost"] == {"amount": 0.25, "currency": "USD"}


@pytest.mark.parametrize(
    ("stop", "code"),
    [
        ("end_turn", 0),
        ("refusal", 3),
        ("max_tokens", 4),
        ("max_turn_requests", 5),
        ("cancelled", 130),
        ("weird", 6),
    ],
)
async def test_exit_code_reflects_the_stop_reason(tmp_path: Path, stop: str, code: int) -> None:
    done = await cli(tmp_path, "prompt", "stop", stop)
    assert done.returncode == code, done.stderr
    assert done.stdout == f"stopping: {stop}\n"


async def test_agent_failure_exits_1_with_the_reason(tmp_path: Path) -> None:
    done = await cli(tmp_path, "prompt", "crash", "9")
    assert done.returncode == 1
    assert "agent 'fake' exited (exit code 9)" in done.stderr and "fatal error, giving up" in done.stderr
    done = await cli(tmp_path, "prompt", "--json", "crash")
    (error,) = [e for e in events_of(done.stdout) if e["type"] == "error"]
    assert error["error"]["code"] == -32010 and error["exitCode"] == 1 and done.returncode == 1


async def test_permission_flags(tmp_path: Path) -> None:
    allowed = await cli(tmp_path, "prompt", "--allow-once", "permission")
    assert allowed.stdout == "permission: allow\n" and "Write marker" in allowed.stderr
    always = await cli(tmp_path, "prompt", "--allow-always", "permission")
    assert always.stdout == "permission: allow\n"  # only allow_once offered: the narrower grant
    denied = await cli(tmp_path, "prompt", "--deny", "permission")
    assert denied.stdout == "permission: reject\n"
    policy = await cli(tmp_path, "prompt", "--permission-policy", "allow_once", "permission")
    assert policy.stdout == "permission: allow\n"
    # No terminal to ask on and no flag: rejected, and said so.
    default = await cli(tmp_path, "prompt", "permission")
    assert default.stdout == "permission: reject\n" and "no terminal to ask on" in default.stderr
    assert all(d.returncode == 0 for d in (allowed, always, denied, policy, default))


async def test_continue_a_session_then_list_it_and_print_its_history(tmp_path: Path) -> None:
    first = await cli(tmp_path, "prompt", "--json", "--title", "CLI session", "--model", "smart", "echo one")
    sid = events_of(first.stdout)[0]["sessionId"]
    second = await cli(tmp_path, "prompt", "--session", sid, "--set", "effort=high", "echo two")
    assert second.returncode == 0 and second.stdout == "two\n", second.stderr
    assert f"session {sid}" in second.stderr

    listed = await cli(tmp_path, "sessions")
    assert listed.returncode == 0
    assert sid in listed.stdout and "CLI session" in listed.stdout and "fake" in listed.stdout
    rows = events_of((await cli(tmp_path, "sessions", "--json")).stdout)
    assert [(r["sessionId"], r["title"], r["status"]) for r in rows] == [(sid, "CLI session", "closed")]

    history = await cli(tmp_path, "events", sid)
    assert history.returncode == 0
    assert 'session/prompt "echo one"' in history.stdout and 'session/prompt "echo two"' in history.stdout
    assert "→ stopReason end_turn" in history.stdout and "session/resume" in history.stdout
    logged = events_of((await cli(tmp_path, "events", sid, "--json")).stdout)
    assert [e["seq"] for e in logged] == list(range(1, len(logged) + 1))
    sets = [
        e["message"]["params"] for e in logged if e["message"].get("method") == "session/set_config_option"
    ]
    assert [(p["configId"], p["value"]) for p in sets] == [("model", "smart"), ("effort", "high")]
    assert len(events_of((await cli(tmp_path, "events", sid, "--json", "--limit", "3")).stdout)) == 3
    after = events_of((await cli(tmp_path, "events", sid, "--json", "--after", "5")).stdout)
    assert after[0]["seq"] == 6


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    nothing = await cli(tmp_path, "prompt")
    assert nothing.returncode == 2 and "no prompt" in nothing.stderr
    unknown = await cli(tmp_path, "prompt", "--agent", "nope", "hi")
    assert unknown.returncode == 2 and "unknown agent 'nope'" in unknown.stderr and "fake" in unknown.stderr
    bad_set = await cli(tmp_path, "prompt", "--set", "novalue", "hi")
    assert bad_set.returncode == 2 and "ID=VALUE" in bad_set.stderr
    both = await cli(tmp_path, "prompt", "--allow-once", "--deny", "hi")
    assert both.returncode == 2 and "not allowed with" in both.stderr


async def test_unknown_session_is_a_clear_error(tmp_path: Path) -> None:
    events = await cli(tmp_path, "events", "sess_nope")
    assert events.returncode == 1 and "unknown session" in events.stderr
    prompt = await cli(tmp_path, "prompt", "--session", "sess_nope", "hi")
    assert prompt.returncode == 1 and "unknown session" in prompt.stderr
    empty = await cli(tmp_path, "sessions")
    assert empty.returncode == 0 and empty.stdout == "" and "no sessions" in empty.stderr
