"""Agent start-up failures: each gives an error naming the agent and the cause, within a
bounded time, and leaves no process behind."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import anyio
import pytest

from tests.acp_client import RpcFailure
from tests.conftest import in_process
from tests.faults.support import FAULT_AGENT, fault_config, marked

pytestmark = pytest.mark.anyio


async def _new_session_error(
    tmp_path: Path, config: Path, within: float = 20, **settings: float
) -> RpcFailure:
    async with in_process(tmp_path, config, **settings) as d:
        await d.client.initialize()
        with anyio.fail_after(within), pytest.raises(RpcFailure) as err:
            await d.client.new_session(d.cwd)
        return err.value


def _with_command(tmp_path: Path, command: str, args: str = "[]") -> Path:
    cfg = fault_config(tmp_path)
    text = cfg.read_text()
    start = text.index("command = ")
    end = text.index("\n", text.index("args = "))
    cfg.write_text(text[:start] + f'command = "{command}"\nargs = {args}' + text[end:])
    return cfg


async def test_missing_binary(tmp_path: Path) -> None:
    err = await _new_session_error(tmp_path, _with_command(tmp_path, "no-such-agent-binary-xyz"))
    assert err.code == -32011
    assert "'fault'" in str(err.message) and "no-such-agent-binary-xyz" in str(err.message)
    assert "PATH" in str(err.message)
    assert err.data["agent"] == "fault"


async def test_missing_absolute_path(tmp_path: Path) -> None:
    err = await _new_session_error(tmp_path, _with_command(tmp_path, str(tmp_path / "nope")))
    assert err.code == -32011 and "does not exist" in str(err.message) and "'fault'" in str(err.message)


async def test_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    err = await _new_session_error(tmp_path, _with_command(tmp_path, str(script)))
    assert err.code == -32011 and "not executable" in str(err.message) and "'fault'" in str(err.message)


async def test_not_a_program(tmp_path: Path) -> None:
    # Executable bits but no `#!` and not a binary: exec fails with ENOEXEC.
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01\x02 not a program\n")
    junk.chmod(0o755)
    err = await _new_session_error(tmp_path, _with_command(tmp_path, str(junk)))
    assert err.code == -32011 and "'fault'" in str(err.message) and str(junk) in str(err.message)


@pytest.mark.parametrize("attempt", range(3))
async def test_exits_at_once_with_its_stderr(tmp_path: Path, attempt: int) -> None:
    # Repeated: the exit code and stderr must be there every time, not by luck of scheduling.
    cfg = fault_config(tmp_path, agent_env={"FAKE_ACP_START": "exit"})
    err = await _new_session_error(tmp_path, cfg)
    # -32000: the daemon recognises "not logged in" on stderr as ACP's auth_required.
    assert err.code in (-32000, -32010, -32011), err.message
    assert "'fault'" in str(err.message)
    assert "not logged in" in str(err.message)
    assert err.data["exitCode"] == 7
    assert "run `fake login` first" in err.data["stderrTail"]


async def test_exits_during_session_open(tmp_path: Path) -> None:
    # Answers initialize, then dies on session/new: an exit code, not a bare "connection closed".
    shim = tmp_path / "dies_on_new.py"
    shim.write_text(
        "import os, runpy, sys\n"
        f"sys.path.insert(0, {str(FAULT_AGENT.parent.parent / 'fakes')!r})\n"
        "import fake_acp_agent as base\n"
        "orig = base.handle\n"
        "def handle(msg):\n"
        "    if msg.get('method') == 'session/new':\n"
        "        sys.stderr.write('boom: cannot open session\\n'); sys.stderr.flush(); os._exit(9)\n"
        "    orig(msg)\n"
        "base.handle = handle\n"
        "base.main()\n"
    )
    err = await _new_session_error(tmp_path, _with_command(tmp_path, sys.executable, f'["{shim}"]'))
    assert err.code in (-32010, -32011), err.message
    assert err.data["exitCode"] == 9 and "boom: cannot open session" in err.data["stderrTail"]
    assert "'fault'" in str(err.message) and "boom" in str(err.message)


async def test_never_answers_initialize(tmp_path: Path) -> None:
    cfg = fault_config(tmp_path, agent_env={"FAKE_ACP_START": "noinit"})
    started = anyio.current_time()
    err = await _new_session_error(tmp_path, cfg, handshake_timeout=1.0)
    assert anyio.current_time() - started < 15
    assert err.code == -32011 and "'fault'" in str(err.message) and "initialize" in str(err.message)


async def test_never_answers_session_new(tmp_path: Path) -> None:
    shim = tmp_path / "silent_on_new.py"
    shim.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(FAULT_AGENT.parent.parent / 'fakes')!r})\n"
        "import fake_acp_agent as base\n"
        "orig = base.handle\n"
        "def handle(msg):\n"
        "    if msg.get('method') != 'session/new':\n"
        "        orig(msg)\n"
        "base.handle = handle\n"
        "base.main()\n"
    )
    started = anyio.current_time()
    err = await _new_session_error(
        tmp_path, _with_command(tmp_path, sys.executable, f'["{shim}"]'), handshake_timeout=1.0
    )
    assert anyio.current_time() - started < 15
    assert err.code == -32011 and "'fault'" in str(err.message) and "sent nothing" in str(err.message)


async def test_auth_required_is_passed_through(tmp_path: Path) -> None:
    cfg = fault_config(tmp_path, agent_env={"FAKE_ACP_START": "authreq"})
    err = await _new_session_error(tmp_path, cfg)
    assert err.code == -32000
    assert "Authentication required" in str(err.message)


async def test_failed_starts_leave_no_process(tmp_path: Path) -> None:
    from bridge.process.tree import INSTANCE_ID

    for start in ("exit", "authreq"):
        cfg = fault_config(tmp_path, agent_env={"FAKE_ACP_START": start})
        await _new_session_error(tmp_path, cfg)
    assert marked(INSTANCE_ID) == []
