"""Process-level faults with the real, pinned agent CLIs behind the daemon (a real
`python -m bridge` subprocess), against the fake model servers: the agent's own shell tool
starts a descendant that `setsid`s away, then the daemon or the CLI is killed."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from bridge.process.tree import AGENT_ENV, MARKER_ENV
from tests.adapters.claude.support import CLAUDE, ClaudeWorld
from tests.adapters.codex.support import CODEX, Codex
from tests.daemon_proc import DaemonProc, daemon_process
from tests.fakes.model_server import FakeModelServer, Reply, ToolUse
from tests.fakes.openai_responses import responses_server, shell_call
from tests.faults.support import alive, marked
from tests.real_agents import claude_fake, claude_world, make_codex  # noqa: F401 (pytest fixtures)
from tests.waiting import wait_exited, wait_until

pytestmark = pytest.mark.anyio

# Starts an escaping sleeper, then keeps the tool (and so the turn) busy.
BASH = "setsid sleep 1000 >/dev/null 2>&1 </dev/null & sleep 600"


def _config(world: ClaudeWorld, extra: str = "") -> list[str]:
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in world.env().items())
    path = world.tmp / "config.toml"
    path.write_text(
        f'default_agent = "claude"\n{extra}\n[agents.claude]\nprotocol = "claude"\n'
        f"command = {json.dumps(str(CLAUDE))}\nenv = {{ {env} }}\n"
    )
    return ["--config", str(path), "--state-dir", str(world.tmp / "state")]


async def _allow(method: str, params: dict[str, Any]) -> Any:
    option = next(o for o in params["options"] if o["kind"].startswith("allow"))
    return {"outcome": {"outcome": "selected", "optionId": option["optionId"]}}


async def _busy_tool(d: DaemonProc, world: ClaudeWorld) -> tuple[str, str, set[int]]:
    """A session whose Bash tool is running `BASH`; returns the session id, the daemon's
    instance marker and every pid of the daemon's tree (escaped sleeper included)."""
    c = d.client
    c.handler = _allow
    await c.initialize()
    sid = await c.new_session(str(world.ws))
    await c.send_raw(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": "turn",
                "method": "session/prompt",
                "params": {"sessionId": sid, "prompt": [{"type": "text", "text": "run it"}]},
            }
        ).encode()
    )
    daemon = psutil.Process(d.process.pid)
    cli = next(
        p for p in daemon.children() if p.status() != psutil.STATUS_ZOMBIE and p.pid in _agents(daemon)
    )
    instance = cli.environ()[MARKER_ENV]

    def sleeper_started() -> bool:
        return any("sleep 1000" in _cmd(p) for p in marked(instance))

    await wait_until(sleeper_started, 60, "the agent's `sleep 1000` tool to start")
    tree = {p.pid for p in daemon.children(recursive=True)} | set(marked(instance))
    return sid, instance, tree


def _cmd(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""  # gone, or a zombie


def _agents(daemon: psutil.Process) -> set[int]:
    """The daemon's live children that carry a per-agent marker: the agent CLIs (its other
    children, such as the login-shell probe, carry only the instance marker)."""
    found = set()
    for p in daemon.children():
        try:
            if AGENT_ENV in p.environ() and p.status() != psutil.STATUS_ZOMBIE:
                found.add(p.pid)
        except psutil.Error:
            pass
    return found


async def test_daemon_sigkill_mid_tool_leaves_nothing_of_the_real_cli(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    fake.script(Reply(tools=[ToolUse("Bash", {"command": BASH, "description": "wait"})]))
    async with daemon_process(_config(world)) as d:
        with anyio.fail_after(90):
            _, instance, tree = await _busy_tool(d, world)
        assert len(tree) >= 4  # the CLI, its shell, the sleeper, the watchdog...
        d.process.send_signal(signal.SIGKILL)
        try:
            await wait_exited(tree, 5, "the SIGKILLed daemon's process tree")
        finally:
            for p in alive(tree):
                print("SURVIVOR", p, _cmd(p), psutil.Process(p).ppid())
        assert marked(instance) == []


async def test_cli_killed_mid_tool_fails_the_prompt_and_the_next_one_resumes(
    world: ClaudeWorld, fake: FakeModelServer
) -> None:
    fake.script(
        Reply(tools=[ToolUse("Bash", {"command": BASH, "description": "wait"})]),
        Reply(text="back again"),
    )
    async with daemon_process(_config(world)) as d:
        with anyio.fail_after(90):
            sid, instance, _ = await _busy_tool(d, world)
            cli = next(iter(_agents(psutil.Process(d.process.pid))))
            tools = set(marked(instance)) - {cli}  # its shell, the sleeper that left its session
            os.kill(cli, signal.SIGKILL)
            answer = await d.client.wait_response("turn")
        assert answer["error"]["code"] == -32010, answer
        assert answer["error"]["data"]["exitCode"] == -9
        # What the CLI started is stopped with it, the escaped sleeper included.
        await wait_exited(tools, 15, "the SIGKILLed CLI's tools, the escaped sleeper included")
        with anyio.fail_after(90):
            result = await d.client.prompt(sid, "are you there?")
        assert result["stopReason"] == "end_turn"
        assert d.client.text(sid).endswith("back again")
        # The restarted CLI resumed the conversation: the model saw the first prompt again.
        assert "run it" in json.dumps(fake.generations[-1].body)


async def test_cancel_mid_tool_of_the_real_cli(world: ClaudeWorld, fake: FakeModelServer) -> None:
    fake.script(Reply(tools=[ToolUse("Bash", {"command": BASH, "description": "wait"})]))
    async with daemon_process(_config(world, "cancel_grace = 10.0")) as d:
        with anyio.fail_after(90):
            sid, instance, _ = await _busy_tool(d, world)
            started = anyio.current_time()
            await d.client.notify("session/cancel", {"sessionId": sid})
            answer = await d.client.wait_response("turn")
        assert answer["result"]["stopReason"] == "cancelled"
        assert anyio.current_time() - started < 15
        sleepers = [p for p in marked(instance) if "sleep 600" in _cmd(p)]
        await wait_exited(sleepers, 15, "the sleepers of the cancelled tool")
    assert alive(sleepers) == []


@pytest.fixture
def responses() -> Iterator[FakeModelServer]:
    with responses_server() as server:
        yield server


@pytest.fixture
def codex(tmp_path: Path, responses: FakeModelServer) -> Codex:
    return make_codex(tmp_path, responses)


async def test_daemon_sigkill_mid_command_leaves_nothing_of_codex(
    codex: Codex, responses: FakeModelServer
) -> None:
    responses.script(Reply(tools=[shell_call(BASH, "call_busy", escalate=True)]))
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in codex.spec().env.items())
    cfg = codex.home / "bridge.toml"
    cfg.write_text(
        f'default_agent = "codex"\n[agents.codex]\nprotocol = "codex"\ncommand = {json.dumps(str(CODEX))}\n'
        f'args = ["app-server"]\nenv = {{ {env} }}\n'
    )
    async with daemon_process(["--config", str(cfg), "--state-dir", str(codex.home / "state")]) as d:
        with anyio.fail_after(90):
            c = d.client
            c.handler = _allow
            await c.initialize()
            sid = await c.new_session(str(codex.workspace))
            await c.send_raw(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": "turn",
                        "method": "session/prompt",
                        "params": {"sessionId": sid, "prompt": [{"type": "text", "text": "run it"}]},
                    }
                ).encode()
            )
            daemon = psutil.Process(d.process.pid)
            instance = psutil.Process(next(iter(_agents(daemon)))).environ()[MARKER_ENV]
            await wait_until(
                lambda: any("sleep 1000" in _cmd(p) for p in marked(instance)),
                60,
                "Codex's `sleep 1000` to start",
            )
        tree = {p.pid for p in daemon.children(recursive=True)} | set(marked(instance))
        d.process.send_signal(signal.SIGKILL)
        await wait_exited(tree, 5, "the SIGKILLed daemon's process tree")
        assert marked(instance) == []
