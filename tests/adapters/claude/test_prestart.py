"""The CLI is started at `session/new`, ahead of the first prompt (issue 17): when it dies
before that prompt, the prompt and the session fail at once with its exit, never hang; a
session closed, or a daemon stopped, before any prompt leaves no process behind. Against
the real, pinned `claude` CLI and the fake Anthropic server."""

from __future__ import annotations

import os
import signal

import anyio
import psutil
import pytest

from adapters.claude import ClaudeAdapter, create
from bridge.core.adapter import AdapterEnv, AgentSpec
from bridge.errors import AgentExitedError, AgentStartError, find_rpc_error
from tests.daemon_proc import daemon_process
from tests.fakes.model_server import FakeModelServer, Reply
from tests.waiting import running_tree

from .support import ClaudeWorld, Host, open_session, prompt
from .test_daemon import config

pytestmark = pytest.mark.anyio


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _gone(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of `procs` still running (a zombie is not: it only waits for a reap)."""
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            continue
    return alive


async def test_cli_killed_before_the_first_prompt_fails_that_prompt_at_once(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    fake.script(Reply(text="never asked"))
    host = Host()
    with pytest.RaisesGroup(AgentExitedError) as run_err:
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(60):
                session = await tg.start(world.adapter().run, host, world.request())
            pid = session.pid()
            assert pid is not None
            os.killpg(pid, signal.SIGKILL)
            with anyio.fail_after(30), pytest.raises(AgentExitedError) as prompt_err:
                await session.prompt(prompt("hello?"))
            assert prompt_err.value.returncode == -signal.SIGKILL
            assert (
                "signal 9" in prompt_err.value.message
                and prompt_err.value.data["exitCode"] == -signal.SIGKILL
            )
            await anyio.sleep_forever()  # run() ends with the same exit, not a hang
    (exc,) = run_err.value.exceptions
    assert isinstance(exc, AgentExitedError) and exc.returncode == -signal.SIGKILL
    assert fake.generations == []  # the model was never called


async def _start_error(adapter: ClaudeAdapter, world: ClaudeWorld) -> AgentStartError:
    """The error `run` fails with before the session is handed over (the bridge looks through
    exception groups the same way: bridge/core/agent_run.py)."""
    with anyio.fail_after(60), pytest.raises(BaseException) as err:
        await adapter.run(Host(), world.request(), task_status=anyio.TASK_STATUS_IGNORED)
    found = find_rpc_error(err.value)
    assert isinstance(found, AgentStartError), err.value
    return found


async def test_cli_that_cannot_start_fails_session_new_with_its_own_words(world: ClaudeWorld) -> None:
    world.args = ("--no-such-flag-for-the-bridge",)
    err = await _start_error(world.adapter(), world)
    assert "exited during the handshake (exit code 1)" in err.message
    assert "unknown option '--no-such-flag-for-the-bridge'" in err.message
    assert err.data is not None and err.data["exitCode"] == 1

    spec = AgentSpec(name="claude", protocol="claude", command=str(world.tmp / "nope" / "claude"))
    missing = await _start_error(create(spec, AdapterEnv(state_dir=str(world.tmp / "state"))), world)
    assert "does not exist" in missing.message


async def test_session_closed_before_any_prompt_leaves_no_process(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    host = Host()
    async with open_session(world, host) as session:
        pid = session.pid()
        assert pid is not None
        procs = _tree(pid)
        assert any("claude" in argv for _, argv in running_tree(pid))
    # Closing is cancelling run(): it returns only once the CLI's process group is gone.
    assert _gone(procs) == []
    assert fake.generations == []


async def test_daemon_stopped_before_any_prompt_leaves_no_process(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    args = ["--config", str(config(world)), "--state-dir", str(world.tmp / "state")]
    with anyio.fail_after(90):
        async with daemon_process(args) as d:
            await d.client.initialize()
            first = await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []})
            await d.client.request("session/new", {"cwd": str(world.ws), "mcpServers": []})
            tree = running_tree(d.process.pid)
            clis = [psutil.Process(pid) for pid, argv in tree[1:] if "stream-json" in argv]
            assert len(clis) == 2, tree
            # One session closed before its first prompt: its CLI is stopped then and there.
            await d.client.request("session/close", {"sessionId": first["sessionId"]})
            assert len(_gone(clis)) == 1
            # The other stays up until the daemon itself stops (stdin closed on leaving).
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    assert _gone(clis) == []
    assert fake.generations == []
