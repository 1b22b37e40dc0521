"""ACP conformance-kit requirements with the real, pinned Claude Code and Codex CLIs behind the
daemon (a real `python -m bridge` subprocess over stdio), against the fake model servers:
`session/close` during a prompt ends it `cancelled` within 2 s, answers after it, sends nothing
for the session afterwards and leaves no process; a cancelled prompt's answer is the last thing
of its turn; a load replays everything before its answer.

"Nothing after" is shown with a barrier through the agent itself: a request the CLI answers
(`_claude/mcp_status`, `_codex/thread/read`) comes after everything it wrote before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from tests.acp_client import AcpClient
from tests.adapters.claude.support import CLAUDE, ClaudeWorld, make_world
from tests.adapters.codex.support import CODEX, Codex
from tests.daemon_proc import daemon_process
from tests.fakes.anthropic import anthropic_server
from tests.fakes.model_server import FakeModelServer, Reply
from tests.fakes.openai_responses import responses_server, write_codex_home
from tests.faults.support import agent_pid
from tests.real_agents import require_cli
from tests.waiting import wait_exited

pytestmark = pytest.mark.anyio


@dataclass
class Rig:
    """One real agent behind the daemon: its daemon arguments and a barrier request."""

    name: str
    args: list[str]
    cwd: str
    fake: FakeModelServer
    barrier: str  # an extension method the agent itself answers
    # One agent process serves all the daemon's sessions (Codex: spec/codex-shared-server.md):
    # closing a session ends its thread, not the process.
    shared: bool = False

    def long_turn(self) -> None:
        self.fake.script(Reply(text="word " * 300, chunks=300, delay=0.03), Reply(text="after"))


def _toml_env(env: dict[str, str]) -> str:
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())


@pytest.fixture
def claude(tmp_path: Path) -> Iterator[Rig]:
    require_cli("claude")
    with anthropic_server() as fake:
        world: ClaudeWorld = make_world(tmp_path, fake)
        path = tmp_path / "config.toml"
        path.write_text(
            'default_agent = "claude"\nlogin_shell_env = false\n[agents.claude]\nprotocol = "claude"\n'
            f"command = {json.dumps(str(CLAUDE))}\nenv = {{ {_toml_env(world.env())} }}\n"
        )
        args = ["--config", str(path), "--state-dir", str(tmp_path / "state")]
        yield Rig("claude", args, str(world.ws), fake, "_claude/mcp_status")


@pytest.fixture
def codex(tmp_path: Path) -> Iterator[Rig]:
    require_cli("codex")
    with responses_server() as fake:
        home = tmp_path / "home"
        workspace = tmp_path / "ws"
        workspace.mkdir()
        write_codex_home(home / "codex-home", fake.url)
        spec = Codex(home=home, workspace=workspace).spec()
        path = home / "bridge.toml"
        path.write_text(
            'default_agent = "codex"\nlogin_shell_env = false\n[agents.codex]\nprotocol = "codex"\n'
            f'command = {json.dumps(str(CODEX))}\nargs = ["app-server"]\nenv = {{ {_toml_env(dict(spec.env))} }}\n'
        )
        args = ["--config", str(path), "--state-dir", str(home / "state")]
        yield Rig("codex", args, str(workspace), fake, "_codex/thread/read", shared=True)


@pytest.fixture(params=["claude", "codex"])
def rig(request: pytest.FixtureRequest) -> Rig:
    value: Rig = request.getfixturevalue(request.param)
    return value


def for_session(c: AcpClient, sid: str, start: int, end: int | None = None) -> list[dict[str, Any]]:
    return [
        m
        for m in c.received[start:end]
        if isinstance(m.get("params"), dict) and m["params"].get("sessionId") == sid
    ]


def updates_between(c: AcpClient, sid: str, start: int, end: int) -> list[dict[str, Any]]:
    return [m for m in for_session(c, sid, start, end) if m.get("method") == "session/update"]


async def start_turn(c: AcpClient, sid: str) -> None:
    await c.send_request(
        "turn", "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "talk a lot"}]}
    )
    with anyio.fail_after(60):
        await c.wait_for(
            lambda n: (
                n["method"] == "session/update"
                and n["params"]["sessionId"] == sid
                and n["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
            )
        )


async def barrier(c: AcpClient, rig: Rig, sid: str) -> int:
    """Ask the agent something; returns where its answer is in `received`."""
    await c.send_request("barrier", rig.barrier, {"sessionId": sid})
    with anyio.fail_after(30):
        answer = await c.wait_response("barrier")
    assert "result" in answer, answer
    return c.response_index("barrier")


async def test_close_during_a_prompt_ends_it_cancelled(rig: Rig) -> None:
    rig.long_turn()
    async with daemon_process(rig.args) as d:
        c = d.client
        with anyio.fail_after(60):
            await c.initialize()
            sid = await c.new_session(rig.cwd)
        await start_turn(c, sid)
        root = psutil.Process(await agent_pid(c, sid))
        tree = [root.pid, *(p.pid for p in root.children(recursive=True))]
        started = anyio.current_time()
        await c.send_request("close", "session/close", {"sessionId": sid})
        with anyio.fail_after(10):
            answer = await c.wait_response("turn")
        took = anyio.current_time() - started
        with anyio.fail_after(10):
            closed = await c.wait_response("close")
        assert answer.get("result", {}).get("stopReason") == "cancelled", answer
        assert took < 2, f"the prompt resolved {took:.2f} s after session/close"
        assert closed["result"] == {}
        close_at = c.response_index("close")
        assert c.response_index("turn") < close_at
        if rig.shared:
            assert root.is_running() and root.status() != psutil.STATUS_ZOMBIE
        else:
            await wait_exited(tree, 10, "the closed session's agent process tree")
        await c.request("session/list", {})  # whatever was queued before it has arrived
        assert for_session(c, sid, close_at + 1) == []
    assert d.process.returncode == 0, d.stderr.decode()[-2000:]
    await wait_exited(tree, 10, "the agent process tree after the daemon exited")


async def test_nothing_of_a_cancelled_turn_after_its_answer(rig: Rig) -> None:
    rig.long_turn()
    async with daemon_process(rig.args) as d:
        c = d.client
        with anyio.fail_after(60):
            await c.initialize()
            sid = await c.new_session(rig.cwd)
        await start_turn(c, sid)
        await c.notify("session/cancel", {"sessionId": sid})
        with anyio.fail_after(15):
            answer = await c.wait_response("turn")
        assert answer["result"]["stopReason"] == "cancelled", answer
        answered_at = c.response_index("turn")
        assert updates_between(c, sid, answered_at + 1, await barrier(c, rig, sid)) == []
    assert d.process.returncode == 0, d.stderr.decode()[-2000:]


async def test_load_replays_everything_before_its_answer(rig: Rig) -> None:
    rig.fake.script(Reply(text="Hello from the fake model", chunks=3))
    async with daemon_process(rig.args) as d:
        c = d.client
        with anyio.fail_after(60):
            await c.initialize()
            sid = await c.new_session(rig.cwd)
            assert (await c.prompt(sid, "say hello"))["stopReason"] == "end_turn"
            await c.request("session/close", {"sessionId": sid})
            start = len(c.received)
            # Reopened: the agent replays its own history (no `_meta.bridge.replay` marks).
            await c.send_request("load", "session/load", {"sessionId": sid, "cwd": rig.cwd, "mcpServers": []})
            answer = await c.wait_response("load")
        assert "result" in answer, answer
        answered_at = c.response_index("load")
        replayed = updates_between(c, sid, start, answered_at)
        text = "".join(
            m["params"]["update"]["content"].get("text", "")
            for m in replayed
            if m["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        )
        assert text == "Hello from the fake model"
        assert not any(m["params"].get("_meta", {}).get("bridge", {}).get("replay") for m in replayed)
        assert updates_between(c, sid, answered_at + 1, await barrier(c, rig, sid)) == []
    assert d.process.returncode == 0, d.stderr.decode()[-2000:]
